//! Golden fixtures: `tests/fixtures/<name>.yaml` compiled and compared with `<name>.expected`.
//!
//! - `main*.yaml` go through `compile_main`, everything else through `compile_upstreams`.
//! - `<name>.d/*.yaml` (sorted) are appended as conf.d sources.
//! - A first line `# ctx: tls unsupported=a,b` sets the [`Context`] (and the main unsupported list).
//! - Valid files expect `OK`, the hash, the warnings (short format) and the plan JSON; invalid ones
//!   the diagnostics in short format.
//!
//! Re-bless with `BLESS=1 cargo test -p aralez-compiler --test golden`.

use std::fs;
use std::path::{Path, PathBuf};

use aralez_compiler::{codes, compile_main, compile_upstreams, plan_json, render, Context, Source};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Ctx {
    tls: bool,
    unsupported: Vec<String>,
}

fn ctx_of(text: &str) -> Ctx {
    let mut c = Ctx {
        tls: false,
        unsupported: Vec::new(),
    };
    if let Some(rest) = text.lines().next().and_then(|l| l.strip_prefix("# ctx:")) {
        for word in rest.split_whitespace() {
            if word == "tls" {
                c.tls = true;
            } else if let Some(list) = word.strip_prefix("unsupported=") {
                c.unsupported = list.split(',').map(str::to_string).collect();
            }
        }
    }
    c
}

fn run_fixture(path: &Path) -> String {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let text = fs::read_to_string(path).unwrap_or_default();
    let c = ctx_of(&text);
    let unsupported: Vec<&str> = c.unsupported.iter().map(String::as_str).collect();
    let shown = format!("fixtures/{name}");
    if name.starts_with("main") {
        let src = Source {
            name: &shown,
            text: &text,
        };
        return match compile_main(&src, &unsupported) {
            Ok(m) => {
                let mut out = String::from("OK\n");
                out.push_str(&render::render(&m.warnings, render::Format::Short, &[]));
                let v = &m.value;
                out.push_str(&format!(
                    "proxy_address_http={} proxy_address_tls={:?} config_address={} threads={} upstreams_conf={}@{}:{} log_level={} hc={} {}s rise={} fall={} tls_grade={} access_log={} timeouts={}/{}/{} trusted={}\n",
                    v.proxy_address_http,
                    v.proxy_address_tls,
                    v.config_address,
                    v.threads,
                    v.upstreams_conf.value,
                    v.upstreams_conf.line,
                    v.upstreams_conf.col,
                    v.log_level.as_str(),
                    v.hc_method.as_str(),
                    v.hc_interval,
                    v.hc_rise,
                    v.hc_fall,
                    v.proxy_tls_grade.as_str(),
                    v.access_log.as_str(),
                    v.upstream_connect_timeout,
                    v.upstream_read_timeout,
                    v.downstream_idle_timeout,
                    v.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
                ));
                out.push_str(&format!(
                    "client: header={}s body={}s buffering={} buffer={} max_body={} conns={} per_ip={} escaped_slashes={}\n",
                    v.client_header_timeout,
                    v.client_body_timeout,
                    v.request_buffering,
                    v.client_body_buffer_size,
                    v.client_max_body_size,
                    v.max_connections,
                    v.max_connections_per_ip,
                    v.escaped_slashes.as_str(),
                ));
                out
            }
            Err(d) => render::render(&d, render::Format::Short, &[]),
        };
    }
    let mut texts = vec![(shown, text)];
    let confd = path.with_extension("d");
    if confd.is_dir() {
        let mut extra: Vec<PathBuf> = fs::read_dir(&confd)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        extra.sort();
        for p in extra {
            let n = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            texts.push((
                format!("fixtures/{}.d/{n}", name.trim_end_matches(".yaml")),
                fs::read_to_string(&p).unwrap_or_default(),
            ));
        }
    }
    let sources: Vec<Source> = texts
        .iter()
        .map(|(n, t)| Source { name: n, text: t })
        .collect();
    let ctx = Context {
        tls_listener: c.tls,
        unsupported: &unsupported,
    };
    match compile_upstreams(&sources, &ctx) {
        Ok(p) => format!(
            "OK\nhash: {}\n{}{}\n",
            p.value.hash(),
            render::render(&p.warnings, render::Format::Short, &[]),
            plan_json(&p.value)
        ),
        Err(d) => render::render(&d, render::Format::Short, &[]),
    }
}

fn all_fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(fixtures())
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn golden_fixtures() {
    let bless = std::env::var_os("BLESS").is_some();
    let mut failures = Vec::new();
    let list = all_fixtures();
    assert!(list.len() > 20, "fixtures missing");
    for path in list {
        let got = run_fixture(&path);
        let expected_path = path.with_extension("expected");
        if bless {
            assert!(
                fs::write(&expected_path, &got).is_ok(),
                "cannot write {}",
                expected_path.display()
            );
            continue;
        }
        let want = fs::read_to_string(&expected_path).unwrap_or_default();
        if want != got {
            failures.push(format!(
                "--- {}\n=== expected\n{want}=== got\n{got}",
                path.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (BLESS=1 to update):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn seed_examples_compile() {
    for name in [
        "seed_upstreams.expected",
        "seed_upstreams_bench.expected",
        "main_seed.expected",
    ] {
        let text = fs::read_to_string(fixtures().join(name)).unwrap_or_default();
        assert!(text.starts_with("OK\n"), "{name} must compile:\n{text}");
    }
}

#[test]
fn every_code_has_a_fixture_and_docs() {
    let mut all_expected = String::new();
    for path in all_fixtures() {
        all_expected
            .push_str(&fs::read_to_string(path.with_extension("expected")).unwrap_or_default());
    }
    let docs_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("DIAGNOSTICS.md");
    let generated = diagnostics_md();
    if std::env::var_os("BLESS").is_some() {
        assert!(
            fs::write(&docs_path, &generated).is_ok(),
            "cannot write DIAGNOSTICS.md"
        );
    }
    let docs = fs::read_to_string(&docs_path).unwrap_or_default();
    assert_eq!(
        docs, generated,
        "DIAGNOSTICS.md is stale (BLESS=1 to regenerate)"
    );
    let mut missing = Vec::new();
    for c in codes::ALL {
        // E08xx/W08xx look at the file system, which the pure compiler never does: `aralez check`
        // emits them and tests/cli_e2e.rs / tests/tls_e2e.rs trigger each one end to end.
        // W0014 is about service lists a provider generates, which no file can hold: the
        // compiler's unit tests and tests/e2e/consul_tags.rs trigger it.
        let runtime_only = c.code.starts_with("E08")
            || c.code.starts_with("W08")
            || c.code == codes::GENERATED_SKIPPED;
        if !runtime_only && !all_expected.contains(&format!("[{}]", c.code)) {
            missing.push(format!("{}: no fixture triggers it", c.code));
        }
        if !docs.contains(&format!("| {} |", c.code)) {
            missing.push(format!("{}: not in DIAGNOSTICS.md", c.code));
        }
    }
    // every code literal in the registry source is registered (no stray codes)
    let src = fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("src/codes.rs"))
        .unwrap_or_default();
    for (i, _) in src.match_indices("= \"") {
        let code = src.get(i + 3..i + 8).unwrap_or_default();
        if (code.starts_with('E') || code.starts_with('W')) && codes::info(code).is_none() {
            missing.push(format!("{code}: declared but not registered"));
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

/// DIAGNOSTICS.md, generated from the code registry.
fn diagnostics_md() -> String {
    let mut s = String::from(
        "# Diagnostics of the Aralez config compiler\n\n\
         Generated from `src/codes.rs` by `BLESS=1 cargo test -p aralez-compiler --test golden`; \
         every code has a fixture in `tests/fixtures/` that triggers it.\n\n\
         Every diagnostic carries `file:line:col` (1-based; `0:0` means the whole file), the YAML \
         path of the node (`upstreams.\"api.example.com\".paths.\"/v1\".servers[2]`) and a message \
         that says what is wrong and how to fix it. `E` codes are errors (the config is refused), \
         `W` codes warnings (accepted; `aralez check --deny-warnings` refuses them). Codes are \
         stable and never reused.\n\n\
         | code | meaning | fix |\n|---|---|---|\n",
    );
    for c in codes::ALL {
        s.push_str(&format!(
            "| {} | {} | {} |\n",
            c.code,
            c.meaning.replace('|', "\\|"),
            c.fix.replace('|', "\\|")
        ));
    }
    s
}
