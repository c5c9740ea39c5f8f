//! A pebble harness (Let's Encrypt's ACME test server, the Debian `pebble` package) for the ACME
//! tests: pebble and its fake DNS (`pebble-challtestsrv`, answering every name with 127.0.0.1)
//! started on loopback ports with a generated config and HTTPS certificate, validations pointed
//! at the proxy's plain and TLS listeners, `PEBBLE_VA_NOSLEEP=1`, and its default 5% `badNonce`
//! rejection left on. `PEBBLE_AUTHZREUSE=100`: a name validated once is not validated again (the
//! client's "authorization already valid" path). Both processes are killed on drop.

use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;

use crate::common::{free_port, TempDir};

/// A running pebble.
pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    pub dir: TempDir,
    /// The directory URL.
    pub directory: String,
    /// The CA of pebble's own HTTPS listeners (what `acme.ca_file` trusts).
    pub ca_file: PathBuf,
    listen: SocketAddr,
    management: SocketAddr,
    dns_addr: SocketAddr,
    config: PathBuf,
}

impl Pebble {
    /// Pebble validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port`, issuing
    /// certificates valid for `validity_secs`. `run`: start it now (else call [`Pebble::run`]).
    pub fn new(http_port: u16, tls_port: u16, validity_secs: u64, run: bool) -> Self {
        let dir = TempDir::new("pebble");
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test listener CA");
        let ca = p.self_signed(&ca_key).unwrap();
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        let leaf = p.signed_by(&key, &ca, &ca_key).unwrap();
        let cert = dir.write("cert.pem", &leaf.pem());
        let key_file = dir.write("key.pem", &key.serialize_pem());
        let ca_file = dir.write("ca.pem", &ca.pem());
        let listen: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let management: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let dns_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let config = serde_json::json!({ "pebble": {
            "listenAddress": listen.to_string(),
            "managementListenAddress": management.to_string(),
            "certificate": cert,
            "privateKey": key_file,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_secs,
        }});
        let config = dir.write("pebble.json", &config.to_string());
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &dns_addr.to_string()])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv (Debian package pebble) is needed by the ACME tests");
        let mut me = Self {
            pebble: None,
            dns,
            directory: format!("https://{listen}/dir"),
            ca_file,
            dir,
            listen,
            management,
            dns_addr,
            config,
        };
        if run {
            me.run();
        }
        me
    }

    /// Starts pebble (again, after [`Pebble::stop`]: a fresh CA that knows no account).
    pub fn run(&mut self) {
        assert!(self.pebble.is_none(), "pebble runs already");
        let log = std::fs::File::create(self.dir.path().join("pebble.log")).unwrap();
        let child = Command::new("pebble")
            .args(["-config", self.config.to_str().unwrap(), "-strict=false"])
            .args(["-dnsserver", &self.dns_addr.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_AUTHZREUSE", "100")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("pebble (Debian package pebble) is needed by the ACME tests");
        self.pebble = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(self.listen).is_err()
            || TcpStream::connect(self.management).is_err()
        {
            assert!(
                Instant::now() < deadline,
                "pebble did not start:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills pebble (its DNS keeps running).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// pebble's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// The root of the certificates pebble issues (from its management interface), PEM.
    pub fn issuing_root(&self) -> String {
        let pem = std::fs::read(&self.ca_file).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for c in rustls::pki_types::CertificateDer::pem_slice_iter(&pem) {
            roots.add(c.unwrap()).unwrap();
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let agent = ureq::AgentBuilder::new()
            .tls_config(Arc::new(tls))
            .timeout(Duration::from_secs(10))
            .build();
        agent
            .get(&format!("https://{}/roots/0", self.management))
            .call()
            .unwrap()
            .into_string()
            .unwrap()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}
