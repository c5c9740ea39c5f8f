//! Robustness: mutated and random inputs never panic, and results are deterministic.

use aralez_compiler::{compile_main, compile_upstreams, plan_json, Context, Source};

/// A tiny deterministic PRNG (xorshift64*), so the test needs no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % (n.max(1) as u64)).unwrap_or(0)
    }
}

const SEEDS: &[&str] = &[
    include_str!("fixtures/seed_upstreams.yaml"),
    include_str!("fixtures/routing_ok.yaml"),
    include_str!("fixtures/consul_ok.yaml"),
    include_str!("fixtures/deprecated_092.yaml"),
    include_str!("fixtures/main_seed.yaml"),
    include_str!("fixtures/main_full.yaml"),
];

const TOKENS: &[&[u8]] = &[
    b":",
    b"-",
    b" ",
    b"\n",
    b"\t",
    b"[",
    b"]",
    b"{",
    b"}",
    b"\"",
    b"'",
    b"&a",
    b"*a",
    b"<<: *a",
    b"!!str",
    b"#",
    b"%",
    b"\r",
    b"\x00",
    b"\xff",
    b"\xe2\x80\xa8",
    b"---\n",
    b"...",
    b"|\n",
    b">-\n",
    b"0x1F",
    b"1e999",
    b".nan",
    b"~",
    b"null",
    b"true",
    b"/",
    b"..",
    b"*.",
    b"DEFAULT",
    b"[::1]:0",
    b"servers",
    b"paths",
    b"authorization",
    b"99999999999999999999",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(8) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            2 => {
                if let Some(b) = out.get_mut(at) {
                    *b = u8::try_from(rng.below(256)).unwrap_or(0);
                }
            }
            3 => {
                // duplicate a slice (creates duplicate keys, odd indentation)
                let end = (at + rng.below(64)).min(out.len());
                let chunk: Vec<u8> = out.get(at..end).map(<[u8]>::to_vec).unwrap_or_default();
                out.splice(at..at, chunk);
            }
            _ => out.truncate(at),
        }
    }
    out
}

fn compile_all(bytes: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(bytes);
    let src = Source {
        name: "fuzz.yaml",
        text: &text,
    };
    let confd = Source {
        name: "conf.d/a.yaml",
        text: &text,
    };
    let unsupported = ["rate_limit", "provider:kubernetes"];
    let ctx = Context {
        tls_listener: true,
        unsupported: &unsupported,
    };
    let up = match compile_upstreams(&[src, confd], &ctx) {
        Ok(p) => {
            // a compiled plan must route without panicking
            let _ = p.value.route("example.com", "/a/../b");
            plan_json(&p.value)
        }
        Err(d) => format!("{d:?}"),
    };
    let main = match compile_main(&src, &unsupported) {
        Ok(m) => format!("{:?}", m.value),
        Err(d) => format!("{d:?}"),
    };
    (up, main)
}

#[test]
fn mutated_inputs_never_panic_and_are_deterministic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let rounds = if cfg!(debug_assertions) { 150 } else { 3000 };
    for seed in SEEDS {
        for _ in 0..rounds {
            let input = mutate(&mut rng, seed.as_bytes());
            let first = compile_all(&input);
            if rng.below(10) == 0 {
                assert_eq!(first, compile_all(&input), "non-deterministic on {input:?}");
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                let t = TOKENS[rng.below(TOKENS.len())];
                t.get(rng.below(t.len())).copied().unwrap_or(b'a')
            })
            .collect();
        let _ = compile_all(&bytes);
    }
}

#[test]
fn pathological_inputs() {
    let deep = "a:\n  ".to_string() + &"[".repeat(5000);
    let _ = compile_all(deep.as_bytes());
    let long_key = format!("{}: 1\n", "k".repeat(100_000));
    let _ = compile_all(long_key.as_bytes());
    let many_keys: String = (0..20_000).map(|i| format!("k{i}: {i}\n")).collect();
    let _ = compile_all(many_keys.as_bytes());
}
