//! `deploy/kubernetes/`: the manifests parse, their configuration passes `aralez check`, and the
//! Deployment agrees with it (ports, probe paths, mount paths) and stays locked down.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn manifest(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/kubernetes")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn port_of(addr: &str) -> u64 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

#[test]
fn the_configmap_passes_aralez_check() {
    let cm = manifest("configmap.yaml");
    let main = cm["data"]["main.yaml"].as_str().unwrap();
    let upstreams = cm["data"]["upstreams.yaml"].as_str().unwrap();
    // the pod's paths, moved under a scratch folder
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("docs-kubernetes");
    let _ = std::fs::remove_dir_all(&dir);
    for sub in ["certs", "run", "upstreams"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let main = main
        .replace("/etc/aralez/", &format!("{}/", dir.display()))
        .replace("/run/aralez/", &format!("{}/run/", dir.display()));
    std::fs::write(dir.join("main.yaml"), &main).unwrap();
    let conf: Value = serde_saphyr::from_str(&main).unwrap();
    let upstreams_path = dir.join(conf["upstreams_conf"].as_str().unwrap());
    std::fs::write(&upstreams_path, upstreams).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_aralez"))
        .args(["check", "--main"])
        .arg(dir.join("main.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_deployment_matches_its_config_and_is_locked_down() {
    let cm = manifest("configmap.yaml");
    let conf: Value = serde_saphyr::from_str(cm["data"]["main.yaml"].as_str().unwrap()).unwrap();
    let deploy = manifest("deployment.yaml");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    let c = &pod["containers"][0];
    let sc = &c["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["capabilities"]["drop"][0], "ALL");
    let port = |name: &str| {
        c["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["containerPort"].as_u64().unwrap())
            .unwrap()
    };
    let addr = |key: &str| port_of(conf[key].as_str().unwrap());
    assert_eq!(port("http"), addr("proxy_address_http"));
    assert_eq!(port("https"), addr("proxy_address_tls"));
    assert_eq!(port("admin"), addr("config_address"));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/livez");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "admin");
    // every path the config names is on a mounted volume
    let mounts: Vec<&str> = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    let upstreams = format!("/etc/aralez/{}", conf["upstreams_conf"].as_str().unwrap());
    for path in [
        upstreams.as_str(),
        conf["proxy_certificates"].as_str().unwrap(),
        conf["upgrade_sock"].as_str().unwrap(),
    ] {
        assert!(
            mounts.iter().any(|m| path.starts_with(m)),
            "{path} is not on a mounted volume: {mounts:?}"
        );
    }
    let svc = manifest("service.yaml");
    assert_eq!(
        svc["spec"]["selector"],
        deploy["spec"]["selector"]["matchLabels"]
    );
}

#[test]
fn the_service_account_may_only_read_endpointslices_ingresses_and_secrets_and_write_ingress_status()
{
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes/rbac.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let docs: Vec<Value> = text
        .split("\n---\n")
        .map(|d| serde_saphyr::from_str(d).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    let of = |kind: &str| docs.iter().find(|d| d["kind"] == kind).unwrap();
    let (account, role, binding) = (
        of("ServiceAccount"),
        of("ClusterRole"),
        of("ClusterRoleBinding"),
    );
    let deploy = manifest("deployment.yaml");
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert_eq!(pod["automountServiceAccountToken"], true);
    assert_eq!(binding["roleRef"]["kind"], "ClusterRole");
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], account["metadata"]["name"]);
    // least privilege: read-only, on exactly what the provider requests
    let rules = role["rules"].as_array().unwrap();
    let granted: Vec<(String, String, Value)> = rules
        .iter()
        .map(|r| {
            (
                r["apiGroups"][0].as_str().unwrap().to_string(),
                r["resources"][0].as_str().unwrap().to_string(),
                r["verbs"].clone(),
            )
        })
        .collect();
    let read = serde_json::json!(["get", "list", "watch"]);
    assert_eq!(
        granted,
        [
            (
                "discovery.k8s.io".into(),
                "endpointslices".into(),
                read.clone()
            ),
            ("networking.k8s.io".into(), "ingresses".into(), read.clone()),
            (
                "networking.k8s.io".into(),
                "ingresses/status".into(),
                serde_json::json!(["update"])
            ),
            (String::new(), "secrets".into(), read),
        ]
    );
    let class = manifest("ingressclass.yaml");
    assert_eq!(class["kind"], "IngressClass");
    assert_eq!(class["metadata"]["name"], "aralez");
}
