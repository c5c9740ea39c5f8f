//! End to end: the offline commands (`check`, `compile`, `route`, `diff`, `version`) of the real binary.

use crate::common::{run_cli, TempDir};

const VALID: &str = "provider: \"file\"\napp.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\n    \"/api\":\n      servers: [\"127.0.0.2:8000\", \"127.0.0.3:8000\"]\n";
const TYPO: &str = "provider: \"file\"\napp.example.com:\n  pathz:\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\n";
const DEPRECATED: &str = "provider: \"file\"\nupstreams:\n  app.example.com:\n    paths:\n      \"/\":\n        servers: [\"127.0.0.1:8000\"]\n";

#[test]
fn check_valid_file_exits_0_with_ok() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    let (code, out, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up.yaml: OK"), "{out}");
}

#[test]
fn check_typo_reports_location_code_and_suggestion() {
    let d = TempDir::new("cli");
    d.write("up.yaml", TYPO);
    let (code, out, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("up.yaml:3:3"), "{err}");
    assert!(err.contains("E0005"), "{err}");
    assert!(
        err.contains("paths"),
        "did-you-mean names the right key: {err}"
    );
    assert!(!out.contains("OK"), "{out}");

    let (code, _, err) = run_cli(&["check", "--format", "short", "up.yaml"], d.path());
    assert_eq!(code, 1);
    let line = err.lines().find(|l| l.contains("E0005")).unwrap();
    assert!(line.starts_with("up.yaml:3:3"), "{line}");

    let (code, out, _) = run_cli(&["check", "--format", "json", "up.yaml"], d.path());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = v
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["code"] == "E0005")
        .unwrap();
    assert_eq!(first["line"], 3);
    assert!(
        first["path"].as_str().unwrap().contains("app.example.com"),
        "{first}"
    );

    let (code, _, err) = run_cli(&["check", "--format", "github", "up.yaml"], d.path());
    assert_eq!(code, 1);
    assert!(err.contains("::error file=up.yaml,line=3,col=3"), "{err}");

    let (code, out, _) = run_cli(&["check", "--format", "sarif", "up.yaml"], d.path());
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["version"], "2.1.0");
    let result = v["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "E0005")
        .unwrap();
    let region = &result["locations"][0]["physicalLocation"]["region"];
    assert_eq!(region["startLine"], 3);
    assert_eq!(region["startColumn"], 3);
}

#[test]
fn check_warnings_and_deny_warnings() {
    let d = TempDir::new("cli");
    d.write("up.yaml", DEPRECATED);
    let (code, out, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("W0001"), "{err}");
    assert!(out.contains("OK"));
    let (code, _, _) = run_cli(&["check", "--deny-warnings", "up.yaml"], d.path());
    assert_eq!(code, 3);
}

#[test]
fn check_usage_and_io_errors_exit_2() {
    let d = TempDir::new("cli");
    let (code, _, _) = run_cli(&["check", "missing.yaml"], d.path());
    assert_eq!(code, 2);
    let (code, _, _) = run_cli(&["check"], d.path());
    assert_eq!(code, 2);
    let (code, _, _) = run_cli(&["check", "--format", "xml", "x.yaml"], d.path());
    assert_eq!(code, 2);
}

#[test]
fn check_main_validates_both_files_and_referenced_paths() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    d.write(
        "main.yaml",
        "proxy_address_http: \"127.0.0.1:6193\"\nupstreams_conf: up.yaml\nfile_server_folder: nope\nfile_server_address: \"127.0.0.1:3002\"\n",
    );
    let (code, out, err) = run_cli(&["check", "--main", "main.yaml"], d.path());
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("E0802") && err.contains("main.yaml:3:"),
        "{err}"
    );
    assert!(out.contains("up.yaml: OK"), "{out}");
    // a missing upstreams file is E0801 at the key that names it
    d.write(
        "main2.yaml",
        "proxy_address_http: \"127.0.0.1:6193\"\nupstreams_conf: gone.yaml\n",
    );
    let (code, _, err) = run_cli(&["check", "--main", "main2.yaml"], d.path());
    assert_eq!(code, 1);
    assert!(
        err.contains("E0801") && err.contains("main2.yaml:2:"),
        "{err}"
    );
    // --syntax-only does not look at referenced folders
    let (code, _, err) = run_cli(&["check", "--syntax-only", "--main", "main.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn every_setting_is_enforced_and_none_is_refused_with_e0900() {
    // the last refused key, `kubernetes.ingress_class`, is served now: nothing is left to refuse
    assert!(aralez::UNSUPPORTED_UPSTREAM_KEYS.is_empty());
    assert!(aralez::UNSUPPORTED_MAIN_KEYS.is_empty());
    let d = TempDir::new("cli");
    d.write(
        "up.yaml",
        "provider: kubernetes\nkubernetes: {ingress_class: aralez, services: []}\napp.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\n",
    );
    let (code, _, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
}

#[test]
fn check_validates_a_consul_section_without_contacting_consul() {
    let d = TempDir::new("cli");
    // a listener that counts connections: check must not open any
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    d.write(
        "up.yaml",
        &format!(
            "provider: consul\nconsul:\n  servers: [\"http://{addr}\"]\n  datacenter: dc1\n  wait_seconds: 30\n  token_file: missing.token\n  tls: {{ca_file: missing-ca.pem, server_name: consul.internal}}\n  services:\n    - {{hostname: web.example.com, upstream: web}}\n"
        ),
    );
    let (code, _, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(listener.accept().is_err(), "check contacted Consul");
    d.write(
        "bad.yaml",
        "provider: consul\nconsul:\n  servers: [\"consul:8500\"]\n  wait_seconds: 0\n  tls: {verify: false}\n  services: []\n",
    );
    let (code, _, err) = run_cli(&["check", "bad.yaml"], d.path());
    assert_eq!(code, 1);
    for code in ["E0118", "E0112", "E0005"] {
        assert!(err.contains(code), "{code}: {err}");
    }
}

#[test]
fn compile_prints_canonical_plan_and_hash() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    // the same plan written differently: reordered keys, flow vs block style
    d.write(
        "same.yaml",
        "app.example.com:\n  paths:\n    \"/api\":\n      servers:\n        - \"127.0.0.2:8000\"\n        - \"127.0.0.3:8000\"\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\nprovider: file\n",
    );
    let (code, json, err) = run_cli(&["compile", "up.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&json).unwrap();
    let (_, hash, _) = run_cli(&["compile", "--print-hash", "up.yaml"], d.path());
    let (_, hash2, _) = run_cli(&["compile", "--print-hash", "same.yaml"], d.path());
    assert_eq!(plan["hash"].as_str().unwrap(), hash.trim());
    assert_eq!(
        hash.trim(),
        hash2.trim(),
        "equivalent configs hash the same"
    );
    let (code, _, _) = run_cli(&["compile", "--emit", "plan.json", "up.yaml"], d.path());
    assert_eq!(code, 0);
    assert_eq!(
        std::fs::read_to_string(d.path().join("plan.json"))
            .unwrap()
            .trim(),
        json.trim()
    );
}

#[test]
fn route_explains_which_route_serves() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    let (code, out, _) = run_cli(
        &[
            "route",
            "up.yaml",
            "--host",
            "App.Example.com",
            "--path",
            "/api/v1",
        ],
        d.path(),
    );
    assert_eq!(code, 0);
    assert!(out.contains("app.example.com/api"), "{out}");
    assert!(out.contains("127.0.0.2"), "{out}");
    let (code, out, _) = run_cli(
        &["route", "up.yaml", "--host", "other.com", "--path", "/"],
        d.path(),
    );
    assert_eq!(code, 1);
    assert!(out.contains("404"), "{out}");
}

#[test]
fn diff_shows_plan_changes_and_restart_required_settings() {
    let d = TempDir::new("cli");
    d.write("old.yaml", VALID);
    d.write(
        "new.yaml",
        &VALID.replace("127.0.0.3:8000", "127.0.0.9:8000"),
    );
    let (code, out, err) = run_cli(&["diff", "old.yaml", "new.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.9"), "{out}");

    d.write(
        "m1.yaml",
        "proxy_address_http: \"127.0.0.1:6193\"\nupstreams_conf: old.yaml\n",
    );
    d.write(
        "m2.yaml",
        "proxy_address_http: \"127.0.0.1:7000\"\nupstreams_conf: old.yaml\n",
    );
    let (code, out, err) = run_cli(&["diff", "m1.yaml", "m2.yaml"], d.path());
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("proxy_address_http") && out.contains("restart"),
        "{out}"
    );
}

#[test]
fn version_prints_the_version() {
    let d = TempDir::new("cli");
    for args in [&["version"][..], &["--version"], &["-v"]] {
        let (code, out, _) = run_cli(args, d.path());
        assert_eq!(code, 0);
        assert!(out.starts_with("aralez "), "{out}");
    }
}

#[test]
fn a_file_given_as_proxy_certificates_is_reported_as_not_a_folder() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    d.write("certs.pem", "not a folder\n");
    let main = format!(
        "proxy_address_http: \"127.0.0.1:{}\"\nproxy_address_tls: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nproxy_certificates: certs.pem\nupstreams_conf: up.yaml\n",
        crate::common::free_port(),
        crate::common::free_port(),
        crate::common::free_port()
    );
    d.write("main.yaml", &main);
    let (code, _, err) = run_cli(&["check", "--main", "main.yaml"], d.path());
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("E0802") && err.contains("is a file, not a folder"),
        "{err}"
    );
    assert!(!err.contains("does not exist"), "{err}");
    // the running proxy says the same
    let out = crate::common::run_cli_bounded(
        &["-c", "main.yaml"],
        d.path(),
        std::time::Duration::from_secs(10),
    );
    let (code, _, err) = out.expect("exits");
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("certs.pem is a file, not a folder"), "{err}");
}

#[test]
fn a_huge_upstreams_file_is_refused_for_its_size_not_for_aliases() {
    let d = TempDir::new("cli");
    let mut text = String::from("provider: file\n");
    for i in 0..65_000 {
        text.push_str(&format!(
            "h{i}.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\n"
        ));
    }
    d.write("up.yaml", &text);
    let (code, _, err) = run_cli(&["check", "up.yaml"], d.path());
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("E0012") && err.contains("conf.d"), "{err}");
    assert!(!err.contains("alias"), "{err}");
}

#[test]
fn a_listener_on_port_0_is_a_warning() {
    let d = TempDir::new("cli");
    d.write("up.yaml", VALID);
    d.write(
        "main.yaml",
        "proxy_address_http: \"127.0.0.1:0\"\nupstreams_conf: up.yaml\n",
    );
    let (code, _, err) = run_cli(
        &["check", "--deny-warnings", "--main", "main.yaml"],
        d.path(),
    );
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("W0013") && err.contains("main.yaml:1:"),
        "{err}"
    );
}

/// `check --main` and `run` go through one validator: every input one refuses, the other
/// refuses too (exit 1 for both), and what `check --main` accepts, `run` starts with.
#[test]
fn check_main_and_run_refuse_the_same_inputs() {
    let bad = [
        ("syntax", "provider: file\napp.example.com: [\n"),
        ("unknown key", TYPO),
        (
            "jwt without any secret",
            "provider: file\napp.example.com:\n  paths:\n    \"/\":\n      authorization: {type: jwt}\n      servers: [\"127.0.0.1:8000\"]\n",
        ),
        (
            "missing creds_file",
            "provider: file\napp.example.com:\n  paths:\n    \"/\":\n      authorization: {type: apikey, creds_file: \"no-such-file\"}\n      servers: [\"127.0.0.1:8000\"]\n",
        ),
        (
            "empty servers list",
            "provider: file\napp.example.com:\n  paths:\n    \"/\":\n      servers: []\n",
        ),
    ];
    for (what, upstreams) in bad {
        let d = TempDir::new("same");
        d.write("upstreams.yaml", upstreams);
        d.write(
            "main.yaml",
            &format!(
                "proxy_address_http: \"127.0.0.1:{}\"\nconfig_address: \"127.0.0.1:{}\"\nupstreams_conf: upstreams.yaml\nupgrade_sock: \"{}\"\n",
                crate::common::free_port(),
                crate::common::free_port(),
                d.path().join("u.sock").display()
            ),
        );
        let (check, _, check_err) = run_cli(&["check", "--main", "main.yaml"], d.path());
        let run = crate::common::run_cli_bounded(
            &["-c", "main.yaml"],
            d.path(),
            std::time::Duration::from_secs(20),
        )
        .expect("run did not exit on a refused config");
        assert_eq!(check, 1, "{what}: check\n{check_err}");
        assert_eq!(run.0, 1, "{what}: run\n{}", run.2);
    }
}
