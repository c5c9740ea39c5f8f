//! Sources of configuration change. Each one ends in [`crate::plan_store::PlanStore::apply`].

pub mod file_watch;
