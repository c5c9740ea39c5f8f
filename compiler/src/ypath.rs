//! YAML paths for diagnostics: `upstreams."api.example.com".paths."/v1".servers[2]`.

/// Appends a mapping key to a path (quoted unless it is a plain identifier).
pub(crate) fn key(base: &str, key: &str) -> String {
    let mut out = String::with_capacity(base.len() + key.len() + 3);
    out.push_str(base);
    if !base.is_empty() {
        out.push('.');
    }
    push_key(&mut out, key);
    out
}

/// Appends a sequence index to a path.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

fn push_key(out: &mut String, key: &str) {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain {
        out.push_str(key);
        return;
    }
    out.push('"');
    for c in key.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let p = key("", "upstreams");
        let p = key(&p, "api.example.com");
        let p = key(&p, "paths");
        let p = key(&p, "/v1");
        let p = key(&p, "servers");
        assert_eq!(
            index(&p, 2),
            r#"upstreams."api.example.com".paths."/v1".servers[2]"#
        );
        assert_eq!(key("", "a\"b"), r#""a\"b""#);
    }
}
