//! Sources of configuration change. Each one ends in [`crate::generation::GenerationStore`]: the
//! reload thread (file watches, Consul, Kubernetes and SIGHUP) in `apply_disk`, the push API in `apply_push`.

pub mod consul;
pub mod kubernetes;
pub mod push;
pub mod reload;
pub mod watch;
