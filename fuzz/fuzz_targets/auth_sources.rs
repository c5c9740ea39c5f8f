// The auth parsers of the `aralez` crate, compiled straight from its source files so that the fuzz
// build does not have to build pingora (which the `aralez` library depends on). Included with
// `include!` by the jwt and basic_header targets; the module layout mirrors `aralez`'s.

#[allow(dead_code)]
#[path = "../../src/secret.rs"]
mod secret;

#[allow(dead_code)]
#[path = "auth_mod.rs"]
mod auth;
