//! A bare pingora proxy with no features, for `benches/load.sh` and `benches/callgrind.sh`: the
//! floor Aralez is measured against ("keep our features within 5% of a bare pingora proxy").
//! Usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR [TLS_LISTEN_ADDR CERT_PEM KEY_PEM]
//!
//! The honest minimum: the upstream address is parsed once, not on every request (the
//! `HttpPeer::new("host:port", ..)` of pingora's examples resolves the string each time), and
//! the server runs pingora's defaults except one worker thread (as the proxies it is compared
//! with). Same allocator and release profile as `aralez`.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use async_trait::async_trait;
use pingora::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare(SocketAddr);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(self.0, false, String::new())))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let upstream: SocketAddr = args[2].parse().expect("UPSTREAM_ADDR is ip:port");
    let conf = pingora::server::configuration::ServerConf {
        threads: 1,
        work_stealing: false,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, Bare(upstream));
    svc.add_tcp(&args[1]);
    if let [_, _, _, tls, cert, key] = args.as_slice() {
        svc.add_tls(tls, cert, key).expect("TLS listener");
    }
    server.add_service(svc);
    server.run_forever();
}
