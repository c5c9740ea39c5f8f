//! End to end: Consul tag mode against the Consul double. Services tagged `aralez.host=` are
//! routed without being listed; a service whose tags do not compile is left out (W0014) while the
//! others serve; tag changes and removals apply; an outage keeps the last good tagged routes.

use std::time::Duration;

use crate::common::{get, Backend};
use crate::consul::{hit, provider_up, start};
use crate::consul_double::{ConsulDouble, Instance};

fn upstreams(consul: &ConsulDouble, static_backend: &Backend) -> String {
    format!(
        "provider: consul\nconsul:\n  servers: [\"{}\"]\n  wait_seconds: 10\n  tag_mode: true\n  services: []\nstatic.test:\n  paths:\n    \"/\": {{servers: [\"{}\"]}}\n",
        consul.url(),
        static_backend.addr
    )
}

fn status_of(p: &crate::common::Proxy, host: &str, path: &str) -> u16 {
    get(p.http, host, path, &[]).map_or(0, |r| r.status)
}

#[test]
fn tagged_services_are_routed_and_a_bad_one_is_left_out() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    let s = Backend::start("static");
    let consul = ConsulDouble::start();
    consul.set_service("web", vec![Instance::at("a", a.addr)]);
    consul.set_tags(
        "web",
        &["aralez.host=tagged.test", "aralez.path=/app", "v2"],
    );
    consul.set_service("api", vec![Instance::at("b", b.addr)]);
    consul.set_tags("api", &["aralez.host=api.test", "aralez.rate_limit=ten"]);
    consul.set_service("db", vec![Instance::at("c", c.addr)]);
    let p = start(&upstreams(&consul, &s));

    let routed = p.wait_for(Duration::from_secs(5), || {
        get(p.http, "tagged.test", "/app/x", &[]).is_ok_and(|r| r.status == 200)
    });
    assert!(routed.is_some(), "{}", p.log_text());
    let r = get(p.http, "tagged.test", "/app/x", &[]).unwrap();
    assert_eq!(r.echo()["backend"], "a");
    // outside the tagged path, and the untagged service: no route
    assert_eq!(status_of(&p, "tagged.test", "/other"), 404);
    assert_eq!(hit(&p, "static.test").as_deref(), Ok("static"));
    // the service whose tags do not compile is left out, and said so
    assert_eq!(status_of(&p, "api.test", "/"), 404);
    let status = p.config_status().to_string();
    assert!(status.contains("W0014"), "{status}");
    assert!(status.contains("service `api` left out"), "{status}");
    assert_eq!(provider_up(&p), Some(1.0));

    // mended tags apply: the service is routed with its rate limit
    consul.set_tags("api", &["aralez.host=api.test", "aralez.rate_limit=2"]);
    let mended = p.wait_for(Duration::from_secs(5), || {
        status_of(&p, "api.test", "/") == 200
    });
    assert!(mended.is_some(), "{}", p.log_text());
    let burst: Vec<u16> = (0..6).map(|_| status_of(&p, "api.test", "/")).collect();
    assert!(
        burst.contains(&429),
        "aralez.rate_limit=2 applies: {burst:?}"
    );

    // an outage keeps the last good tagged routes
    consul.set_failing(true);
    let down = p.wait_for(Duration::from_secs(5), || provider_up(&p) == Some(0.0));
    assert!(down.is_some(), "{}", p.log_text());
    assert_eq!(hit(&p, "tagged.test").err(), Some("status 404".into()));
    let r = get(p.http, "tagged.test", "/app", &[]).unwrap();
    assert_eq!(r.status, 200, "tagged route kept through the outage");
    consul.set_failing(false);

    // tags removed: the route goes in the next generation
    consul.set_tags("web", &["v2"]);
    let gone = p.wait_for(Duration::from_secs(5), || {
        status_of(&p, "tagged.test", "/app") == 404
    });
    assert!(gone.is_some(), "{}", p.log_text());
    assert_eq!(hit(&p, "static.test").as_deref(), Ok("static"));
}
