//! End to end: `user`/`group`. Started as root, the process binds a port below 1024 and serves
//! it as the configured user with no supplementary groups; started as another user with `user`
//! set, it refuses to start with a clear error. (The suite runs as root here; as another user
//! the root-only test says so and checks nothing.)

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{aralez_bin, get, Backend, Proxy, ProxyOpts, TempDir};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .is_ok_and(|s| status_ids(&s, "Uid:").first() == Some(&0))
}

/// The numbers of a `/proc/<pid>/status` line (`Uid:`, `Gid:`, `Groups:`).
fn status_ids(status: &str, key: &str) -> Vec<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A free port below 1024 on 127.0.0.1 (only root can bind one).
fn privileged_port() -> SocketAddr {
    (80..1024)
        .map(|p| SocketAddr::from(([127, 0, 0, 1], p)))
        .find(|a| TcpListener::bind(a).is_ok())
        .expect("a free port below 1024")
}

fn upstreams(b: &Backend) -> String {
    format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        b.addr
    )
}

#[test]
fn root_binds_a_low_port_then_serves_as_nobody() {
    if !is_root() {
        eprintln!("not root: the privilege drop cannot be tested here");
        return;
    }
    let backend = Backend::start("b1");
    let addr = privileged_port();
    let proxy = Proxy::start_opts(
        &upstreams(&backend),
        ProxyOpts {
            main_extra: "user: nobody\ngroup: nogroup\n",
            http_addr: Some(addr),
            ..Default::default()
        },
    );
    let r = get(addr, "app.test", "/", &[]).unwrap();
    assert_eq!(r.status, 200, "{}", proxy.log_text());
    assert_eq!(r.echo()["backend"], "b1");
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    assert_eq!(status_ids(&status, "Uid:"), vec![65534; 4], "{status}");
    assert_eq!(status_ids(&status, "Gid:"), vec![65534; 4], "{status}");
    assert_eq!(
        status_ids(&status, "Groups:"),
        Vec::<u32>::new(),
        "{status}"
    );
    // every thread of the process, the serving ones included
    for task in std::fs::read_dir(format!("/proc/{}/task", proxy.pid())).unwrap() {
        let s = std::fs::read_to_string(task.unwrap().path().join("status")).unwrap_or_default();
        if !s.is_empty() {
            assert_eq!(status_ids(&s, "Uid:"), vec![65534; 4], "{s}");
        }
    }
    assert!(
        proxy
            .log_text()
            .contains("privileges dropped to user nobody"),
        "{}",
        proxy.log_text()
    );
}

#[test]
fn user_set_without_root_refuses_to_start() {
    if !is_root() {
        eprintln!("not root: cannot start the binary as another user here");
        return;
    }
    let dir = TempDir::new("priv");
    let main = dir.write(
        "main.yaml",
        "proxy_address_http: \"127.0.0.1:1\"\nconfig_address: \"127.0.0.1:2\"\nupstreams_conf: upstreams.yaml\nuser: nobody\n",
    );
    dir.write("upstreams.yaml", "provider: file\n");
    // the folder and files must be readable by nobody
    for p in [
        dir.path().to_path_buf(),
        main,
        dir.path().join("upstreams.yaml"),
    ] {
        let mode = if p.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    }
    let mut child = Command::new(aralez_bin())
        .arg("-c")
        .arg(dir.path().join("main.yaml"))
        .uid(65534)
        .gid(65534)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs the process to start as root, but it runs as uid 65534"),
        "{err}"
    );
}
