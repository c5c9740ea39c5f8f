//! A bare pingora proxy with no features, for `benches/load.sh`: the floor Aralez is measured
//! against ("keep our features within 5% of a bare pingora proxy").
//! Usage: bare_pingora LISTEN_ADDR UPSTREAM_ADDR
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use async_trait::async_trait;
use pingora::prelude::*;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Bare(String);

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}
    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.0.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let conf = pingora::server::configuration::ServerConf {
        threads: 1,
        work_stealing: false,
        ..Default::default()
    };
    let mut server = pingora::server::Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut svc = pingora::proxy::http_proxy_service(&server.configuration, Bare(args[2].clone()));
    svc.add_tcp(&args[1]);
    server.add_service(svc);
    server.run_forever();
}
