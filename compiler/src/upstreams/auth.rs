//! The `authorization` block (global, per path, per provider service): `type`, the secret
//! (`creds`, its Aralez 0.92 spelling `data`, or `creds_file`) and, for `jwt`, the claim checks
//! `issuer`, `audience` and `leeway_seconds`; `forward` has its own keys (see `forward_auth`).

use crate::codes;
use crate::diag::Sink;
use crate::plan::{Auth, Creds, JwtClaims, MAX_JWT_LEEWAY_SECONDS};
use crate::walk::{self, pos, Entry};
use crate::yaml::{Node, Value};
use crate::ypath;

use super::policy::deprecated;

const AUTH_TYPES: &[&str] = &["basic", "apikey", "jwt", "forward"];

/// Every key of an `authorization` block (for did-you-mean), without the Aralez 0.92 spelling
/// `data` of `creds`; exposed to tools as [`crate::keys::AUTHORIZATION`].
pub const AUTH_KEYS: &[&str] = &[
    "audience",
    "cache_seconds",
    "creds",
    "creds_file",
    "issuer",
    "leeway_seconds",
    "request_headers",
    "response_headers",
    "timeout_ms",
    "trust_forward_header",
    "type",
    "url",
];

/// Keys that only mean something for `type: jwt`.
const JWT_ONLY: &[&str] = &["audience", "issuer", "leeway_seconds"];

/// Parses an `authorization` block; `None` (with diagnostics) when it is invalid.
pub(crate) fn auth(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Auth> {
    let entries = walk::entries(sink, node, path, "with `type` and `creds`")?;
    let mut kind: Option<(&str, &Node)> = None;
    let mut creds: Option<(&str, &Node)> = None;
    let mut file: Option<(&str, &Node)> = None;
    let mut creds_key: Option<&str> = None;
    let mut jwt_keys: Vec<&Entry<'_>> = Vec::new();
    let mut forward_keys: Vec<&Entry<'_>> = Vec::new();
    let mut creds_entry: Option<&Entry<'_>> = None;
    for e in &entries {
        let p = ypath::key(path, e.key);
        match e.key {
            "type" => kind = walk::str_of(sink, e.value, &p).map(|s| (s, e.value)),
            "creds" | "data" | "creds_file" => {
                if e.key == "data" {
                    deprecated(sink, e, &p, "creds");
                }
                if let Some(first) = creds_key {
                    sink.report(
                        codes::DUPLICATE_KEY,
                        pos(e.key_node),
                        &p,
                        format!("both `{first}` and `{}` are set; keep only one", e.key),
                    );
                    continue;
                }
                creds_key = Some(e.key);
                creds_entry = Some(e);
                let value = walk::str_of(sink, e.value, &p).map(|s| (s, e.value));
                if value.is_some_and(|(c, _)| c.is_empty()) {
                    let msg = if e.key == "creds_file" {
                        "`creds_file` is empty; write the path of the file that holds the secret"
                    } else {
                        "`creds` is empty; an empty secret would accept forged credentials; write the secret or remove `creds` (jwt then uses the master key)"
                    };
                    sink.report(codes::MISSING_CREDS, pos(e.value), &p, msg);
                    return None;
                }
                if e.key == "creds_file" {
                    file = value;
                } else {
                    creds = value;
                }
            }
            k if JWT_ONLY.contains(&k) => jwt_keys.push(e),
            k if super::forward_auth::FORWARD_ONLY.contains(&k) => forward_keys.push(e),
            _ => walk::unknown_key(sink, e, path, AUTH_KEYS),
        }
    }
    let Some((kind, kind_node)) = kind else {
        if !entries.iter().any(|e| e.key == "type") {
            sink.report(
                codes::MISSING_KEY,
                pos(node),
                path,
                "`authorization` needs `type` (basic, apikey, jwt or forward)",
            );
        }
        return None;
    };
    if AUTH_TYPES.contains(&kind) && kind != "jwt" {
        for e in &jwt_keys {
            sink.report(
                codes::JWT_ONLY_KEY,
                pos(e.key_node),
                &ypath::key(path, e.key),
                format!(
                    "`{}` only applies to `type: jwt`, and this authorization is `{kind}`; remove it",
                    e.key
                ),
            );
        }
        if !jwt_keys.is_empty() {
            return None;
        }
    }
    let misplaced: Vec<&Entry<'_>> = if kind == "forward" {
        creds_entry.into_iter().collect()
    } else if AUTH_TYPES.contains(&kind) {
        forward_keys.clone()
    } else {
        Vec::new()
    };
    for e in &misplaced {
        sink.report(
            codes::FORWARD_AUTH_KEY,
            pos(e.key_node),
            &ypath::key(path, e.key),
            format!("`{}` does not apply to `type: {kind}`; remove it", e.key),
        );
    }
    if !misplaced.is_empty() {
        return None;
    }
    if kind == "forward" {
        return super::forward_auth::forward(sink, &forward_keys, node, path);
    }
    let type_path = ypath::key(path, "type");
    let missing = |sink: &mut Sink<'_>, what: &str| {
        sink.report(
            codes::MISSING_CREDS,
            pos(kind_node),
            path,
            format!("`{kind}` authorization needs `creds: \"{what}\"`"),
        );
    };
    let short = |sink: &mut Sink<'_>, secret: &str, n: &Node, what: &str| {
        if secret.len() < 16 {
            sink.report(
                codes::SHORT_SECRET,
                pos(n),
                &ypath::key(path, "creds"),
                format!(
                    "the {what} is {} bytes long; use at least 16 (better 32 random bytes)",
                    secret.len()
                ),
            );
        }
    };
    let from_file = file.map(|(f, _)| Creds::File(f.to_string()));
    match kind {
        "basic" => {
            if let Some(f) = from_file {
                return Some(Auth::Basic { creds: f });
            }
            let Some((c, n)) = creds else {
                missing(sink, "user:password");
                return None;
            };
            let Some((_, password)) = c.split_once(':') else {
                sink.report(
                    codes::BASIC_NO_COLON,
                    pos(n),
                    &ypath::key(path, "creds"),
                    "basic credentials need `user:password` (no `:` found)",
                );
                return None;
            };
            short(sink, password, n, "Basic password");
            Some(Auth::Basic {
                creds: Creds::Inline(c.to_string()),
            })
        }
        "apikey" => {
            if let Some(f) = from_file {
                return Some(Auth::Apikey { key: f });
            }
            let Some((c, n)) = creds else {
                missing(sink, "the API key");
                return None;
            };
            short(sink, c, n, "API key");
            Some(Auth::Apikey {
                key: Creds::Inline(c.to_string()),
            })
        }
        "jwt" => {
            if let Some((c, n)) = creds {
                short(sink, c, n, "JWT secret");
            }
            let claims = jwt_claims(sink, &jwt_keys, path)?;
            Some(Auth::Jwt {
                secret: from_file.or_else(|| creds.map(|(c, _)| Creds::Inline(c.to_string()))),
                claims,
            })
        }
        other => {
            let hint = match crate::suggest::closest(other, AUTH_TYPES) {
                Some(c) => format!("did you mean `{c}`?"),
                None => "use basic, apikey, jwt or forward".into(),
            };
            sink.report(
                codes::UNKNOWN_AUTH,
                pos(kind_node),
                &type_path,
                format!("unknown authorization type `{other}`; {hint}"),
            );
            None
        }
    }
}

/// `issuer`, `audience` and `leeway_seconds` of a jwt authorization; `None` when one is invalid
/// (every problem reported).
fn jwt_claims(sink: &mut Sink<'_>, entries: &[&Entry<'_>], path: &str) -> Option<JwtClaims> {
    let mut claims = JwtClaims::default();
    let mut ok = true;
    for e in entries {
        let p = ypath::key(path, e.key);
        match e.key {
            "issuer" => match walk::str_of(sink, e.value, &p) {
                Some("") => {
                    empty_claim(sink, e.value, &p, "`issuer` is an empty string");
                    ok = false;
                }
                Some(s) => claims.issuer = Some(s.to_string()),
                None => ok = false,
            },
            "audience" => match audience(sink, e.value, &p) {
                Some(list) => claims.audience = list,
                None => ok = false,
            },
            _ => {
                let max = i64::from(MAX_JWT_LEEWAY_SECONDS);
                match walk::int_of(sink, e.value, &p, 0, max, "leeway_seconds")
                    .and_then(|n| u32::try_from(n).ok())
                {
                    Some(n) => claims.leeway_seconds = n,
                    None => ok = false,
                }
            }
        }
    }
    ok.then_some(claims)
}

/// `audience`: one string or a non-empty list of strings, none of them empty.
fn audience(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<Vec<String>> {
    match &node.value {
        Value::Str(s) if s.is_empty() => {
            empty_claim(sink, node, path, "`audience` is an empty string");
            None
        }
        Value::Str(s) => Some(vec![s.clone()]),
        Value::Seq(items) => {
            if items.is_empty() {
                empty_claim(sink, node, path, "`audience` is an empty list");
                return None;
            }
            let mut out = Vec::with_capacity(items.len());
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                let p = ypath::index(path, i);
                match walk::str_of(sink, item, &p) {
                    Some("") => {
                        empty_claim(sink, item, &p, "this `audience` entry is an empty string");
                        ok = false;
                    }
                    Some(s) => out.push(s.to_string()),
                    None => ok = false,
                }
            }
            ok.then_some(out)
        }
        _ => {
            walk::wrong_type(sink, node, path, "a string or a list of strings");
            None
        }
    }
}

fn empty_claim(sink: &mut Sink<'_>, node: &Node, path: &str, what: &str) {
    sink.report(
        codes::JWT_CLAIM_EMPTY,
        pos(node),
        path,
        format!("{what}, which no token could match; write the expected value or remove the key"),
    );
}
