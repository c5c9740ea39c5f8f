//! Criterion benches of the per-request traffic-policy work: the limiter (4xx + rate check of one
//! request) and the balancer's pick, so the load script's figures can be read against them.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use aralez::balance::{self, Registry};
use aralez::config::UpstreamSources;
use aralez::generation::{build, CompileSettings, Generation, Inputs};
use aralez::limits::Limits;

const YAML: &str = "provider: file\nrate_limit: 100000000\nx4xx_limit: 100000000\nsticky_sessions: true\nx.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:8000\", \"127.0.0.1:8001\", \"127.0.0.1:8002\"]\n";

fn generation() -> Generation {
    let inputs = Inputs {
        upstreams: UpstreamSources {
            files: vec![("bench.yaml".into(), YAML.into())],
        },
        certs: None,
        discovered: Default::default(),
        generated: Vec::new(),
    };
    let registry = Registry::new(b"bench", None);
    build(
        &inputs,
        &CompileSettings::default(),
        &registry,
        None,
        "bench",
    )
    .unwrap()
    .generation
}

fn traffic(c: &mut Criterion) {
    let g = generation();
    let route = &g.routes()[0].policy;
    let limits = Limits::new();
    let one: IpAddr = "192.0.2.1".parse().unwrap();
    c.bench_function("limits_check/one_client", |b| {
        b.iter(|| black_box(limits.check(route, black_box(one))))
    });
    let clients: Vec<IpAddr> = (0..100_000u32)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i)))
        .collect();
    let mut i = 0;
    c.bench_function("limits_check/100k_clients", |b| {
        b.iter(|| {
            i = (i + 1) % clients.len();
            black_box(limits.check(route, clients[i]))
        })
    });
    let peers = &g.routes()[0].peers;
    c.bench_function("balance_pick/round_robin", |b| {
        b.iter(|| black_box(balance::pick(peers, true, None, None)))
    });
    let token = peers.peers[1].sticky_token.clone();
    c.bench_function("balance_pick/sticky", |b| {
        b.iter(|| black_box(balance::pick(peers, true, Some(black_box(&token)), None)))
    });
}

criterion_group!(benches, traffic);
criterion_main!(benches);
