//! `aralez route FILE --host H --path P [--provider-snapshot S]`: which route would serve a
//! request, and for a route whose backends a provider discovers, which backends a snapshot of
//! that provider holds.

use super::Exit;

use std::path::{Path, PathBuf};

use aralez_compiler::matcher::RouteMiss;
use aralez_compiler::Discovery;

/// Arguments of `aralez route`.
#[derive(clap::Args, Debug)]
pub struct RouteArgs {
    /// upstreams.yaml.
    pub file: PathBuf,
    /// The Host header of the request.
    #[arg(long)]
    pub host: String,
    /// The request path.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// The request method (shown only; routing does not depend on it).
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// A snapshot of the providers' endpoints: the JSON of a running proxy's `/config/status`
    /// (or its `providers` object), to show the backends of a discovered route.
    #[arg(long, value_name = "FILE")]
    pub provider_snapshot: Option<PathBuf>,
}

/// Runs `aralez route`; exit 0 when a route matches, 1 when the proxy would answer 404/400.
pub fn run(args: &RouteArgs) -> Exit {
    let plan = match super::compile_file(&args.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let snapshot = match args.provider_snapshot.as_deref().map(read_snapshot) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(e)) => {
            eprintln!("error: {e}");
            return Exit::Usage;
        }
    };
    let path = args.path.split('?').next().unwrap_or("/");
    match plan.route(&args.host, path) {
        Ok(idx) => match plan.routes().get(idx) {
            Some(route) => {
                let json = serde_json::to_string_pretty(route).unwrap_or_default();
                println!("{} {} -> route {}", args.method, args.path, route.id);
                println!("{json}");
                if let Some(d) = &route.discovery {
                    explain_discovery(d, snapshot.as_ref());
                }
                Exit::Success
            }
            None => Exit::Invalid,
        },
        Err(RouteMiss::UnknownHost) => {
            println!(
                "no virtual host matches {:?}: the proxy answers 404",
                args.host
            );
            Exit::Invalid
        }
        Err(RouteMiss::NoRoute) => {
            println!(
                "no path of host {:?} matches {:?}: the proxy answers 404",
                args.host, args.path
            );
            Exit::Invalid
        }
        Err(RouteMiss::BadPath) => {
            println!(
                "the path {:?} is malformed or escapes the root: the proxy answers 400",
                args.path
            );
            Exit::Invalid
        }
    }
}

/// Reads a provider snapshot: `/config/status` JSON, or its `providers` object.
fn read_snapshot(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("provider snapshot {}: {e}", path.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| format!("provider snapshot {}: not JSON: {e}", path.display()))?;
    let providers = value.get("providers").cloned().unwrap_or(value);
    if providers.is_object() {
        Ok(providers)
    } else {
        Err(format!(
            "provider snapshot {}: expected `/config/status` JSON or its `providers` object",
            path.display()
        ))
    }
}

/// Prints where a discovered route's backends come from and, with a snapshot, which they are.
fn explain_discovery(d: &Discovery, snapshot: Option<&serde_json::Value>) {
    let (provider, service) = (d.provider.as_str(), d.service.as_str());
    println!("backends: discovered from {provider} service `{service}`");
    let Some(snapshot) = snapshot else {
        println!("  (pass --provider-snapshot with a running proxy's /config/status to list them)");
        return;
    };
    let entry = snapshot
        .get(provider)
        .and_then(|p| p.get("services"))
        .and_then(|s| s.get(service));
    let endpoints = entry
        .and_then(|e| e.get("endpoints"))
        .and_then(serde_json::Value::as_array);
    match endpoints {
        None => {
            println!("  not synced in the snapshot: no backend, the proxy answers 503 until it is")
        }
        Some(list) if list.is_empty() => {
            println!("  no passing instance in the snapshot: the proxy answers 503")
        }
        Some(list) => {
            let state = entry
                .and_then(|e| e.get("state"))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("unknown");
            println!("  in the snapshot ({state}):");
            for e in list {
                println!("  - {}", e.as_str().unwrap_or_default());
            }
        }
    }
}
