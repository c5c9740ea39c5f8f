//! The jwt claim settings (`issuer`, `audience`, `leeway_seconds`): what lands in the plan, its
//! hash, its JSON and `diff_plans`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use aralez_compiler::{
    compile_upstreams, diff_plans, plan_json, Auth, Context, JwtClaims, Plan, Source,
    DEFAULT_JWT_LEEWAY_SECONDS,
};

fn compile(text: &str) -> Plan {
    compile_upstreams(&[Source { name: "u", text }], &Context::default())
        .map(|c| c.value)
        .unwrap_or_else(|d| panic!("{d:?}"))
}

/// A file with global auth `global` and the path `/p` with auth `path` (YAML flow mappings).
fn config(global: &str, path: &str) -> String {
    format!(
        "provider: file\nauthorization: {global}\na.example.com:\n  paths:\n    \"/p\":\n      authorization: {path}\n      servers: [\"127.0.0.1:8000\"]\n"
    )
}

fn claims(plan: &Plan) -> JwtClaims {
    match &plan.routes()[0].auth {
        Some(Auth::Jwt { claims, .. }) => claims.clone(),
        other => panic!("not jwt: {other:?}"),
    }
}

#[test]
fn defaults_and_folding() {
    let p = compile(&config(
        "{type: jwt}",
        "{type: jwt, creds: \"0123456789abcdef\"}",
    ));
    assert_eq!(claims(&p), JwtClaims::default());
    assert_eq!(claims(&p).leeway_seconds, DEFAULT_JWT_LEEWAY_SECONDS);
    assert_eq!(p.global_jwt().cloned(), Some(JwtClaims::default()));

    // a path's own authorization replaces the global one whole (claims included)
    let p = compile(&config(
        "{type: jwt, issuer: g, audience: [x, y], leeway_seconds: 5}",
        "{type: jwt, audience: z}",
    ));
    assert_eq!(
        claims(&p),
        JwtClaims {
            issuer: None,
            audience: vec!["z".into()],
            leeway_seconds: 30,
        }
    );
    assert_eq!(
        p.global_jwt().cloned(),
        Some(JwtClaims {
            issuer: Some("g".into()),
            audience: vec!["x".into(), "y".into()],
            leeway_seconds: 5,
        })
    );
    // a global authorization of another type issues no claims
    let p = compile(&config(
        "{type: apikey, creds: \"0123456789abcdef\"}",
        "{type: jwt, issuer: i}",
    ));
    assert_eq!(p.global_jwt().cloned(), None);
    assert_eq!(claims(&p).issuer.as_deref(), Some("i"));
}

#[test]
fn every_setting_is_in_the_hash_and_the_json() {
    let base = compile(&config("{type: jwt}", "{type: jwt, issuer: a}"));
    let variants = [
        config("{type: jwt}", "{type: jwt, issuer: b}"),
        config("{type: jwt}", "{type: jwt, issuer: a, audience: x}"),
        config("{type: jwt}", "{type: jwt, issuer: a, leeway_seconds: 0}"),
        config("{type: jwt}", "{type: jwt, issuer: a, leeway_seconds: 300}"),
        // the global setting changes what POST /jwt issues even though no route uses it
        config("{type: jwt, issuer: g}", "{type: jwt, issuer: a}"),
        config("{type: jwt, audience: g}", "{type: jwt, issuer: a}"),
    ];
    let mut hashes = vec![base.hash().to_string()];
    for v in &variants {
        let p = compile(v);
        assert!(!diff_plans(&base, &p).is_empty());
        hashes.push(p.hash().to_string());
    }
    let n = hashes.len();
    hashes.sort();
    hashes.dedup();
    assert_eq!(hashes.len(), n, "two settings hash alike");
    // a string audience and a one-element list are the same setting
    assert_eq!(
        compile(&config("{type: jwt}", "{type: jwt, audience: x}"))
            .hash()
            .to_string(),
        compile(&config("{type: jwt}", "{type: jwt, audience: [x]}"))
            .hash()
            .to_string()
    );
    // the default leeway written out is the default
    assert_eq!(
        compile(&config("{type: jwt}", "{type: jwt, leeway_seconds: 30}"))
            .hash()
            .to_string(),
        compile(&config("{type: jwt}", "{type: jwt}"))
            .hash()
            .to_string()
    );

    let p = compile(&config(
        "{type: jwt, creds: \"global-secret-0123456789\", issuer: g}",
        "{type: jwt, creds: \"path-secret-0123456789\", issuer: i, audience: [x, y]}",
    ));
    let json = plan_json(&p);
    assert!(!json.contains("secret-0123456789"), "{json}");
    assert!(json.contains("\"issuer\": \"i\""), "{json}");
    assert!(json.contains("\"leeway_seconds\": 30"), "{json}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["global_jwt"]["issuer"], "g");
    assert_eq!(v["routes"][0]["auth"]["audience"][1], "y");
}

#[test]
fn diff_names_claims_not_secrets() {
    let a = compile(&config(
        "{type: jwt}",
        "{type: jwt, creds: \"secret-one-0123456789\", issuer: a}",
    ));
    let b = compile(&config(
        "{type: jwt, issuer: g}",
        "{type: jwt, creds: \"secret-one-0123456789\", issuer: b, leeway_seconds: 0}",
    ));
    let d = diff_plans(&a, &b).join("\n");
    assert!(
        d.contains("jwt_claims iss=a aud=- leeway=30s -> iss=b aud=- leeway=0s"),
        "{d}"
    );
    assert!(d.contains("global jwt claims"), "{d}");
    assert!(!d.contains("secret changed"), "{d}");
    let c = compile(&config(
        "{type: jwt, issuer: g}",
        "{type: jwt, creds: \"secret-two-0123456789\", issuer: b, leeway_seconds: 0}",
    ));
    let d = diff_plans(&b, &c).join("\n");
    assert!(d.contains("auth secret changed"), "{d}");
    assert!(!d.contains("secret-two"), "{d}");
}
