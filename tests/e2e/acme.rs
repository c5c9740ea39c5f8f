//! End to end: automatic HTTPS over ACME against a real ACME server (pebble, see
//! [`crate::pebble`]): first issuance over HTTP-01 with `to_https` on, restart reusing the
//! account and the certificate, a name added by a reload, renewal through an authorization the CA
//! still holds as valid, the self-signed placeholder and the old certificate kept while
//! the CA is down, renewal swapped under load with no failed handshake, and two processes on
//! one storage folder making one order.

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;

use crate::common::{free_port, get, Backend, Proxy, ProxyOpts, TempDir};
use crate::pebble::Pebble;
use crate::tls_common::{tls_get, write_pair, Alg, Pki};

const APP: &str = "app.example.com";

fn upstreams(backend: &Backend, names: &[&str]) -> String {
    let mut text = String::from("provider: file\n");
    for n in names {
        text.push_str(&format!(
            "{n}:\n  acme: true\n  paths:\n    \"/\":\n      to_https: true\n      servers: [\"{}\"]\n",
            backend.addr
        ));
    }
    text
}

/// The proxy on `http`/`tls` with `acme:` pointed at `pebble` and certificates in `certs`.
fn start(http: u16, tls: u16, certs: &Path, pebble: &Pebble, renew_days: u32, up: &str) -> Proxy {
    let main_extra = format!(
        "proxy_address_tls: \"127.0.0.1:{tls}\"\nproxy_certificates: \"{}\"\nacme:\n  directory: \"{}\"\n  email: ops@example.com\n  ca_file: \"{}\"\n  renew_before_days: {renew_days}\n",
        certs.display(),
        pebble.directory,
        pebble.ca_file.display()
    );
    Proxy::start_opts(
        up,
        ProxyOpts {
            main_extra: &main_extra,
            http_addr: Some(format!("127.0.0.1:{http}").parse().unwrap()),
            ..ProxyOpts::default()
        },
    )
}

fn tls_addr(port: u16) -> SocketAddr {
    format!("127.0.0.1:{port}").parse().unwrap()
}

/// A TLS GET for `name` by a client that trusts only `root_pem`: the leaf's serial and the
/// response status and body.
fn strict_get(
    addr: SocketAddr,
    name: &str,
    root_pem: &str,
) -> Result<(String, u16, String), String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server =
        rustls::pki_types::ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), server).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let req = format!("GET /acme HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes())
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?
        .clone();
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let serial = x.raw_serial_as_string();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let resp = crate::common::read_response(&mut BufReader::new(&raw[..]), false)
        .map_err(|e| e.to_string())?;
    Ok((serial, resp.status, resp.text()))
}

fn counter(p: &Proxy, name: &str, result: &str) -> u64 {
    let needle =
        format!("aralez_acme_certificate_renewals_total{{name=\"{name}\",result=\"{result}\"}} ");
    p.metrics()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

fn account_of(p: &Proxy) -> String {
    let log = p.log_text();
    log.lines()
        .find_map(|l| l.split("ACME: account ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_issuance_over_http01_and_restart_reuses_account_and_certificate() {
    let backend = Backend::start("b1");
    let (http, tls) = (free_port(), free_port());
    let pebble = Pebble::new(http, tls, 90 * 86_400, true);
    let certs = TempDir::new("acme-certs");
    let started = Instant::now();
    let p = start(
        http,
        tls,
        certs.path(),
        &pebble,
        30,
        &upstreams(&backend, &[APP]),
    );
    let issued = p.wait_for(Duration::from_secs(30), || counter(&p, APP, "issued") == 1);
    assert!(
        issued.is_some(),
        "no certificate within 30 s of start:\n{}\n--- pebble:\n{}",
        p.log_text(),
        pebble.log()
    );
    let root = pebble.issuing_root();
    let mut served = Err(String::new());
    p.wait_for(Duration::from_secs(5), || {
        served = strict_get(tls_addr(tls), APP, &root);
        served.is_ok()
    });
    let (serial, status, body) = served.unwrap_or_else(|e| panic!("{e}\n{}", p.log_text()));
    println!("certificate served {:?} after start", started.elapsed());
    assert_eq!(status, 200);
    assert!(body.contains("\"backend\":\"b1\""), "{body}");
    // the challenge was answered although every plain request of the host is redirected
    let plain = get(p.http, APP, "/.well-known/acme-challenge/unknown", &[]).unwrap();
    assert_eq!(plain.status, 301, "to_https applies to everything else");
    assert_eq!(mode(&certs.path().join(format!("{APP}.key"))), 0o600);
    let accounts: Vec<_> = std::fs::read_dir(certs.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("acme_account_"))
        .collect();
    assert_eq!(accounts.len(), 1);
    assert_eq!(mode(&accounts[0].path()), 0o600);
    let status = p.config_status();
    assert_eq!(
        status["providers"]["acme"]["names"][APP]["last_result"],
        "issued"
    );
    let kid = account_of(&p);
    assert!(kid.starts_with("https://"), "{kid}");
    drop(p);

    // restart: the stored certificate is served as it is; a name added by a reload is ordered
    // with the stored account
    let two = "two.example.com";
    let p = start(
        http,
        tls,
        certs.path(),
        &pebble,
        30,
        &upstreams(&backend, &[APP]),
    );
    p.write_upstreams(&upstreams(&backend, &[APP, two]));
    let issued = p.wait_for(Duration::from_secs(30), || counter(&p, two, "issued") == 1);
    assert!(issued.is_some(), "{}", p.log_text());
    let (again, _, _) = strict_get(tls_addr(tls), APP, &root).unwrap();
    assert_eq!(again, serial, "the stored certificate is reused");
    assert_eq!(counter(&p, APP, "issued") + counter(&p, APP, "renewed"), 0);
    assert_eq!(account_of(&p), kid, "the stored account is reused");
    p.wait_for(Duration::from_secs(5), || {
        strict_get(tls_addr(tls), two, &root).is_ok()
    })
    .unwrap_or_else(|| panic!("{}", p.log_text()));
}

/// Handshakes (with a full request) for `name` in a loop on a few threads until stopped:
/// counts successes and failures and collects the serials served.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<Mutex<Vec<String>>>,
    serials: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, name: &'static str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(Mutex::new(Vec::new()));
        let serials = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..3)
            .map(|_| {
                let (stop, ok, failed, serials) =
                    (stop.clone(), ok.clone(), failed.clone(), serials.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match tls_get(addr, Some(name), &[b"http/1.1"], Some(name)) {
                            Ok(seen) if seen.response.as_ref().is_some_and(|r| r.status == 200) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                                let mut s = serials.lock().unwrap();
                                if s.last() != Some(&seen.serial) {
                                    s.push(seen.serial);
                                }
                            }
                            Ok(seen) => failed
                                .lock()
                                .unwrap()
                                .push(format!("{:?}", seen.response.map(|r| r.status))),
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
            serials,
            threads,
        }
    }

    fn seen_serial(&self, serial: &str) -> bool {
        self.serials.lock().unwrap().iter().any(|s| s == serial)
    }

    fn seen_other_than(&self, serial: &str) -> bool {
        self.serials.lock().unwrap().iter().any(|s| s != serial)
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

#[test]
fn ca_down_keeps_old_certificate_and_placeholder_then_renews_under_load() {
    const NEW: &str = "new.example.com";
    let backend = Backend::start("b1");
    let (http, tls) = (free_port(), free_port());
    let mut pebble = Pebble::new(http, tls, 90 * 86_400, false);
    let certs = TempDir::new("acme-certs");
    // a certificate of another CA that expires in 5 days: due for renewal (30 days)
    let pki = Pki::new();
    write_pair(certs.path(), APP, &pki.leaf_with(&[APP], Alg::P256, 5));
    let p = start(
        http,
        tls,
        certs.path(),
        &pebble,
        30,
        &upstreams(&backend, &[APP, NEW]),
    );
    let old = tls_get(tls_addr(tls), Some(APP), &[], None).unwrap().serial;

    // the CA is down: both orders fail, the old certificate and the placeholder serve
    let failed = p.wait_for(Duration::from_secs(15), || {
        counter(&p, APP, "failed") >= 1 && counter(&p, NEW, "failed") >= 1
    });
    assert!(failed.is_some(), "{}", p.log_text());
    assert_eq!(
        tls_get(tls_addr(tls), Some(APP), &[], None).unwrap().serial,
        old
    );
    let placeholder = tls_get(tls_addr(tls), Some(NEW), &[], None).unwrap();
    assert_eq!(placeholder.cn, format!("aralez placeholder for {NEW}"));
    let status = p.config_status();
    let app = &status["providers"]["acme"]["names"][APP];
    assert!(app["failures"].as_u64().unwrap() >= 1, "{status}");
    assert!(
        app["last_error"].as_str().unwrap().contains("cannot reach"),
        "{status}"
    );
    assert_eq!(
        status["providers"]["acme"]["names"][NEW]["placeholder"],
        true
    );

    // load on the old certificate, then the CA comes back: the retry renews, the swap drops
    // no handshake
    let load = Load::start(tls_addr(tls), APP);
    let warm = p.wait_for(Duration::from_secs(5), || load.seen_serial(&old));
    assert!(warm.is_some(), "the load never saw the old certificate");
    pebble.run();
    let renewed = p.wait_for(Duration::from_secs(45), || {
        counter(&p, APP, "renewed") == 1 && load.seen_other_than(&old)
    });
    std::thread::sleep(Duration::from_millis(300));
    let serials = load.serials.lock().unwrap().clone();
    let (ok, failed) = load.finish();
    assert!(
        renewed.is_some(),
        "no renewal after the CA came back:\n{}",
        p.log_text()
    );
    assert!(
        failed.is_empty(),
        "{} failed handshakes, e.g. {:?}",
        failed.len(),
        failed.first()
    );
    assert!(ok > 20, "only {ok} requests");
    assert!(serials.len() >= 2, "{serials:?}");
    println!("renewal under load: {ok} requests, no failure, serials {serials:?}");
    let root = pebble.issuing_root();
    let (new_serial, status, _) = strict_get(tls_addr(tls), APP, &root).unwrap();
    assert_ne!(new_serial, old);
    assert_eq!(status, 200);
    let issued = p.wait_for(Duration::from_secs(30), || {
        strict_get(tls_addr(tls), NEW, &root).is_ok()
    });
    assert!(issued.is_some(), "{}", p.log_text());
    assert_eq!(counter(&p, NEW, "issued"), 1);

    // the CA restarts and forgets the account: the next order fails once, then starts from the
    // directory and registers again
    pebble.stop();
    pebble.run();
    const LATE: &str = "late.example.com";
    p.write_upstreams(&upstreams(&backend, &[APP, NEW, LATE]));
    let issued = p.wait_for(Duration::from_secs(40), || counter(&p, LATE, "issued") == 1);
    assert!(issued.is_some(), "{}", p.log_text());
    assert!(
        counter(&p, LATE, "failed") >= 1,
        "the stale account was used first"
    );
    let root = pebble.issuing_root();
    let served = p.wait_for(Duration::from_secs(5), || {
        strict_get(tls_addr(tls), LATE, &root).is_ok()
    });
    assert!(served.is_some(), "{}", p.log_text());
}

#[test]
fn two_processes_on_one_storage_folder_make_one_order() {
    let backend = Backend::start("b1");
    let (http_a, tls_a, http_b, tls_b) = (free_port(), free_port(), free_port(), free_port());
    // the CA validates on A's port; whichever process orders, A answers (the token is shared
    // through the storage folder)
    let pebble = Pebble::new(http_a, tls_a, 90 * 86_400, true);
    let certs = TempDir::new("acme-certs");
    let up = upstreams(&backend, &[APP]);
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start(http_a, tls_a, certs.path(), &pebble, 30, &up));
        let b = s.spawn(|| start(http_b, tls_b, certs.path(), &pebble, 30, &up));
        (a.join().unwrap(), b.join().unwrap())
    });
    let root = pebble.issuing_root();
    let mut serials = (String::new(), String::new());
    let same = a.wait_for(Duration::from_secs(40), || {
        let sa = strict_get(tls_addr(tls_a), APP, &root).map(|r| r.0);
        let sb = strict_get(tls_addr(tls_b), APP, &root).map(|r| r.0);
        match (sa, sb) {
            (Ok(x), Ok(y)) => {
                serials = (x, y);
                serials.0 == serials.1
            }
            _ => false,
        }
    });
    assert!(
        same.is_some(),
        "A:\n{}\nB:\n{}\npebble:\n{}",
        a.log_text(),
        b.log_text(),
        pebble.log()
    );
    let orders = (counter(&a, APP, "issued"), counter(&b, APP, "issued"));
    assert_eq!(
        orders.0 + orders.1,
        1,
        "one order for the fleet: {orders:?}"
    );
    println!(
        "the certificate was ordered by {}",
        if orders.0 == 1 { "A" } else { "B" }
    );
    assert!(!certs.path().join(format!("acme_{APP}.lock")).exists());
    let leftovers: Vec<_> = std::fs::read_dir(certs.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.starts_with("acme_challenge_"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}
