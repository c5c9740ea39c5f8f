//! Criterion bench of JWT verification (HS256 on ring), the per-request cost of a `jwt` route.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{black_box, criterion_group, criterion_main, Criterion};

use aralez::auth::jwt;

fn verify(c: &mut Criterion) {
    let key = jwt::key(b"bench-secret-0123456789abcdef0123456789").expect("key");
    let now = 1_800_000_000;
    let token = jwt::issue(&key, "bench-owner", now, 600);
    let mut forged = token.clone().into_bytes();
    if let Some(last) = forged.last_mut() {
        *last = if *last == b'A' { b'B' } else { b'A' };
    }
    let mut group = c.benchmark_group("jwt");
    group.bench_function("verify_valid", |b| {
        b.iter(|| jwt::verify(black_box(token.as_bytes()), &key, now).is_ok())
    });
    group.bench_function("verify_bad_signature", |b| {
        b.iter(|| jwt::verify(black_box(&forged), &key, now).is_err())
    });
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
