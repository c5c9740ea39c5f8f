//! Sources of configuration change. Each one ends in [`crate::plan_store::PlanStore`]: the file
//! watch in `apply_disk`, the push API in `apply_push`.

pub mod file_watch;
pub mod push;
pub mod watch;
