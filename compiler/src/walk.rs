//! Generic helpers for the hand-written schema walkers: mappings with duplicate detection,
//! typed scalars with "expected X, found Y" diagnostics.

use std::collections::HashMap;

use crate::codes;
use crate::diag::Sink;
use crate::suggest;
use crate::yaml::{Node, Value};

/// Position of a node as `(line, col)`.
pub(crate) fn pos(node: &Node) -> (u32, u32) {
    (node.line, node.col)
}

/// One `key: value` entry of a mapping with a string key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'n> {
    /// The key text.
    pub key: &'n str,
    /// The key node (for positions).
    pub key_node: &'n Node,
    /// The value node.
    pub value: &'n Node,
}

/// The entries of a mapping. Reports a non-mapping (E0006), non-string keys (E0008) and
/// duplicate keys (E0004, at the second occurrence, naming the first); those entries are skipped.
pub(crate) fn entries<'n>(
    sink: &mut Sink<'_>,
    node: &'n Node,
    path: &str,
    what: &str,
) -> Option<Vec<Entry<'n>>> {
    let Value::Map(pairs) = &node.value else {
        wrong_type(sink, node, path, &format!("a mapping ({what})"));
        return None;
    };
    let mut seen: HashMap<&str, (u32, u32)> = HashMap::with_capacity(pairs.len());
    let mut out = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        let Value::Str(key) = &k.value else {
            sink.report(
                codes::NON_STRING_KEY,
                pos(k),
                path,
                format!(
                    "mapping key is {}, not a string; quote it (e.g. `\"{}\":`)",
                    k.value.kind(),
                    scalar_text(&k.value)
                ),
            );
            continue;
        };
        if let Some((line, col)) = seen.get(key.as_str()) {
            sink.report(
                codes::DUPLICATE_KEY,
                pos(k),
                &crate::ypath::key(path, key),
                format!(
                    "duplicate key `{key}` (first defined at line {line}, column {col}); keep only one of them"
                ),
            );
            continue;
        }
        seen.insert(key, pos(k));
        out.push(Entry {
            key,
            key_node: k,
            value: v,
        });
    }
    Some(out)
}

/// A short text for a scalar value (for messages).
pub(crate) fn scalar_text(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Str(s) => s.clone(),
        Value::Seq(_) => "[...]".into(),
        Value::Map(_) => "{...}".into(),
    }
}

/// Reports E0006 "expected X, found Y".
pub(crate) fn wrong_type(sink: &mut Sink<'_>, node: &Node, path: &str, expected: &str) {
    let hint = match &node.value {
        Value::Bool(_) | Value::Int(_) | Value::Float(_) if expected.starts_with("a string") => {
            format!("; quote it: \"{}\"", scalar_text(&node.value))
        }
        Value::Str(s) if expected.starts_with("true or false") => {
            format!("; write `true` or `false` (not `{s}`)")
        }
        _ => String::new(),
    };
    sink.report(
        codes::WRONG_TYPE,
        pos(node),
        path,
        format!("expected {expected}, found {}{hint}", node.value.kind()),
    );
}

/// Reports E0005 for an unknown key, with a did-you-mean among `known`.
pub(crate) fn unknown_key(sink: &mut Sink<'_>, e: &Entry<'_>, path: &str, known: &[&str]) {
    sink.report(
        codes::UNKNOWN_KEY,
        pos(e.key_node),
        &crate::ypath::key(path, e.key),
        format!("unknown key `{}`; {}", e.key, suggest::hint(e.key, known)),
    );
}

/// A boolean value.
pub(crate) fn bool_of(sink: &mut Sink<'_>, node: &Node, path: &str) -> Option<bool> {
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            wrong_type(sink, node, path, "true or false");
            None
        }
    }
}

/// A string value (never coerced from numbers or booleans).
pub(crate) fn str_of<'n>(sink: &mut Sink<'_>, node: &'n Node, path: &str) -> Option<&'n str> {
    match &node.value {
        Value::Str(s) => Some(s),
        _ => {
            wrong_type(sink, node, path, "a string");
            None
        }
    }
}

/// A non-empty string value (E0207 when empty or only whitespace).
pub(crate) fn nonempty_str_of<'n>(
    sink: &mut Sink<'_>,
    node: &'n Node,
    path: &str,
) -> Option<&'n str> {
    let s = str_of(sink, node, path)?;
    if s.trim().is_empty() {
        sink.report(
            codes::EMPTY_VALUE,
            pos(node),
            path,
            "the value is empty; write a value or remove the key",
        );
        return None;
    }
    Some(s)
}

/// An integer in `min..=max` (E0006 for non-integers, E0112 outside the range).
pub(crate) fn int_of(
    sink: &mut Sink<'_>,
    node: &Node,
    path: &str,
    min: i64,
    max: i64,
    name: &str,
) -> Option<i64> {
    let Value::Int(i) = node.value else {
        if let Value::Float(f) = node.value {
            if f.fract() == 0.0 && f.abs() >= 9.2e18 {
                sink.report(
                    codes::OUT_OF_RANGE,
                    pos(node),
                    path,
                    format!("`{name}` is too large; use a value between {min} and {max}"),
                );
                return None;
            }
        }
        wrong_type(sink, node, path, "an integer");
        return None;
    };
    if i < min || i > max {
        sink.report(
            codes::OUT_OF_RANGE,
            pos(node),
            path,
            format!("`{name}` is {i}; use a value between {min} and {max}"),
        );
        return None;
    }
    Some(i)
}

/// A list of items.
pub(crate) fn seq_of<'n>(sink: &mut Sink<'_>, node: &'n Node, path: &str) -> Option<&'n [Node]> {
    match &node.value {
        Value::Seq(items) => Some(items),
        _ => {
            wrong_type(sink, node, path, "a list");
            None
        }
    }
}
