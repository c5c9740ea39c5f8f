//! Conditional and range requests: weak ETags, `If-None-Match` / `If-Modified-Since`,
//! `If-Range` and single byte ranges.

use super::*;

/// The outcome of evaluating a `Range` header against a representation length.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub(super) enum RangeOutcome {
    /// No usable single range: send everything with `200`.
    Full,
    /// Send bytes `start..=end` with `206`.
    Partial { start: u64, end: u64 },
    /// `416 Range Not Satisfiable`.
    Unsatisfiable,
}

/// Weak validator from size and modification time: `W/"<size hex>-<mtime ns hex>"`.
pub(super) fn weak_etag(size: u64, mtime: Duration) -> String {
    format!("W/\"{size:x}-{:x}\"", mtime.as_nanos())
}

/// Whether `If-None-Match` / `If-Modified-Since` make this a `304`.
pub(super) fn not_modified(
    headers: &HeaderMap,
    etag: Option<&str>,
    mtime: Option<Duration>,
) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return etag.is_some_and(|e| etag_list_matches(inm.as_bytes(), e));
    }
    match (headers.get(header::IF_MODIFIED_SINCE), mtime) {
        (Some(ims), Some(mtime)) => std::str::from_utf8(ims.as_bytes())
            .ok()
            .and_then(parse_http_date)
            .is_some_and(|since| mtime.as_secs() <= since),
        _ => false,
    }
}

/// Weak comparison of an `If-None-Match` list (or `*`) against our ETag.
pub(super) fn etag_list_matches(list: &[u8], ours: &str) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    let Some(ours) = ours.strip_prefix('"').and_then(|o| o.strip_suffix('"')) else {
        return false;
    };
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some((opaque, after)) = tag.strip_prefix('"').and_then(|t| t.split_once('"')) else {
            return false;
        };
        if opaque == ours {
            return true;
        }
        rest = after;
    }
}

/// `If-Range`: entity tags never match (ours are weak); a date must equal `Last-Modified`.
pub(super) fn if_range_matches(value: &[u8], last_modified: Option<&str>) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return false;
    }
    match (
        parse_http_date(value),
        last_modified.and_then(parse_http_date),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Evaluates a `Range` header for a representation of `size` bytes.
///
/// Only a single `bytes` range is honoured; several ranges or anything malformed is [`Full`].
///
/// [`Full`]: RangeOutcome::Full
pub(super) fn parse_range(value: &[u8], size: u64) -> RangeOutcome {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeOutcome::Full;
    };
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full; // none or several
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = parse_digits(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        if size == 0 {
            return RangeOutcome::Full; // nothing to slice; send the (empty) whole
        }
        return RangeOutcome::Partial {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Some(start) = parse_digits(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end,
            _ => return RangeOutcome::Full, // invalid range-spec: ignore the header
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Parses a non-empty run of ASCII digits, saturating at `u64::MAX`.
pub(super) fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}
