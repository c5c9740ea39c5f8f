//! A forward-auth service double on 127.0.0.1: HTTP/1.1 keep-alive, decides from the headers it
//! is sent, records every request, and can be slowed down or stopped.
//!
//! - `Authorization: Bearer good` or `Cookie: session=ok` → 200 with `X-User` (and `X-Unlisted`,
//!   which the proxy must not copy);
//! - `Authorization: Bearer bad` → 401 with `WWW-Authenticate` and a body;
//! - anything else → 302 to a login page, with `Set-Cookie` and a body.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request the double received: lower-case header names, values joined with `, `.
pub type Seen = BTreeMap<String, String>;

#[derive(Default)]
struct Inner {
    seen: Mutex<Vec<Seen>>,
    delay_ms: AtomicU64,
    accepted: AtomicUsize,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

/// The running double (stopped on drop).
pub struct AuthDouble {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl AuthDouble {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let inner = Arc::new(Inner::default());
        let accept = inner.clone();
        std::thread::spawn(move || {
            while !accept.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        accept.accepted.fetch_add(1, Ordering::SeqCst);
                        let _ = s.set_nonblocking(false);
                        if let Ok(c) = s.try_clone() {
                            accept.conns.lock().unwrap().push(c);
                        }
                        let conn = accept.clone();
                        std::thread::spawn(move || serve(s, &conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Self { addr, inner }
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }

    /// Requests so far.
    pub fn asked(&self) -> usize {
        self.inner.seen.lock().unwrap().len()
    }

    /// TCP connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.inner.accepted.load(Ordering::SeqCst)
    }

    /// Delays every answer by `ms`.
    pub fn set_delay_ms(&self, ms: u64) {
        self.inner.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Stops listening and closes every connection.
    pub fn kill(&self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        for c in self.inner.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        // the accept loop polls every 5 ms
        std::thread::sleep(Duration::from_millis(30));
    }
}

impl Drop for AuthDouble {
    fn drop(&mut self) {
        self.kill();
    }
}

fn serve(s: TcpStream, inner: &Inner) {
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let mut r = BufReader::new(s);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || inner.stop.load(Ordering::SeqCst) {
            return;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut headers = Seen::new();
        headers.insert(
            ":method".into(),
            line.split(' ').next().unwrap_or("").into(),
        );
        headers.insert(":target".into(), target);
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers
                    .entry(k.trim().to_ascii_lowercase())
                    .and_modify(|e| {
                        e.push_str(", ");
                        e.push_str(v.trim())
                    })
                    .or_insert_with(|| v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let answer = decide(&headers);
        inner.seen.lock().unwrap().push(headers);
        let delay = inner.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            std::thread::sleep(Duration::from_millis(delay));
        }
        if r.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

fn decide(h: &Seen) -> String {
    let auth = h.get("authorization").map(String::as_str);
    let cookie = h.get("cookie").map(String::as_str).unwrap_or("");
    if auth == Some("Bearer good") || cookie.contains("session=ok") {
        let user = if auth.is_some() { "alice" } else { "bob" };
        return format!(
            "HTTP/1.1 200 OK\r\nX-User: {user}\r\nX-Unlisted: leak\r\nContent-Length: 2\r\n\r\nok"
        );
    }
    if auth == Some("Bearer bad") {
        let body = "token refused";
        return format!(
            "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"double\"\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    }
    let uri = h.get("x-forwarded-uri").cloned().unwrap_or_default();
    let body = "please log in";
    format!(
        "HTTP/1.1 302 Found\r\nLocation: http://login.example.com/?rd={uri}\r\nSet-Cookie: csrf=abc; Path=/; HttpOnly\r\nSet-Cookie: flow=1; Path=/\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}
