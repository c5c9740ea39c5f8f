//! `aralez route FILE --host H --path P`: which route would serve a request. A route whose
//! backends a provider discovers is explained from `--provider-snapshot` when given: the
//! `/config/status` document of a running proxy (or its `providers` object).

use super::Exit;

use std::path::PathBuf;

use aralez_compiler::matcher::RouteMiss;

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
    /// The endpoints of discovered services: a saved `GET /config/status` answer (or its
    /// `providers` object). Read only; nothing is contacted.
    #[arg(long, value_name = "FILE.json")]
    pub provider_snapshot: Option<PathBuf>,
}

/// The largest snapshot read.
const MAX_SNAPSHOT: u64 = 16 << 20;

/// Reads the `providers` object of a snapshot file.
fn snapshot(path: &std::path::Path) -> Result<serde_json::Value, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut text = Vec::new();
    file.take(MAX_SNAPSHOT + 1)
        .read_to_end(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if text.len() as u64 > MAX_SNAPSHOT {
        return Err(format!(
            "{}: larger than {MAX_SNAPSHOT} bytes",
            path.display()
        ));
    }
    let mut value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| format!("{}: not JSON: {e}", path.display()))?;
    Ok(match value.get_mut("providers") {
        Some(p) => p.take(),
        None => value,
    })
}

/// Explains where the backends of a discovered route come from.
fn explain_discovery(d: &aralez_compiler::Discovery, snapshot: Option<&serde_json::Value>) {
    let provider = d.provider.as_str();
    println!(
        "backends: discovered at run time from {provider} service `{}`",
        d.service
    );
    let Some(providers) = snapshot else {
        println!("  (give --provider-snapshot with a saved /config/status to see them)");
        return;
    };
    let service = &providers[provider]["services"][d.service.as_str()];
    match service["endpoints"].as_array() {
        None => println!("  snapshot: not synced: the proxy has no backend for this route (503)"),
        Some(list) if list.is_empty() => {
            println!("  snapshot: no ready/passing endpoint: the proxy answers 503")
        }
        Some(list) => {
            let ids: Vec<&str> = list.iter().filter_map(serde_json::Value::as_str).collect();
            println!(
                "  snapshot: {} endpoint(s) ({}): {}",
                ids.len(),
                service["state"].as_str().unwrap_or("unknown state"),
                ids.join(", ")
            );
        }
    }
}

/// Runs `aralez route`; exit 0 when a route matches, 1 when the proxy would answer 404/400.
pub fn run(args: &RouteArgs) -> Exit {
    let plan = match super::compile_file(&args.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let snap = match args.provider_snapshot.as_deref().map(snapshot).transpose() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: --provider-snapshot {e}");
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
                    explain_discovery(d, snap.as_ref());
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
