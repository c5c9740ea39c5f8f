//! Body of the `http1_request` fuzz target: no input panics the gate's parsers, a parsed head
//! ends with an empty line inside the input, and a chunked body gives the same verdict however
//! its bytes are split. Shared by `fuzz/fuzz_targets/http1_request.rs` and `tests/fuzz_seeds.rs`;
//! the includer provides `crate::edge` (the `aralez::edge` parser modules).

use crate::edge::chunked::Chunked;
use crate::edge::head::{self, Framing, HeadLimits};
use crate::edge::{authority, path};

const LIMITS: HeadLimits = HeadLimits {
    max_head: 8192,
    max_target: 2048,
    max_fields: 50,
};

/// Runs one input; returns the parsed head's framing (`None` when incomplete or refused).
pub fn run(data: &[u8]) -> Option<Framing> {
    let _ = authority::is_valid(data);
    let _ = path::check(data, aralez_compiler::EscapedSlashes::Reject);
    let parsed = head::parse(data, &LIMITS);
    let head = parsed.ok().flatten()?;
    assert!(head.len <= data.len());
    assert!(data
        .get(..head.len)
        .is_some_and(|h| h.ends_with(b"\r\n\r\n")));
    let rest = data.get(head.len..).unwrap_or_default();
    if head.framing == Framing::Chunked {
        let whole = Chunked::new(1 << 20, 4096).feed(rest);
        let split = usize::from(rest.first().copied().unwrap_or(0)) % (rest.len() + 1);
        let (a, b) = rest.split_at(split);
        let mut parts = Chunked::new(1 << 20, 4096);
        let split_result = match parts.feed(a) {
            Ok(None) => parts.feed(b).map(|end| end.map(|e| e + a.len())),
            other => other,
        };
        match (whole, split_result) {
            (Ok(x), Ok(y)) => assert_eq!(x, y),
            (Err(x), Err(y)) => assert_eq!(x.status, y.status),
            (x, y) => panic!("split changed the verdict: {x:?} vs {y:?}"),
        }
    }
    Some(head.framing)
}
