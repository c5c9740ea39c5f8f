//! TLS test kit: a throwaway PKI made at test time (rcgen; RSA keys from the `openssl` CLI, since
//! ring cannot generate RSA), a TLS proxy launcher, a rustls client that reports which certificate
//! the server chose, and helpers to run the Python clients and servers in tests/helpers/.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SignatureAlgorithm,
};

use crate::common::{free_port, Proxy, ProxyOpts, TempDir};

/// Key algorithms the certificate folder accepts.
#[derive(Clone, Copy, Debug)]
pub enum Alg {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// A test CA with an intermediate; leaves are signed by the intermediate.
pub struct Pki {
    root: rcgen::Certificate,
    root_key: KeyPair,
    inter: rcgen::Certificate,
    inter_key: KeyPair,
}

/// A leaf: PEM chain (leaf + intermediate) and PEM key.
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
}

pub fn keypair(alg: Alg) -> KeyPair {
    match alg {
        Alg::P256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap(),
        Alg::P384 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap(),
        Alg::Ed25519 => KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap(),
        Alg::Rsa => {
            let out = Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .stderr(Stdio::null())
                .output()
                .expect("the openssl CLI (Debian package openssl) generates RSA test keys");
            let pem = String::from_utf8(out.stdout).unwrap();
            KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).unwrap()
        }
    }
}

fn alg_of(alg: Alg) -> &'static SignatureAlgorithm {
    match alg {
        Alg::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        Alg::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        Alg::Ed25519 => &rcgen::PKCS_ED25519,
        Alg::Rsa => &rcgen::PKCS_RSA_SHA256,
    }
}

/// (year, month, day) `days` from today (UTC).
pub fn ymd_from_now(days: i64) -> (i32, u8, u8) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let z = now.div_euclid(86_400) + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

impl Pki {
    pub fn new() -> Self {
        let root_key = keypair(Alg::P256);
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name
            .push(DnType::CommonName, "Aralez Test Root");
        let root = p.self_signed(&root_key).unwrap();
        let inter_key = keypair(Alg::P256);
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        p.distinguished_name
            .push(DnType::CommonName, "Aralez Test Intermediate");
        let inter = p.signed_by(&inter_key, &root, &root_key).unwrap();
        Self {
            root,
            root_key,
            inter,
            inter_key,
        }
    }

    /// The root as PEM (what clients trust).
    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    /// A leaf for `names` (the first is also the CN), valid from a year ago for `valid_days`.
    pub fn leaf_with(&self, names: &[&str], alg: Alg, valid_days: i64) -> Leaf {
        let key = keypair(alg);
        let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        let (y, m, d) = ymd_from_now(-365);
        p.not_before = rcgen::date_time_ymd(y, m, d);
        let (y, m, d) = ymd_from_now(valid_days);
        p.not_after = rcgen::date_time_ymd(y, m, d);
        let _ = alg_of(alg);
        let cert = p.signed_by(&key, &self.inter, &self.inter_key).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.inter.pem()),
            key_pem: key.serialize_pem(),
        }
    }

    pub fn leaf(&self, names: &[&str], alg: Alg) -> Leaf {
        self.leaf_with(names, alg, 365)
    }
}

/// Writes `NAME.crt` + `NAME.key` into `dir`.
pub fn write_pair(dir: &Path, name: &str, leaf: &Leaf) {
    std::fs::write(dir.join(format!("{name}.crt")), &leaf.chain_pem).unwrap();
    std::fs::write(dir.join(format!("{name}.key")), &leaf.key_pem).unwrap();
}

/// A running proxy with a TLS listener.
pub struct TlsProxy {
    pub proxy: Proxy,
    pub tls: SocketAddr,
    pub certs: PathBuf,
}

/// Starts the proxy with `proxy_address_tls` serving `certs` (plus extra main.yaml lines).
pub fn start_tls(upstreams: &str, certs: &Path, extra: &str) -> TlsProxy {
    let tls: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let main_extra = format!(
        "proxy_address_tls: \"{tls}\"\nproxy_certificates: \"{}\"\n{extra}",
        certs.display()
    );
    let proxy = Proxy::start_opts(
        upstreams,
        ProxyOpts {
            main_extra: &main_extra,
            ..ProxyOpts::default()
        },
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(tls).is_err() {
        assert!(Instant::now() < deadline, "TLS listener {tls} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
    TlsProxy {
        proxy,
        tls,
        certs: certs.to_path_buf(),
    }
}

/// Accepts any server certificate: these tests look at *which* certificate was chosen.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// What one TLS connection saw.
#[derive(Debug)]
pub struct Seen {
    /// Common name of the leaf the server sent.
    pub cn: String,
    /// Serial of the leaf (hex), to tell two certificates for the same name apart.
    pub serial: String,
    /// ALPN the server selected.
    pub alpn: Option<Vec<u8>>,
    /// The HTTP/1.1 response to the request sent, when one was sent.
    pub response: Option<crate::common::Resp>,
}

/// Connects with TLS (SNI `sni`, or none), optionally sends an HTTP/1.1 GET for `host`.
pub fn tls_get(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&[u8]],
    request_host: Option<&str>,
) -> Result<Seen, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    cfg.enable_sni = sni.is_some();
    let name = rustls::pki_types::ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_string())
        .map_err(|e| e.to_string())?;
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(|e| e.to_string())?;
    let tcp =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn
            .complete_io(&mut tls.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let leaf = tls
        .conn
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?
        .clone();
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|e| e.to_string())?;
    let cn = x
        .subject()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let serial = x.raw_serial_as_string();
    let alpn = tls.conn.alpn_protocol().map(|a| a.to_vec());
    let response = match request_host {
        Some(host) => {
            let req = format!("GET /tls HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
            tls.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
            let mut raw = Vec::new();
            let _ = tls.read_to_end(&mut raw);
            Some(
                crate::common::read_response(&mut BufReader::new(&raw[..]), false)
                    .map_err(|e| e.to_string())?,
            )
        }
        None => None,
    };
    Ok(Seen {
        cn,
        serial,
        alpn,
        response,
    })
}

/// Runs curl; returns (exit code, stdout, stderr).
pub fn curl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (Debian package curl) is needed by the TLS tests");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// tests/helpers/NAME.
pub fn helper(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helpers")
        .join(name)
}

/// A Python helper process that prints `READY <port>` when listening; killed on drop.
pub struct PyServer {
    pub child: Child,
    pub addr: SocketAddr,
}

impl PyServer {
    pub fn start(script: &str, args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(helper(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 runs the test helpers");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let mut ready = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(port) = line.strip_prefix("READY ") {
                ready = format!("127.0.0.1:{}", port.trim()).parse().ok();
                break;
            }
        }
        match ready {
            Some(addr) => {
                // keep draining stdout so the helper never blocks on a full pipe
                std::thread::spawn(move || for _ in lines {});
                Self { child, addr }
            }
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{script} exited before it was ready (python modules installed? see scripts/test.sh)");
            }
        }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a Python helper to completion; returns (exit code, stdout, stderr).
pub fn python(script: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new("python3")
        .arg(helper(script))
        .args(args)
        .output()
        .expect("python3 runs the test helpers");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `openssl s_client` handshake with one TLS 1.2 cipher; true when it completed.
pub fn openssl_tls12_with(addr: SocketAddr, cipher: &str) -> bool {
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "a.example.com",
            "-tls1_2",
            "-cipher",
            cipher,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI (Debian package openssl)");
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut out = String::new();
            let _ = child.stdout.take().unwrap().read_to_string(&mut out);
            // a completed handshake prints the negotiated cipher
            return status.success() && out.contains(&format!("Cipher is {cipher}"));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writes the PKI root to `dir/ca.pem`; returns its path.
pub fn write_root(dir: &TempDir, pki: &Pki) -> PathBuf {
    dir.write("ca.pem", &pki.root_pem())
}
