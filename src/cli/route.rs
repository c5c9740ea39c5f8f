//! `aralez route FILE --host H --path P`: which route would serve a request.

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
}

/// Runs `aralez route`; exit 0 when a route matches, 1 when the proxy would answer 404/400.
pub fn run(args: &RouteArgs) -> Exit {
    let plan = match super::compile_file(&args.file) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let path = args.path.split('?').next().unwrap_or("/");
    match plan.route(&args.host, path) {
        Ok(idx) => match plan.routes().get(idx) {
            Some(route) => {
                let json = serde_json::to_string_pretty(route).unwrap_or_default();
                println!("{} {} -> route {}", args.method, args.path, route.id);
                println!("{json}");
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
