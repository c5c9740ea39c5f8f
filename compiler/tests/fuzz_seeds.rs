//! Replays the committed fuzz seeds (`../fuzz/seeds/<target>/*`) through the same entry points as
//! the fuzz targets, as an ordinary test (no nightly needed).

use std::fs;
use std::path::Path;

#[path = "../../fuzz/bodies/compile.rs"]
mod compile_body;
#[path = "../../fuzz/bodies/route_matcher.rs"]
mod route_body;

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    (name, fs::read(e.path()).unwrap_or_default())
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn compile_seeds_replay() {
    let s = seeds("compile");
    assert!(s.len() >= 3, "compile seeds missing");
    for (_, data) in s {
        compile_body::run(&data);
    }
}

#[test]
fn route_matcher_seeds_replay() {
    let s = seeds("route_matcher");
    assert!(s.len() >= 3, "route_matcher seeds missing");
    let got: Vec<(String, Option<String>)> = s
        .iter()
        .map(|(n, d)| (n.clone(), route_body::run(d)))
        .collect();
    let want = |n: &str| {
        got.iter()
            .find(|(x, _)| x == n)
            .and_then(|(_, r)| r.clone())
    };
    assert_eq!(want("wildcard").as_deref(), Some("*.example.com/api"));
    assert_eq!(want("percent").as_deref(), Some("example.com/a/b"));
    assert_eq!(want("ipv6").as_deref(), Some("::1/"));
    assert_eq!(want("escape"), None);
}
