//! End to end: zero-downtime upgrade. A second process started with `-u` takes the listeners
//! over through `upgrade_sock` when the first gets SIGQUIT; under a constant client loop (plain
//! HTTP, and TLS) not one request fails, and the old process drains and exits.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{aralez_bin, get, Backend, Proxy};
use crate::tls_common::*;

fn upstreams(backend: &Backend) -> String {
    format!(
        "provider: file\nDEFAULT:\n  paths:\n    \"/\":\n      servers: [\"{}\"]\n",
        backend.addr
    )
}

/// The new process, stopped when the test ends.
struct NewProcess(Child);

impl Drop for NewProcess {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.0.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `request` in a loop on two threads until stopped; returns (ok, failed, first failure).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(request: impl Fn() -> Result<(), String> + Send + Sync + 'static) -> Self {
        let request = Arc::new(request);
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let threads = (0..2)
            .map(|_| {
                let (request, stop, ok, failed) =
                    (request.clone(), stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    // bounded: the test stops it within seconds, and never more than 20,000 requests
                    for _ in 0..20_000 {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        match request() {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(e) => failed.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn stop(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::SeqCst), failed)
    }
}

/// Upgrades `old` to a new process under `load`; returns the new process.
fn upgrade(old: &mut Proxy, load: Load) -> NewProcess {
    std::thread::sleep(Duration::from_millis(300));
    let before = load.ok.load(Ordering::SeqCst);
    assert!(before > 0, "no request got through before the upgrade");
    let log = std::fs::File::create(old.dir.path().join("new.log")).unwrap();
    let new = NewProcess(
        Command::new(aralez_bin())
            .arg("-c")
            .arg(old.dir.path().join("main.yaml"))
            .arg("-u")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    // the new process waits on upgrade_sock; the old one sends its listeners on SIGQUIT
    std::thread::sleep(Duration::from_millis(200));
    old.signal("QUIT");
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Ok(Some(status)) = old.child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let new_log = || std::fs::read_to_string(old.dir.path().join("new.log")).unwrap_or_default();
    assert!(
        exited.is_some(),
        "the old process did not exit\n{}\n{}",
        old.log_text(),
        new_log()
    );
    // keep the load on the new process for a moment
    let during = load.ok.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.stop();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed across the upgrade, first: {}\nold:\n{}\nnew:\n{}",
        failed.len(),
        ok + failed.len(),
        failed[0],
        old.log_text(),
        new_log()
    );
    assert!(ok > during, "the new process served nothing\n{}", new_log());
    new
}

#[test]
fn upgrade_under_load_loses_no_request() {
    let backend = Backend::start("b1");
    let mut old = Proxy::start(&upstreams(&backend));
    let http = old.http;
    let load = Load::start(move || match get(http, "x", "/", &[]) {
        Ok(r) if r.status == 200 => Ok(()),
        Ok(r) => Err(format!("status {}", r.status)),
        Err(e) => Err(e.to_string()),
    });
    let _new = upgrade(&mut old, load);
    let r = get(http, "x", "/", &[]).unwrap();
    assert_eq!(r.status, 200);
    let ready = get(old.admin, "admin", "/readyz", &[]).unwrap();
    assert_eq!(
        ready.status, 200,
        "the new process took the admin listener too"
    );
}

#[test]
fn upgrade_with_tls_under_load_loses_no_request() {
    let pki = Pki::new();
    let certs = crate::common::TempDir::new("certs");
    write_pair(certs.path(), "a", &pki.leaf(&["a.example.com"], Alg::P256));
    let backend = Backend::start("b1");
    let mut p = start_tls(&upstreams(&backend), certs.path(), "");
    let tls = p.tls;
    let load =
        Load::start(
            move || match tls_get(tls, Some("a.example.com"), &[b"http/1.1"], Some("x")) {
                Ok(seen) => match seen.response {
                    Some(r) if r.status == 200 => Ok(()),
                    Some(r) => Err(format!("status {}", r.status)),
                    None => Err("no response".into()),
                },
                Err(e) => Err(e),
            },
        );
    let _new = upgrade(&mut p.proxy, load);
    let seen = tls_get(tls, Some("a.example.com"), &[b"http/1.1"], Some("x")).unwrap();
    assert_eq!(seen.response.map(|r| r.status), Some(200));
}
