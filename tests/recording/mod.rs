//! A recording origin: keeps every byte any proxy sent it (health probes and protocol detection
//! excepted), and answers each request it can frame with `200` and a body naming the request
//! line and the body length it read. Lenient on purpose: it frames what it receives the simple
//! way, so that anything malformed the proxy lets through shows up in its record.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The origin; stops accepting when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    /// Bytes received per connection (probe connections excluded), in accept order.
    record: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl Origin {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let record = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (rec, st) = (record.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let rec = rec.clone();
                        std::thread::spawn(move || serve(s, &rec));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, record, stop }
    }

    /// Every byte received so far on non-probe connections.
    pub fn received(&self) -> Vec<u8> {
        self.record.lock().unwrap().concat()
    }

    /// Bytes received so far on non-probe connections.
    pub fn received_len(&self) -> usize {
        self.record.lock().unwrap().iter().map(Vec::len).sum()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Health probes and protocol detection (plain probes by their User-Agent; TLS and h2c
/// detection by their first bytes).
fn is_probe(bytes: &[u8]) -> bool {
    if bytes.first() == Some(&0x16) || bytes.starts_with(b"PRI ") {
        return true;
    }
    let text = String::from_utf8_lossy(bytes);
    text.contains("aralez-health") || text.contains("aralez-detect")
}

fn serve(mut s: TcpStream, record: &Mutex<Vec<Vec<u8>>>) {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let slot = {
        let mut r = record.lock().unwrap();
        r.push(Vec::new());
        r.len() - 1
    };
    let mut pending: Vec<u8> = Vec::new();
    let mut idle = 0;
    let mut buf = [0u8; 65536];
    let mut probe = false;
    while idle < 100 {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                idle = 0;
                let got = buf.get(..n).unwrap_or_default();
                pending.extend_from_slice(got);
                if !probe && is_probe(&pending) {
                    probe = true;
                    record.lock().unwrap()[slot].clear();
                }
                if !probe {
                    record.lock().unwrap()[slot].extend_from_slice(got);
                }
                while let Some((line, consumed)) = frame(&pending) {
                    let body = format!("origin saw {line}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                    pending.drain(..consumed);
                }
            }
            Err(_) => idle += 1,
        }
    }
}

/// One request the simple way: head up to CRLFCRLF, then Content-Length bytes or a chunked body
/// up to `0\r\n\r\n`. Returns `"<request line> body=<n>"` and the bytes it used.
fn frame(buf: &[u8]) -> Option<(String, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(buf.get(..end)?).into_owned();
    let line = head.lines().next().unwrap_or_default().to_string();
    let field = |name: &str| {
        head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let rest = buf.get(end..)?;
    if field("transfer-encoding").is_some() {
        let stop = rest.windows(5).position(|w| w == b"0\r\n\r\n")? + 5;
        return Some((format!("{line} body={stop}"), end + stop));
    }
    let len: usize = field("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (rest.len() >= len).then(|| (format!("{line} body={len}"), end + len))
}
