//! The keys the compiler accepts at each place of main.yaml and upstreams.yaml, read-only: the
//! very tables its parsers check keys against (a key outside them is an `unknown key` error with
//! a did-you-mean). Tools use them to stay in step with the compiler: the JSON Schemas in
//! `docs/schema/` are tested against these lists in both directions.
//!
//! Not listed: virtual host names (any other top-level key of upstreams.yaml), path prefixes
//! (the keys under `paths`), `x-NAME` extension keys (ignored, a place for YAML anchors), and the
//! Aralez 0.92 spelling `data` of `authorization.creds` (accepted with a deprecation warning).

use crate::upstreams::policy::{self, Scope};

/// Every key of main.yaml.
pub use crate::mainconf::parse::KEYS as MAIN;

/// Every key of the `acme:` section of main.yaml.
pub use crate::mainconf::acme::ACME_KEYS as ACME;
/// Every key of main.yaml's `limits_store` block.
pub use crate::mainconf::store::STORE_KEYS as LIMITS_STORE;

/// Every key of an `authorization` block (global, per path, per provider service).
pub use crate::upstreams::auth::AUTH_KEYS as AUTHORIZATION;

/// Every key of the `consul:` provider section.
pub use crate::upstreams::providers::CONSUL_KEYS as CONSUL;

/// Every key of the `tls:` block of the `consul:` section.
pub use crate::upstreams::providers::CONSUL_TLS_KEYS as CONSUL_TLS;

/// Every key of the `kubernetes:` provider section.
pub use crate::upstreams::providers::KUBE_KEYS as KUBERNETES;

/// The global keys of upstreams.yaml (sorted); any other top-level key is a virtual host.
pub fn upstreams_global() -> Vec<&'static str> {
    policy::keys(Scope::Global)
}

/// The keys of a virtual host (sorted): `paths` and the host's own settings.
pub fn upstreams_host() -> Vec<&'static str> {
    policy::keys(Scope::Host)
}

/// The keys of one path under a host's `paths` (sorted).
pub fn upstreams_path() -> Vec<&'static str> {
    policy::keys(Scope::Path)
}

/// The keys of one entry of a provider's `services` list (sorted).
pub fn provider_service() -> Vec<&'static str> {
    policy::keys(Scope::Service)
}
