//! `aralez healthcheck [--url http://127.0.0.1:3000/readyz]` for containers without a shell.

use super::Exit;

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Arguments of `aralez healthcheck`.
#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// Plain-HTTP URL to probe.
    #[arg(long, default_value = "http://127.0.0.1:3000/readyz")]
    pub url: String,
}

/// Exit 0 when the URL answers 200 within 3 s, 1 otherwise, 2 for a bad URL.
pub fn run(args: &HealthcheckArgs) -> Exit {
    let Some(rest) = args.url.strip_prefix("http://") else {
        eprintln!("aralez: only http:// URLs are supported");
        return Exit::Usage;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    match probe(authority, path) {
        Ok(true) => Exit::Success,
        Ok(false) => Exit::Invalid,
        Err(e) => {
            eprintln!("aralez: {}: {e}", args.url);
            Exit::Invalid
        }
    }
}

fn probe(authority: &str, path: &str) -> std::io::Result<bool> {
    let timeout = Duration::from_secs(3);
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| std::io::Error::other("no address"))?;
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head)?;
    let line = String::from_utf8_lossy(&head[..n]);
    Ok(line.starts_with("HTTP/1.1 200") || line.starts_with("HTTP/1.0 200"))
}
