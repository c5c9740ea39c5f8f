//! main.yaml `limits_store: {url, timeout_ms, on_error, key_prefix, password_file}`.

use super::{LimitsStore, Located, StoreOnError};
use crate::codes;
use crate::diag::Sink;
use crate::walk::{self, pos};
use crate::yaml::Node;
use crate::ypath;

/// Every key of the `limits_store` block.
pub const STORE_KEYS: &[&str] = &[
    "key_prefix",
    "on_error",
    "password_file",
    "timeout_ms",
    "url",
];

/// Longest `key_prefix`.
const MAX_PREFIX: usize = 64;

/// Parses the block; `None` (with diagnostics) when it is invalid.
pub(crate) fn limits_store(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<LimitsStore> {
    let entries = walk::entries(sink, node, path, "with `url`")?;
    let mut ok = true;
    let mut store = LimitsStore {
        url: Located {
            value: String::new(),
            line: 0,
            col: 0,
        },
        timeout_ms: 50,
        on_error: StoreOnError::Open,
        key_prefix: "aralez:".into(),
        password_file: None,
    };
    let mut have_url = false;
    for e in &entries {
        let p = ypath::key(path, e.key);
        let v = e.value;
        match e.key {
            "url" => match walk::str_of(sink, v, &p) {
                Some(u) => match check_url(u) {
                    Ok(()) => {
                        have_url = true;
                        store.url = Located {
                            value: u.to_string(),
                            line: v.line,
                            col: v.col,
                        };
                    }
                    Err(msg) => {
                        sink.report(codes::BAD_LIMITS_STORE, pos(v), &p, msg);
                        ok = false;
                    }
                },
                None => ok = false,
            },
            "timeout_ms" => match walk::int_of(sink, v, &p, 1, 5000, "timeout_ms") {
                Some(n) => store.timeout_ms = n.unsigned_abs(),
                None => ok = false,
            },
            "on_error" => match walk::str_of(sink, v, &p) {
                Some("open") => store.on_error = StoreOnError::Open,
                Some("closed") => store.on_error = StoreOnError::Closed,
                Some(other) => {
                    sink.report(
                        codes::BAD_ENUM,
                        pos(v),
                        &p,
                        format!("`{other}` is not one of open, closed"),
                    );
                    ok = false;
                }
                None => ok = false,
            },
            "key_prefix" => match walk::str_of(sink, v, &p) {
                Some(k) if k.len() <= MAX_PREFIX && k.bytes().all(|b| b.is_ascii_graphic()) => {
                    store.key_prefix = k.to_string();
                }
                Some(_) => {
                    sink.report(
                        codes::BAD_LIMITS_STORE,
                        pos(v),
                        &p,
                        format!("`key_prefix` must be at most {MAX_PREFIX} visible ASCII characters (no spaces)"),
                    );
                    ok = false;
                }
                None => ok = false,
            },
            "password_file" => match walk::nonempty_str_of(sink, v, &p) {
                Some(f) => {
                    store.password_file = Some(Located {
                        value: f.to_string(),
                        line: v.line,
                        col: v.col,
                    });
                }
                None => ok = false,
            },
            _ => {
                walk::unknown_key(sink, e, path, STORE_KEYS);
                ok = false;
            }
        }
    }
    if !have_url && ok {
        sink.report(
            codes::MISSING_KEY,
            pos(node),
            path,
            "`limits_store` needs `url` (e.g. `redis://127.0.0.1:6379/0`)",
        );
        return None;
    }
    ok.then_some(store)
}

/// `redis://[user@]host[:port][/db]` or `rediss://...`; no password in the URL.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("rediss://"))
        .ok_or_else(|| format!("`{url}` is not a redis:// or rediss:// URL"))?;
    let (authority, db) = rest.split_once('/').unwrap_or((rest, ""));
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err(format!("`{url}`: the database after `/` must be a number"));
    }
    let host_port = match authority.rsplit_once('@') {
        Some((user, _)) if user.contains(':') => {
            return Err(format!(
                "`{url}` carries a password; put it in `password_file` so that it never shows in logs or diffs"
            ))
        }
        Some((_, hp)) => hp,
        None => authority,
    };
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| format!("`{url}`: unclosed `[`"))?;
        if !after.is_empty() && !after.starts_with(':') {
            return Err(format!("`{url}`: unexpected text after `]`"));
        }
        if let Some(port) = after.strip_prefix(':') {
            port_ok(url, port)?;
        }
        h
    } else {
        match host_port.split_once(':') {
            Some((h, port)) => {
                port_ok(url, port)?;
                h
            }
            None => host_port,
        }
    };
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
    if host_ok {
        Ok(())
    } else {
        Err(format!("`{url}` has no valid host"))
    }
}

fn port_ok(url: &str, port: &str) -> Result<(), String> {
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{url}`: the port must be 1..65535")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::check_url;
    use crate::input::Source;
    use crate::mainconf::{compile_main, StoreOnError};

    #[test]
    fn a_full_block_compiles_with_its_values() {
        let text = "proxy_address_http: 127.0.0.1:6193\nupstreams_conf: u.yaml\nlimits_store:\n  url: \"rediss://redis.internal:6380/2\"\n  timeout_ms: 80\n  on_error: closed\n  key_prefix: \"fleet:\"\n  password_file: redis.pass\n";
        let main = compile_main(&Source { name: "m", text }, &[])
            .unwrap()
            .value;
        let s = main.limits_store.unwrap();
        assert_eq!(s.url.value, "rediss://redis.internal:6380/2");
        assert_eq!((s.url.line, s.url.col), (4, 8));
        assert_eq!(s.timeout_ms, 80);
        assert_eq!(s.on_error, StoreOnError::Closed);
        assert_eq!(s.key_prefix, "fleet:");
        assert_eq!(s.password_file.unwrap().value, "redis.pass");
        let text = "proxy_address_http: 127.0.0.1:6193\nupstreams_conf: u.yaml\nlimits_store: {url: \"redis://127.0.0.1\"}\n";
        let s = compile_main(&Source { name: "m", text }, &[])
            .unwrap()
            .value
            .limits_store
            .unwrap();
        assert_eq!(
            (s.timeout_ms, s.on_error, s.key_prefix.as_str()),
            (50, StoreOnError::Open, "aralez:")
        );
    }

    #[test]
    fn urls() {
        for ok in [
            "redis://a",
            "redis://a:1/0",
            "rediss://u@[::1]:6379/15",
            "redis://10.0.0.1:6379",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://a",
            "redis://",
            "redis://u:p@a",
            "redis://a:0",
            "redis://a/x",
            "redis://a b",
            "redis://[::1",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
