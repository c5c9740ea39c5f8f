//! SNI selection over a set of certificate pairs, independent of the TLS library.
//!
//! Order: exact name (SAN, else CN; case-insensitive, trailing dot ignored), then a single-label
//! wildcard (`*.example.com` serves `a.example.com`, never `a.b.example.com` nor `example.com`),
//! then the default pair: `default` if the folder has one, else the lexicographically first.
//! No SNI gets the default. When two pairs claim the same name, the first by pair name wins.
//! A table is built whole and never changed (it lives in a generation's [`super::certset::CertSet`]).

use std::collections::HashMap;

/// An immutable SNI table over values `K` (one per pair), built whole and swapped whole.
#[derive(Debug)]
pub struct SniIndex<K> {
    entries: Vec<(String, K)>,
    exact: HashMap<String, usize>,
    wildcard: HashMap<String, usize>,
    default: usize,
}

impl<K> SniIndex<K> {
    /// Builds the table from `(pair name, host names, value)`; `None` when there is no pair.
    pub fn build(pairs: impl IntoIterator<Item = (String, Vec<String>, K)>) -> Option<Self> {
        let mut pairs: Vec<(String, Vec<String>, K)> = pairs.into_iter().collect();
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut entries = Vec::with_capacity(pairs.len());
        let mut default = None;
        for (i, (name, hosts, value)) in pairs.into_iter().enumerate() {
            for host in hosts {
                let host = normalise(&host);
                match host.strip_prefix("*.") {
                    Some(suffix) => {
                        wildcard.entry(suffix.to_string()).or_insert(i);
                    }
                    None => {
                        exact.entry(host).or_insert(i);
                    }
                }
            }
            if name == "default" {
                default = Some(i);
            }
            entries.push((name, value));
        }
        if entries.is_empty() {
            return None;
        }
        Some(Self {
            entries,
            exact,
            wildcard,
            default: default.unwrap_or(0),
        })
    }

    /// The pair serving `sni` (`None`: no SNI sent): its name and value.
    pub fn pick(&self, sni: Option<&str>) -> Option<(&str, &K)> {
        let idx = sni.map(normalise).and_then(|host| {
            if let Some(&i) = self.exact.get(&host) {
                return Some(i);
            }
            let (_, parent) = host.split_once('.')?;
            self.wildcard.get(parent).copied()
        });
        self.entries
            .get(idx.unwrap_or(self.default))
            .map(|(n, v)| (n.as_str(), v))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true for a built index (kept for API completeness).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the pair that answers without SNI or for an unknown name.
    pub fn default_name(&self) -> &str {
        self.entries
            .get(self.default)
            .map_or("", |(n, _)| n.as_str())
    }

    /// Pair names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(n, _)| n.as_str())
    }
}

fn normalise(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx() -> SniIndex<u8> {
        SniIndex::build(vec![
            ("b-site".to_string(), vec!["b.example.com".to_string()], 2),
            (
                "a-site".to_string(),
                vec!["A.example.com".to_string(), "shared.example.com".into()],
                1,
            ),
            (
                "wild".to_string(),
                vec!["*.example.com".to_string(), "shared.example.com".into()],
                3,
            ),
        ])
        .unwrap()
    }

    #[test]
    fn exact_wildcard_default() {
        let i = idx();
        assert_eq!(i.pick(Some("a.example.com")).unwrap().1, &1);
        assert_eq!(i.pick(Some("A.EXAMPLE.COM.")).unwrap().1, &1);
        assert_eq!(i.pick(Some("b.example.com")).unwrap().1, &2);
        assert_eq!(i.pick(Some("zz.example.com")).unwrap().1, &3);
        // single label only
        assert_eq!(i.pick(Some("x.y.example.com")).unwrap().0, "a-site");
        assert_eq!(i.pick(Some("example.com")).unwrap().0, "a-site");
        // lexicographically first is the default without `default`
        assert_eq!(i.pick(None).unwrap().0, "a-site");
        // first pair by name wins a shared name
        assert_eq!(i.pick(Some("shared.example.com")).unwrap().0, "a-site");
    }

    #[test]
    fn default_pair_wins() {
        let i = SniIndex::build(vec![
            ("a".to_string(), vec!["a.test".to_string()], 1),
            ("default".to_string(), vec!["d.test".to_string()], 9),
        ])
        .unwrap();
        assert_eq!(i.pick(None).unwrap().1, &9);
        assert_eq!(i.pick(Some("other.test")).unwrap().1, &9);
        assert_eq!(i.pick(Some("a.test")).unwrap().1, &1);
    }

    #[test]
    fn empty_is_none() {
        assert!(SniIndex::<u8>::build(Vec::new()).is_none());
    }
}
