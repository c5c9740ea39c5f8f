//! Test harness: real `aralez` processes, real HTTP backends and a raw HTTP/1.1 client, all on
//! 127.0.0.1 with ephemeral ports.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The binary under test (built by cargo for integration tests). `ARALEZ_TEST_BIN` overrides
/// it, e.g. to show that a new test fails against an older build.
pub fn aralez_bin() -> PathBuf {
    std::env::var_os("ARALEZ_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_aralez")))
}

/// A free TCP port on 127.0.0.1 for a listener of the proxy under test, taken below the kernel's
/// ephemeral range (32768-60999): a port the kernel hands out itself (`bind(0)`) can be given
/// again, between the test releasing it and the proxy binding it, to an outgoing connection or
/// another test's backend, and the proxy then refuses to start on a busy port. Each test process
/// walks its own sequence from a pid-derived start, and every port is checked by binding it.
pub fn free_port() -> u16 {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        (std::process::id().wrapping_mul(7919)) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let n = NEXT.fetch_add(1, Ordering::SeqCst) % SPAN;
        let port = u16::try_from(LOW + n).unwrap();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between {LOW} and {}", LOW + SPAN);
}

/// A fresh temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "aralez-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, text).unwrap();
        p
    }
    /// Writes through a temp file + rename, as editors and config management do.
    pub fn write_atomic(&self, name: &str, text: &str) {
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, self.0.join(name)).unwrap();
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    /// The backend's echo (see [`Backend`]): JSON object.
    pub fn echo(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends raw bytes and reads one response (connection closed after).
pub fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<Resp> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(request)?;
    read_response(&mut BufReader::new(s), false)
}

/// GET with a Host header and extra headers.
pub fn get(
    addr: SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Resp> {
    request(addr, "GET", host, path, headers, b"")
}

/// Any method, `Connection: close`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Resp> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" || method == "PUT" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(&bytes)?;
    read_response(&mut BufReader::new(s), method == "HEAD")
}

/// Reads one HTTP/1.1 response (Content-Length, chunked, or until close).
pub fn read_response<R: BufRead>(r: &mut R, head_only: bool) -> std::io::Result<Resp> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 304 || status == 204 {
        return Ok(resp);
    }
    let mut body = Vec::new();
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else if resp
        .header("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .map_err(std::io::Error::other)?;
            if n == 0 {
                let mut end = String::new();
                r.read_line(&mut end)?;
                break;
            }
            let mut chunk = vec![0; n];
            r.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            let mut crlf = [0u8; 2];
            r.read_exact(&mut crlf)?;
        }
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok(Resp { body, ..resp })
}

/// A real HTTP/1.1 backend that answers every request with a JSON echo:
/// `{"backend": name, "method", "path", "headers": {lower-case name: value}}`, keep-alive aware.
/// Health probes (User-Agent `aralez-health/…`) and protocol detection (`aralez-detect`) are
/// answered but not counted in `hits`/`paths`.
pub struct Backend {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    /// Every request target served, in order.
    pub paths: Arc<std::sync::Mutex<Vec<String>>>,
    /// TCP connections accepted.
    pub accepted: Arc<AtomicUsize>,
    /// Health probes answered.
    pub probes: Arc<AtomicUsize>,
    /// Every health probe as `METHOD target Host`, in order.
    pub probe_log: Arc<std::sync::Mutex<Vec<String>>>,
    /// Status answered to health probes instead of the normal one (0: the normal one).
    probe_status: Arc<AtomicU16>,
    /// Open connections (shut down by [`Backend::kill`]).
    conns: Arc<std::sync::Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
    closed: Arc<AtomicBool>,
}

/// Extra response headers a backend adds.
pub type ExtraHeaders = Vec<(String, String)>;

impl Backend {
    pub fn start(name: &str) -> Self {
        Self::start_with(name, Vec::new(), 200)
    }

    pub fn start_with(name: &str, extra: ExtraHeaders, status: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let closed = Arc::new(AtomicBool::new(false));
        let hits = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let probes = Arc::new(AtomicUsize::new(0));
        let probe_status = Arc::new(AtomicU16::new(0));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let paths = Arc::new(std::sync::Mutex::new(Vec::new()));
        let probe_log = Arc::new(std::sync::Mutex::new(Vec::new()));
        let template = Conn {
            probe_log: probe_log.clone(),
            name: name.to_string(),
            extra,
            status,
            hits: hits.clone(),
            probes: probes.clone(),
            probe_status: probe_status.clone(),
            paths: paths.clone(),
            stop: stop.clone(),
        };
        let (stop2, closed2, accepted2, conns2) = (
            stop.clone(),
            closed.clone(),
            accepted.clone(),
            conns.clone(),
        );
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((s, _)) => {
                        accepted2.fetch_add(1, Ordering::SeqCst);
                        if let Ok(c) = s.try_clone() {
                            conns2.lock().unwrap().push(c);
                        }
                        let conn = template.clone();
                        std::thread::spawn(move || serve_conn(s, &conn));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            drop(listener);
            closed2.store(true, Ordering::SeqCst);
        });
        Self {
            addr,
            name: name.to_string(),
            hits,
            paths,
            accepted,
            probes,
            probe_log,
            probe_status,
            conns,
            stop,
            closed,
        }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn probes(&self) -> usize {
        self.probes.load(Ordering::SeqCst)
    }

    /// Health probes get `status` from now on (0: the backend's normal status again).
    pub fn set_probe_status(&self, status: u16) {
        self.probe_status.store(status, Ordering::SeqCst);
    }

    /// Dies like a crashed process: stops listening (connections are refused from now on) and
    /// closes every open connection, including requests in flight.
    pub fn kill(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.closed.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Clone)]
struct Conn {
    name: String,
    extra: ExtraHeaders,
    status: u16,
    hits: Arc<AtomicUsize>,
    probes: Arc<AtomicUsize>,
    probe_log: Arc<std::sync::Mutex<Vec<String>>>,
    probe_status: Arc<AtomicU16>,
    paths: Arc<std::sync::Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

fn serve_conn(s: TcpStream, c: &Conn) {
    let (name, extra, status, hits, stop) = (&c.name, &c.extra, c.status, &c.hits, &c.stop);
    let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
    let mut w = match s.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut r = BufReader::new(s);
    let mut idle = Instant::now();
    loop {
        let stopped = || stop.load(Ordering::SeqCst) || idle.elapsed() > Duration::from_secs(30);
        let Some(line) = next_request_line(&mut r, stopped) else {
            return;
        };
        let _ = r.get_ref().set_read_timeout(Some(Duration::from_secs(5)));
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut headers = BTreeMap::new();
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
                let k = k.trim().to_ascii_lowercase();
                let v = v.trim().to_string();
                headers
                    .entry(k)
                    .and_modify(|e: &mut String| {
                        e.push_str(", ");
                        e.push_str(&v)
                    })
                    .or_insert(v);
            }
        }
        let len = headers
            .get("content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let is_probe = headers
            .get("user-agent")
            .is_some_and(|ua| ua.starts_with("aralez-health"));
        let mut status = status;
        if is_probe {
            c.probes.fetch_add(1, Ordering::SeqCst);
            let host = headers.get("host").cloned().unwrap_or_default();
            c.probe_log
                .lock()
                .unwrap()
                .push(format!("{method} {path} {host}"));
            let forced = c.probe_status.load(Ordering::SeqCst);
            if forced != 0 {
                status = forced;
            }
        } else if !headers
            .get("user-agent")
            .is_some_and(|ua| ua.starts_with("aralez-detect"))
        {
            // protocol detection (a `HEAD /` on first use and with each probe) is not a hit either
            hits.fetch_add(1, Ordering::SeqCst);
            c.paths.lock().unwrap().push(path.clone());
        }
        if let Some(ms) = path
            .split("delay_ms=")
            .nth(1)
            .and_then(|v| v.split('&').next()?.parse::<u64>().ok())
        {
            std::thread::sleep(Duration::from_millis(ms));
        }
        let echo = serde_json::json!({
            "backend": name, "method": method, "path": path, "headers": headers,
            "body": String::from_utf8_lossy(&body),
        })
        .to_string();
        let mut resp = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            echo.len()
        );
        for (k, v) in extra {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        if w.write_all(resp.as_bytes()).is_err() {
            return;
        }
        if method != "HEAD" && w.write_all(echo.as_bytes()).is_err() {
            return;
        }
        let _ = r
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(200)));
        idle = Instant::now();
        if headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"))
        {
            return;
        }
    }
}

/// A running `aralez` process on a temp config; killed (SIGTERM, then SIGKILL) on drop.
pub struct Proxy {
    pub child: Child,
    pub http: SocketAddr,
    pub admin: SocketAddr,
    pub files: Option<SocketAddr>,
    pub dir: TempDir,
    pub log: PathBuf,
}

/// Options for [`Proxy::start`].
#[derive(Default)]
pub struct ProxyOpts<'a> {
    /// Extra main.yaml lines.
    pub main_extra: &'a str,
    /// Serve this folder with the built-in file server.
    pub file_server: Option<&'a Path>,
    /// Extra environment variables of the proxy process.
    pub env: &'a [(&'a str, &'a str)],
    /// Start from the config folder with a relative `-c main.yaml` (as `cd etc && aralez -c
    /// main.yaml`), instead of an absolute path from the test's working directory.
    pub relative_conf: bool,
    /// The proxy listener's address (default: a free port on 127.0.0.1).
    pub http_addr: Option<SocketAddr>,
}

impl Proxy {
    pub fn start(upstreams: &str) -> Self {
        Self::start_opts(upstreams, ProxyOpts::default())
    }

    pub fn start_opts(upstreams: &str, opts: ProxyOpts<'_>) -> Self {
        let dir = TempDir::new("proxy");
        let http: SocketAddr = opts
            .http_addr
            .unwrap_or_else(|| format!("127.0.0.1:{}", free_port()).parse().unwrap());
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let files = opts.file_server.map(|_| {
            format!("127.0.0.1:{}", free_port())
                .parse::<SocketAddr>()
                .unwrap()
        });
        dir.write("upstreams.yaml", upstreams);
        let mut main = format!(
            "proxy_address_http: \"{http}\"\nconfig_address: \"{admin}\"\nupstreams_conf: upstreams.yaml\nupgrade_sock: \"{}\"\naccess_log: all\n",
            dir.path().join("upgrade.sock").display()
        );
        if let (Some(folder), Some(addr)) = (opts.file_server, files) {
            main.push_str(&format!(
                "file_server_folder: \"{}\"\nfile_server_address: \"{addr}\"\n",
                folder.display()
            ));
        }
        main.push_str(opts.main_extra);
        let main_path = dir.write("main.yaml", &main);
        let log = dir.path().join("aralez.log");
        let mut cmd = Command::new(aralez_bin());
        if opts.relative_conf {
            cmd.current_dir(dir.path()).arg("-c").arg("main.yaml");
        } else {
            cmd.arg("-c").arg(&main_path);
        }
        let child = cmd
            .envs(opts.env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut p = Self {
            child,
            http,
            admin,
            files,
            dir,
            log,
        };
        p.wait_ready();
        p
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("aralez exited early ({status}):\n{}", self.log_text());
            }
            let ready = get(self.admin, "admin", "/readyz", &[]).is_ok_and(|r| r.status == 200);
            let serving = TcpStream::connect(self.http).is_ok();
            if ready && serving {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aralez did not become ready:\n{}", self.log_text());
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replaces upstreams.yaml (atomic rename).
    pub fn write_upstreams(&self, text: &str) {
        self.dir.write_atomic("upstreams.yaml", text);
    }

    /// `GET /config/status` as JSON.
    pub fn config_status(&self) -> serde_json::Value {
        let r = get(self.admin, "admin", "/config/status", &[]).unwrap();
        serde_json::from_slice(&r.body).unwrap()
    }

    /// The plan hash the proxy reports on /config/status.
    pub fn active_hash(&self) -> String {
        self.config_status()["active"]["hash"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// `GET /metrics` as text (empty when the admin API does not answer).
    pub fn metrics(&self) -> String {
        get(self.admin, "admin", "/metrics", &[]).map_or_else(|_| String::new(), |r| r.text())
    }

    /// Polls until `f` holds or `limit` passes; returns how long it took.
    pub fn wait_for(&self, limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if f() {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Sends `signal` (a `kill` name such as `HUP` or `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status();
        assert!(status.is_ok(), "kill -{signal} could not run");
    }

    /// Sends SIGHUP: reload upstreams.yaml, secrets and certificates.
    pub fn sighup(&self) {
        self.signal("HUP");
    }

    /// Sends SIGTERM and waits for the exit (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal("TERM");
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(25));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the binary with arguments from `cwd` for at most `limit`; returns (exit code, stdout,
/// stderr), or `None` (after killing it) when it was still running at the limit.
pub fn run_cli_bounded(
    args: &[&str],
    cwd: &Path,
    limit: Duration,
) -> Option<(i32, String, String)> {
    let out_path = cwd.join(".cli.stdout");
    let err_path = cwd.join(".cli.stderr");
    let mut child = Command::new(aralez_bin())
        .args(args)
        .current_dir(cwd)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(25));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    status.map(|s| (s.code().unwrap_or(-1), read(&out_path), read(&err_path)))
}

/// Runs the binary with arguments; returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], cwd: &Path) -> (i32, String, String) {
    let out = Command::new(aralez_bin())
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The next request line of a keep-alive connection whose reads time out (a read timeout only
/// means "ask `stopped` again"): `None` once the peer closed it, on an error, or when `stopped`.
pub fn next_request_line<R: BufRead>(r: &mut R, stopped: impl Fn() -> bool) -> Option<String> {
    loop {
        if stopped() {
            return None;
        }
        let mut line = String::new();
        match r.read_line(&mut line) {
            Ok(0) => return None,
            Ok(_) => return Some(line),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return None,
        }
    }
}
