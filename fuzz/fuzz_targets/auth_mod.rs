// `aralez::auth`'s parser modules, by path (see auth_sources.rs).

#[path = "../../src/auth/base64.rs"]
pub mod base64;
#[path = "../../src/auth/basic.rs"]
pub mod basic;
#[path = "../../src/auth/jwt.rs"]
pub mod jwt;
