//! The YAML front end: text in, a generic spanned tree ([`Node`]) out.
//!
//! This is the only module that talks to `serde-saphyr`, so the front end stays swappable. Duplicate
//! keys are passed through (the schema walkers report them with both locations), merge keys are
//! expanded, and budgets bound alias expansion, nesting depth and document size.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{options::AliasLimits, Budget, DuplicateKeyPolicy, Options, Spanned};

/// A YAML node with its 1-based position.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// The value.
    pub value: Value,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column in characters (0 when unknown).
    pub col: u32,
}

/// The value of a [`Node`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `~`, `null` or nothing.
    Null,
    /// `true` / `false` (YAML 1.2 spellings only).
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (also integers beyond `i64`).
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, pairs in document order, duplicates kept.
    Map(Vec<(Node, Node)>),
}

impl Value {
    /// What this value is, for "expected X, found Y" messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number with a fraction",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

/// Which safety budget a document exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BudgetKind {
    /// Anchors, aliases or alias expansion.
    Aliases,
    /// Nesting depth of mappings and lists.
    Depth,
    /// Number of nodes or parser events.
    Size,
    /// Bytes of scalar text or of input.
    Bytes,
}

/// Nesting depth budget (mappings and lists).
pub(crate) const MAX_DEPTH: usize = 48;
/// Node budget (keys, values and list items, after alias expansion).
pub(crate) const MAX_NODES: usize = 400_000;
/// Budget of scalar text.
pub(crate) const MAX_SCALAR_BYTES: usize = 16 * 1024 * 1024;

/// Why the text is not a YAML document we can read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct YamlError {
    /// The budget that was exceeded, if that is the reason.
    pub budget: Option<BudgetKind>,
    /// 1-based line (0 when unknown).
    pub line: u32,
    /// 1-based column (0 when unknown).
    pub col: u32,
    /// The parser's message.
    pub message: String,
}

/// Parses one YAML document. `Ok(None)` for a document with no content (empty or comments only).
pub(crate) fn parse(text: &str) -> Result<Option<Node>, YamlError> {
    if is_blank(text) {
        return Ok(None);
    }
    let mut budget = Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_nodes = MAX_NODES;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 1;
    budget.max_total_scalar_bytes = MAX_SCALAR_BYTES;
    let mut limits = AliasLimits::default();
    limits.max_total_replayed_events = 100_000;
    limits.max_replay_stack_depth = 16;
    limits.max_alias_expansions_per_anchor = 1_000;
    let mut options = Options::default();
    options.budget = Some(budget);
    options.duplicate_keys = DuplicateKeyPolicy::PassThrough;
    options.strict_booleans = true;
    options.with_snippet = false;
    options.crop_radius = 0;
    options.alias_limits = limits;
    match serde_saphyr::from_str_with_options::<Spanned<Value>>(text, options) {
        Ok(spanned) => Ok(Some(to_node(spanned))),
        Err(err) => Err(to_error(&err)),
    }
}

/// True for text without YAML content (empty, blank lines, comments, bare document markers).
pub(crate) fn is_blank(text: &str) -> bool {
    text.lines().all(|l| {
        let t = l.trim_start_matches('\u{feff}').trim();
        t.is_empty() || t.starts_with('#') || t == "---" || t == "..."
    })
}

fn to_node(s: Spanned<Value>) -> Node {
    Node {
        line: clamp(s.referenced.line()),
        col: clamp(s.referenced.column()),
        value: s.value,
    }
}

fn clamp(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

fn to_error(err: &serde_saphyr::Error) -> YamlError {
    let text = err.to_string();
    let budget = budget_kind(err).or_else(|| {
        (text.contains("limit exceeded") || text.contains("budget")).then_some(BudgetKind::Aliases)
    });
    let (line, col) = err
        .location()
        .map(|l| (clamp(l.line()), clamp(l.column())))
        .unwrap_or((0, 0));
    let mut message = text;
    let budget = if message.contains("Documents {") {
        message = "the file holds more than one YAML document (`---`); keep exactly one document per file".into();
        None
    } else {
        budget
    };
    match budget {
        Some(BudgetKind::Depth) => {
            message = format!(
                "mappings and lists nest deeper than {MAX_DEPTH} levels here (a safety budget)"
            );
        }
        Some(BudgetKind::Size) => {
            message = format!(
                "the document is too large: more than {MAX_NODES} YAML nodes (keys, values, list items; a safety budget)"
            );
        }
        Some(BudgetKind::Bytes) => {
            message = format!(
                "the document is too large: more than {} MiB of text in its values (a safety budget)",
                MAX_SCALAR_BYTES / (1024 * 1024)
            );
        }
        Some(BudgetKind::Aliases) | None => {}
    }
    // Keep the first line only: the location is reported separately.
    if let Some((first, _)) = message.split_once('\n') {
        message = first.to_string();
    }
    YamlError {
        budget,
        line,
        col,
        message,
    }
}

/// The budget `err` reports as exceeded, looking through alias and snippet wrappers.
fn budget_kind(mut err: &serde_saphyr::Error) -> Option<BudgetKind> {
    use serde_saphyr::budget::BudgetBreach as B;
    use serde_saphyr::Error as E;
    while let E::AliasError { error, .. } | E::WithSnippet { error, .. } = err {
        err = error;
    }
    match err {
        E::Budget { breach, .. } => Some(match breach {
            B::Depth { .. } | B::InclusionDepth { .. } => BudgetKind::Depth,
            B::Nodes { .. } | B::Events { .. } => BudgetKind::Size,
            B::ScalarBytes { .. } | B::InputBytes { .. } => BudgetKind::Bytes,
            _ => BudgetKind::Aliases,
        }),
        E::AliasReplayLimitExceeded { .. }
        | E::AliasExpansionLimitExceeded { .. }
        | E::AliasReplayStackDepthExceeded { .. }
        | E::AliasReplayCounterOverflow { .. } => Some(BudgetKind::Aliases),
        _ => None,
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or(Value::Float(v as f64), Value::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Str(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Str(String::from_utf8_lossy(v).into_owned()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Value>>()? {
            items.push(to_node(item));
        }
        Ok(Value::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut pairs = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Value>>()? {
            let value = map.next_value::<Spanned<Value>>()?;
            pairs.push((to_node(key), to_node(value)));
        }
        Ok(Value::Map(pairs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Node {
        match parse(text) {
            Ok(Some(n)) => n,
            other => unreachable!("{other:?}"),
        }
    }

    #[test]
    fn scalars_and_positions() {
        let n = p("a: 1\nb: off\nc: \"12\"\nd:\ne: 0.0.0.0:3000\nf: true\n");
        let Value::Map(pairs) = n.value else {
            unreachable!()
        };
        let vals: Vec<_> = pairs.iter().map(|(_, v)| v.value.clone()).collect();
        assert_eq!(
            vals,
            vec![
                Value::Int(1),
                Value::Str("off".into()),
                Value::Str("12".into()),
                Value::Null,
                Value::Str("0.0.0.0:3000".into()),
                Value::Bool(true)
            ]
        );
        let (k, v) = &pairs[1];
        assert_eq!((k.line, k.col, v.line, v.col), (2, 1, 2, 4));
    }

    #[test]
    fn duplicates_pass_through() {
        let n = p("a: 1\na: 2\n");
        let Value::Map(pairs) = n.value else {
            unreachable!()
        };
        assert_eq!(pairs.len(), 2);
    }

    #[test]
    fn errors_have_locations() {
        let e = parse("a: [1, 2\nb: 3\n").err();
        assert!(e.is_some_and(|e| e.line > 0));
        assert_eq!(parse("# only\n\n"), Ok(None));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut s = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='k' {
            s.push_str(&format!("{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"));
            prev = c;
        }
        let e = parse(&s).err();
        assert!(
            e.is_some_and(|e| e.budget == Some(BudgetKind::Aliases)),
            "{:?}",
            parse(&s).err()
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let s = "[".repeat(200) + &"]".repeat(200);
        assert!(parse(&s).is_err());
    }
}

#[cfg(test)]
mod timing {
    /// `cargo test --release -p aralez-compiler yaml::timing -- --ignored --nocapture`
    #[test]
    #[ignore = "timing probe"]
    fn parse_10k() {
        use std::fmt::Write;
        let mut s = String::from("provider: file\n");
        for h in 0..1000 {
            let _ = writeln!(s, "h{h}.example.com:\n  paths:");
            for p in 0..10 {
                let _ = writeln!(s, "    \"/p{p}\":\n      headers: [\"X-Route:{h}-{p}\"]\n      servers: [\"10.0.1.1:8080\", \"backend{p}.internal:80\"]");
            }
        }
        let t = std::time::Instant::now();
        let n = super::parse(&s);
        eprintln!("yaml parse: {:?} ({})", t.elapsed(), n.is_ok());
        let ctx = crate::Context::default();
        let src = crate::Source {
            name: "u",
            text: &s,
        };
        let t = std::time::Instant::now();
        let p = crate::compile_upstreams(&[src], &ctx);
        eprintln!("compile: {:?}", t.elapsed());
        if let Ok(p) = p {
            let t = std::time::Instant::now();
            let _ = crate::canon::hash(&p.value);
            eprintln!("hash: {:?}", t.elapsed());
            let routes: Vec<_> = p.value.routes.iter().map(|r| (**r).clone()).collect();
            let t = std::time::Instant::now();
            let _ = crate::upstreams::host_table_for_test(&routes);
            eprintln!("host table: {:?}", t.elapsed());
        }
    }
}
