// `aralez::edge`'s parser modules, by path (see edge_sources.rs).

#[path = "../../src/edge/authority.rs"]
pub mod authority;
#[path = "../../src/edge/chunked.rs"]
pub mod chunked;
#[path = "../../src/edge/head.rs"]
pub mod head;
#[path = "../../src/edge/path.rs"]
pub mod path;
#[path = "../../src/edge/refusal.rs"]
mod refusal;

pub use refusal::Refusal;
