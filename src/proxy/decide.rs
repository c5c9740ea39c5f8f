//! The pre-upstream decision for one request head: host and path checks, routing, `to_https`,
//! limits, authentication and redirects. Pure except for the limiters.

use std::net::IpAddr;

use http::header;
use pingora::http::RequestHeader;

use aralez_compiler::matcher::RouteMiss;

use super::ProxySettings;
use crate::generation::{Generation, RouteIdx};
use crate::limits::{LimitKind, Limits};

/// HTTP/1.1 keeps the connection unless told `close`; HTTP/1.0 only when asked `keep-alive`.
pub(super) fn wants_keepalive(req: &RequestHeader) -> bool {
    let has = |token: &str| {
        req.headers.get_all(header::CONNECTION).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    match req.version {
        http::Version::HTTP_10 => has("keep-alive"),
        http::Version::HTTP_11 => !has("close"),
        _ => true,
    }
}

/// The host a request is for: `Host`, else the URI authority (HTTP/2 `:authority`).
pub fn request_host(req: &RequestHeader) -> Option<&str> {
    match req.headers.get(header::HOST) {
        Some(h) => h.to_str().ok(),
        None => req.uri.authority().map(|a| a.as_str()),
    }
}

/// What the proxy does with a request before any upstream is involved.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Forward along this route.
    Proxy(RouteIdx),
    /// Answer directly with this status (and `Location` for redirects).
    Respond(u16, Option<String>),
    /// 401: the route's authentication refused the request.
    Unauthorized(Denied),
    /// 429 from this limit on this route.
    Limited(RouteIdx, LimitKind),
    /// The route's forward authentication must ask its auth service (limits already passed);
    /// then [`after_auth`] decides.
    AskAuthService(RouteIdx),
}

/// An authentication refusal.
#[derive(Debug, PartialEq, Eq)]
pub struct Denied {
    /// The route that asked for credentials.
    pub route: RouteIdx,
    /// `basic`, `apikey` or `jwt`.
    pub scheme: &'static str,
    /// The `WWW-Authenticate` value.
    pub challenge: &'static str,
    /// Why (for debug logs only).
    pub why: crate::auth::Rejection,
}

/// Routing and pre-upstream policy for one request head. Pure except for the limiters: `limits`
/// (with the client they count) is consulted, and counts the request, once the route is known.
pub fn decide(
    generation: &Generation,
    req: &RequestHeader,
    settings: &ProxySettings,
    tls: bool,
    limits: Option<(&Limits, IpAddr)>,
) -> Decision {
    if head_size(req) > settings.max_request_header_bytes {
        return Decision::Respond(431, None);
    }
    if req
        .headers
        .get_all(header::VIA)
        .iter()
        .any(|v| String::from_utf8_lossy(v.as_bytes()).contains(settings.via_token.as_str()))
    {
        return Decision::Respond(508, None);
    }
    if req.method == http::Method::CONNECT || req.method == http::Method::TRACE {
        // HTTP/1.x never gets here (the gate refuses both); HTTP/2 gets our 405, not pingora's
        return Decision::Respond(405, None);
    }
    let host = match request_host(req) {
        Some(h) if crate::edge::authority::is_valid(h.as_bytes()) => h,
        // HTTP/1.0 may leave the host out: only `DEFAULT` can answer it
        None if req.version == http::Version::HTTP_10 => "",
        _ => return Decision::Respond(400, None),
    };
    if crate::edge::path::check(req.uri.path().as_bytes(), settings.escaped_slashes).is_err() {
        return Decision::Respond(400, None);
    }
    let idx = match generation.lookup(host, req.uri.path()) {
        Ok(idx) => idx,
        Err(RouteMiss::UnknownHost | RouteMiss::NoRoute) => return Decision::Respond(404, None),
        Err(RouteMiss::BadPath) => return Decision::Respond(400, None),
    };
    let runtime = generation.route(idx);
    let route = &runtime.policy;
    let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    if route.to_https && !tls {
        let mut buf = [0u8; 253];
        let name = aralez_compiler::matcher::host_key(host, &mut buf).unwrap_or("");
        let name = if name.contains(':') {
            format!("[{name}]")
        } else {
            name.to_string()
        };
        let port = match settings.https_port {
            Some(443) | None => String::new(),
            Some(p) => format!(":{p}"),
        };
        return Decision::Respond(301, Some(format!("https://{name}{port}{target}")));
    }
    // 4. limits, before auth so that guessing credentials is throttled
    if let Some((limits, client)) = limits {
        if let Some(kind) = limits.check(route, client) {
            return Decision::Limited(idx, kind);
        }
    }
    // 5. auth
    if let Some(crate::auth::RouteAuth::Forward(_)) = &runtime.auth {
        return Decision::AskAuthService(idx);
    }
    if let Some(auth) = &runtime.auth {
        let now = i64::try_from(crate::generation::unix_now()).unwrap_or(i64::MAX);
        if let Err(why) = crate::auth::check(auth, &req.headers, req.raw_path(), now) {
            return Decision::Unauthorized(Denied {
                route: idx,
                scheme: auth.scheme(),
                challenge: auth.challenge(),
                why,
            });
        }
    }
    after_auth(generation, req, idx)
}

/// What follows a passed authentication: `redirect_to`, else proxying.
pub fn after_auth(generation: &Generation, req: &RequestHeader, idx: RouteIdx) -> Decision {
    if let Some(base) = &generation.route(idx).policy.redirect_to {
        let target = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let base = base.trim_end_matches('/');
        return Decision::Respond(301, Some(format!("{base}{target}")));
    }
    Decision::Proxy(idx)
}

fn head_size(req: &RequestHeader) -> usize {
    let target = req.uri.path_and_query().map_or(1, |pq| pq.as_str().len())
        + req.uri.authority().map_or(0, |a| a.as_str().len() + 8);
    let line = req.method.as_str().len() + target + 12;
    req.headers
        .iter()
        .fold(line, |acc, (k, v)| acc + k.as_str().len() + v.len() + 4)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::proxy::AccessLog;
    use std::time::Duration;

    fn generation(yaml: &str) -> Generation {
        let inputs = crate::generation::Inputs {
            upstreams: crate::config::UpstreamSources {
                files: vec![("t.yaml".into(), yaml.into())],
            },
            certs: None,
            discovered: Default::default(),
            generated: Vec::new(),
        };
        let settings = crate::generation::CompileSettings {
            tls_listener: true,
            ..Default::default()
        };
        let registry = crate::balance::Registry::new(b"k", None);
        crate::generation::build(&inputs, &settings, &registry, None, "test")
            .unwrap()
            .generation
    }

    fn settings() -> ProxySettings {
        ProxySettings {
            connect_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            trusted_proxies: Vec::new(),
            access_log: AccessLog::Off,
            max_request_header_bytes: 32 * 1024,
            downstream_idle_timeout: 60,
            https_port: Some(8443),
            via_token: "1.1 aralez-test".into(),
            escaped_slashes: aralez_compiler::EscapedSlashes::Reject,
            body: crate::edge::h2_body::BodyLimits {
                request_buffering: true,
                body_buffer: 65536,
                max_body: 0,
                body_timeout: Duration::from_secs(1),
            },
        }
    }

    fn head(host: &str, path: &str) -> RequestHeader {
        let mut r = RequestHeader::build("GET", path.as_bytes(), None).unwrap();
        r.insert_header("host", host).unwrap();
        r
    }

    #[test]
    fn limits_run_after_to_https_and_before_redirects() {
        let a = generation(
            "provider: file\nrate_limit: 1\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:1\"]\n    \"/secure\":\n      to_https: true\n      servers: [\"127.0.0.1:1\"]\n    \"/old\":\n      redirect_to: \"https://new.example.com\"\n",
        );
        let limits = Limits::new();
        let me: IpAddr = "192.0.2.7".parse().unwrap();
        let s = settings();
        let d = |path: &str| {
            decide(
                &a,
                &head("x.example.com", path),
                &s,
                false,
                Some((&limits, me)),
            )
        };
        // to_https answers before the limiter counts anything
        for _ in 0..3 {
            assert!(matches!(d("/secure"), Decision::Respond(301, Some(_))));
        }
        // the first request of the second passes (a redirect), the next is limited
        assert!(matches!(d("/old"), Decision::Respond(301, Some(_))));
        assert!(matches!(d("/old"), Decision::Limited(_, LimitKind::Rate)));
        assert!(matches!(d("/"), Decision::Limited(_, LimitKind::Rate)));
        // another client is not affected
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        assert!(matches!(
            decide(
                &a,
                &head("x.example.com", "/"),
                &s,
                false,
                Some((&limits, other))
            ),
            Decision::Proxy(_)
        ));
    }
}
