//! Criterion benches of the hot path (route lookup) and of compiling large configs.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

use aralez_compiler::{compile_upstreams, Context, Plan, Source};

/// An upstreams.yaml with `hosts` virtual hosts of three paths each.
fn config(hosts: usize) -> String {
    let mut y = String::from("provider: file\n");
    for i in 0..hosts {
        y.push_str(&format!(
            "h{i}.example.com:\n  paths:\n    \"/\":\n      servers: [\"127.0.0.1:8000\"]\n    \"/api\":\n      servers: [\"127.0.0.2:8000\"]\n    \"/api/v1/items\":\n      servers: [\"127.0.0.3:8000\"]\n"
        ));
    }
    y
}

fn compile(text: &str) -> Plan {
    let ctx = Context {
        tls_listener: true,
        unsupported: &[],
    };
    compile_upstreams(
        &[Source {
            name: "bench.yaml",
            text,
        }],
        &ctx,
    )
    .map(|c| c.value)
    .expect("bench config compiles")
}

fn route_lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for hosts in [10usize, 1_000, 10_000] {
        let plan = compile(&config(hosts));
        let host = format!("H{}.Example.com:8080", hosts / 2);
        group.bench_with_input(BenchmarkId::new("deep_path", hosts), &plan, |b, plan| {
            b.iter(|| plan.route(black_box(&host), black_box("/api/v1/items/42/detail")))
        });
        group.bench_with_input(BenchmarkId::new("unknown_host", hosts), &plan, |b, plan| {
            b.iter(|| plan.route(black_box("nope.example.org"), black_box("/")))
        });
    }
    group.finish();
}

fn compile_large(c: &mut Criterion) {
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    for hosts in [1_000usize, 3_334] {
        let text = config(hosts);
        group.bench_with_input(BenchmarkId::new("routes", hosts * 3), &text, |b, text| {
            b.iter(|| compile(black_box(text)))
        });
    }
    group.finish();
}

criterion_group!(benches, route_lookup, compile_large);
criterion_main!(benches);
