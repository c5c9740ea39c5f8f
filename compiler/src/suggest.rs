//! "Did you mean" suggestions by edit distance.

/// The candidate closest to `word` (case-insensitive Levenshtein distance), if close enough to be
/// a plausible typo: at most 1 edit for short words, 2 for 5+ chars, 3 for 10+.
pub(crate) fn closest<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    let word = word.to_ascii_lowercase();
    if word.chars().count() > 64 {
        return None;
    }
    let limit = match word.chars().count() {
        0..=4 => 1,
        5..=9 => 2,
        _ => 3,
    };
    let len = word.chars().count();
    candidates
        .iter()
        .filter(|c| c.chars().count().abs_diff(len) <= limit)
        .map(|c| (distance(&word, c), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A ready-made hint: ` Did you mean \`x\`?` or, when nothing is close, the list of valid keys.
pub(crate) fn hint(word: &str, candidates: &[&str]) -> String {
    match closest(word, candidates) {
        Some(c) => format!("did you mean `{c}`?"),
        None => format!("valid keys here: {}", candidates.join(", ")),
    }
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        if let Some(first) = cur.first_mut() {
            *first = i + 1;
        }
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            let del = prev
                .get(j + 1)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(1);
            let ins = cur.get(j).copied().unwrap_or(usize::MAX).saturating_add(1);
            let sub = prev
                .get(j)
                .copied()
                .unwrap_or(usize::MAX)
                .saturating_add(cost);
            if let Some(slot) = cur.get_mut(j + 1) {
                *slot = del.min(ins).min(sub);
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev.last().copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("rate_limt", &["rate_limit", "to_https"]),
            Some("rate_limit")
        );
        assert_eq!(closest("serverz", &["servers", "headers"]), Some("servers"));
        assert_eq!(closest("zzz", &["servers"]), None);
    }
}
