//! The built-in static file server (`file_server_folder` + `file_server_address` in main.yaml).
//!
//! [`FileServer`] serves the files of one folder as a pingora service ([`file_service`]). It is
//! deliberately small and strict; the rules an operator can rely on:
//!
//! * **Methods:** `GET` and `HEAD` only. Anything else is `405 Method Not Allowed` with
//!   `Allow: GET, HEAD`. `HEAD` answers with the same headers as `GET` (including the real
//!   `Content-Length`) and no body.
//! * **Paths** are percent-decoded exactly once. An invalid escape, an encoded `/`, `\` or NUL,
//!   a control character, bytes that are not UTF-8, a raw `\` in a segment, or a `.`/`..` segment
//!   are `400 Bad Request`. Empty segments (`//`) are collapsed. The query string is ignored for
//!   the lookup.
//! * **Hidden files:** any path segment starting with `.` is `404 Not Found`, with one exception:
//!   a first segment that is exactly `.well-known` (so `/.well-known/acme-challenge/...` and
//!   `/.well-known/security.txt` work; `/.well-known/.x` and `/sub/.well-known/x` do not). The same
//!   rule is applied again to the *resolved* path, so a symlink cannot smuggle a dotfile out.
//! * **Containment:** after joining, the path is canonicalized (symlinks resolved) and must stay
//!   under the canonical root, otherwise `404`. On Linux the opened file descriptor is checked
//!   once more through `/proc/self/fd`, which closes the race between resolving and opening.
//!   The root itself is resolved once, when the server is created: re-pointing a root symlink
//!   needs a restart (main.yaml changes need one anyway).
//! * **Only regular files** are served: FIFOs, sockets and devices are `404`.
//! * **Directories:** `index.html` is served for a directory; there is never a directory listing.
//!   A directory without a (regular, contained, non-hidden) `index.html` is `404`. A directory URL
//!   without the trailing slash gets `301 Moved Permanently` to the slash form (query kept), so
//!   that relative links in the index page resolve; the `Location` is rebuilt from the validated
//!   segments, so it always starts with exactly one `/` (no open redirect through `//host`). A
//!   file URL *with* a trailing slash is `404`.
//! * **Headers:** `Content-Type` from the extension (text types with `; charset=utf-8`,
//!   `application/octet-stream` otherwise), `X-Content-Type-Options: nosniff`, a weak `ETag`
//!   (size + modification time), `Last-Modified`, `Accept-Ranges: bytes`. No `Server` header.
//! * **Conditional requests:** `If-None-Match` (weak comparison, `*` allowed) and, only when
//!   `If-None-Match` is absent, `If-Modified-Since` give `304 Not Modified`. `If-Match` and
//!   `If-Unmodified-Since` are not evaluated (they matter for writes, which this server refuses).
//! * **Ranges** (GET only): one range `bytes=a-b`, `bytes=a-` or `bytes=-n` gives
//!   `206 Partial Content` with `Content-Range`; an unsatisfiable one `416` with
//!   `Content-Range: bytes */SIZE`; several ranges or a malformed header are ignored (`200`, whole
//!   file). `If-Range` is honoured: our ETags are weak, so only an exact `Last-Modified` date lets
//!   the range through; anything else sends the whole file.
//! * **Streaming:** bodies are read with `tokio::fs` and sent in chunks of at most
//!   [`CHUNK_SIZE`] bytes; a client that goes away mid-body ends the connection quietly (logged at
//!   debug level). A file that shrinks while being sent ends the connection (the promised
//!   `Content-Length` cannot be honoured); a file that grows is sent up to its size at open time.
//! * **Connection reuse:** a request carrying a body (unusual for GET/HEAD) closes the connection
//!   afterwards instead of draining an arbitrary amount of data; each body write has a
//!   [`WRITE_TIMEOUT`].
//!
//! The request-to-response logic is the blocking, pure-ish [`FileServer::plan`] (it only touches
//! the filesystem), which the async service runs on tokio's blocking pool and which tests can call
//! directly.
#![deny(clippy::indexing_slicing)]

use std::fs::{File, Metadata};
use std::io::{self, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use log::{debug, warn};
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ReusedHttpStream};
use pingora::http::ResponseHeader;
use pingora::protocols::http::ServerSession;
use pingora::server::ShutdownWatch;
use pingora::services::listening::Service;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Largest body chunk read from disk and handed to pingora at once.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// Longest a single body write to a client may take before the connection is dropped.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Name of the pingora service returned by [`file_service`].
pub const SERVICE_NAME: &str = "file server";

/// The only dot-segment that may be served, and only as the first segment.
const WELL_KNOWN: &str = ".well-known";

/// The file served for a directory.
const INDEX_FILE: &str = "index.html";

/// Request headers [`FileServer::plan`] looks at (everything else is ignored).
const RELEVANT_HEADERS: [HeaderName; 4] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::RANGE,
    header::IF_RANGE,
];

/// Serves files from one folder.
///
/// Create it with [`FileServer::new`], run it as a pingora service with [`file_service`] (it
/// implements [`HttpServerApp`]), or ask it what it would answer with [`FileServer::plan`].
/// See the [module documentation](self) for the exact rules.
#[derive(Debug, Clone)]
pub struct FileServer {
    /// The canonical (absolute, symlink-free) root folder.
    root: PathBuf,
}

/// What [`FileServer::plan`] decided to answer: status, headers and a body source.
///
/// For `HEAD` requests the body is always empty while the headers (including `Content-Length`)
/// are those of the corresponding `GET`.
#[derive(Debug)]
pub struct Decision {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Body,
    served: Option<PathBuf>,
}

/// Where the response body comes from.
#[derive(Debug)]
enum Body {
    /// No body bytes (HEAD, 304).
    Empty,
    /// A small generated body (errors, redirects).
    Bytes(Bytes),
    /// `len` bytes of an opened regular file, starting at `offset`.
    File { file: File, offset: u64, len: u64 },
}

/// A request path that passed decoding and sanitising.
#[derive(Debug, PartialEq, Eq)]
struct CleanPath {
    /// Decoded, validated, non-empty segments.
    segments: Vec<String>,
    /// Whether the raw path ended with `/`.
    trailing_slash: bool,
}

/// Why a request path was refused.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum PathError {
    /// Malformed or dangerous: `400`.
    BadRequest,
    /// Hidden (dot) segment: `404`.
    Hidden,
}

/// The outcome of evaluating a `Range` header against a representation length.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum RangeOutcome {
    /// No usable single range: send everything with `200`.
    Full,
    /// Send bytes `start..=end` with `206`.
    Partial { start: u64, end: u64 },
    /// `416 Range Not Satisfiable`.
    Unsatisfiable,
}

/// A resolved target inside the root.
struct Target {
    file: File,
    meta: Metadata,
    canonical: PathBuf,
    /// File name used to pick the `Content-Type` (the requested name, or `index.html`).
    type_name: String,
}

/// The result of resolving a clean path on disk.
enum Resolved {
    /// A regular file to serve.
    File(Box<Target>),
    /// A directory with an index, requested without the trailing slash.
    RedirectToSlash,
    /// Anything that must not or cannot be served, with its status.
    Refused(StatusCode),
}

impl FileServer {
    /// Creates a server for the folder `root`, which is canonicalized now.
    ///
    /// Fails if the folder does not exist, cannot be resolved, or is not a directory.
    pub fn new(root: &Path) -> io::Result<Self> {
        let root = std::fs::canonicalize(root)?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("file server folder {} is not a directory", root.display()),
            ));
        }
        Ok(FileServer { root })
    }

    /// The canonical root folder everything is served from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Decides the response to a request, touching only the filesystem (blocking calls).
    ///
    /// `path` is the raw (still percent-encoded) path of the request target, `query` its raw query
    /// string if any (only used to keep it across a directory redirect), `headers` the request
    /// headers (only the conditional and range headers are read). Never panics; every failure is a
    /// 4xx/5xx [`Decision`]. A [`Decision`] that sends a file holds it open.
    pub fn plan(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
    ) -> Decision {
        let head = method == Method::HEAD;
        if method != Method::GET && !head {
            let mut d = Decision::error(StatusCode::METHOD_NOT_ALLOWED, false);
            d.push(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return d;
        }
        let clean = match clean_path(path) {
            Ok(clean) => clean,
            Err(PathError::BadRequest) => {
                debug!("file server: refusing malformed path {path:?}");
                return Decision::error(StatusCode::BAD_REQUEST, head);
            }
            Err(PathError::Hidden) => return Decision::error(StatusCode::NOT_FOUND, head),
        };
        match self.resolve(&clean) {
            Resolved::File(target) => file_decision(*target, method, headers),
            Resolved::RedirectToSlash => redirect_to_slash(&clean.segments, query, head),
            Resolved::Refused(status) => Decision::error(status, head),
        }
    }

    /// Maps a clean path to a regular file under the root (or a refusal).
    fn resolve(&self, clean: &CleanPath) -> Resolved {
        let mut joined = self.root.clone();
        for segment in &clean.segments {
            joined.push(segment);
        }
        let Some(canonical) = self.contained(&joined) else {
            return Resolved::Refused(StatusCode::NOT_FOUND);
        };
        let meta = match std::fs::metadata(&canonical) {
            Ok(meta) => meta,
            Err(e) => return Resolved::Refused(io_status(&e)),
        };
        if meta.is_dir() {
            let Some(index) = self.contained(&canonical.join(INDEX_FILE)) else {
                return Resolved::Refused(StatusCode::NOT_FOUND);
            };
            if !clean.trailing_slash {
                // Only redirect when there is something to show at the slash form.
                return match std::fs::metadata(&index) {
                    Ok(m) if m.is_file() => Resolved::RedirectToSlash,
                    _ => Resolved::Refused(StatusCode::NOT_FOUND),
                };
            }
            return self.open(index, INDEX_FILE.to_owned());
        }
        if clean.trailing_slash || !meta.is_file() {
            return Resolved::Refused(StatusCode::NOT_FOUND);
        }
        let type_name = clean.segments.last().cloned().unwrap_or_default();
        self.open(canonical, type_name)
    }

    /// Canonicalizes `path` and returns it if it is under the root and not hidden.
    fn contained(&self, path: &Path) -> Option<PathBuf> {
        let canonical = match std::fs::canonicalize(path) {
            Ok(c) => c,
            Err(e) => {
                debug!("file server: cannot resolve {}: {e}", path.display());
                return None;
            }
        };
        if self.is_inside(&canonical) {
            Some(canonical)
        } else {
            debug!(
                "file server: {} resolves outside the root or to a hidden file",
                path.display()
            );
            None
        }
    }

    /// Whether a canonical path is under the root and has no hidden component below it.
    fn is_inside(&self, canonical: &Path) -> bool {
        let Ok(rel) = canonical.strip_prefix(&self.root) else {
            return false;
        };
        rel.components().enumerate().all(|(i, c)| match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                !name.starts_with('.') || (i == 0 && name == WELL_KNOWN)
            }
            _ => false,
        })
    }

    /// Opens a canonical path and checks that what was opened is a regular file inside the root.
    fn open(&self, canonical: PathBuf, type_name: String) -> Resolved {
        let file = match File::open(&canonical) {
            Ok(f) => f,
            Err(e) => {
                debug!("file server: cannot open {}: {e}", canonical.display());
                return Resolved::Refused(io_status(&e));
            }
        };
        let meta = match file.metadata() {
            Ok(m) => m,
            Err(e) => return Resolved::Refused(io_status(&e)),
        };
        if !meta.is_file() || !self.opened_inside(&file) {
            return Resolved::Refused(StatusCode::NOT_FOUND);
        }
        Resolved::File(Box::new(Target {
            file,
            meta,
            canonical,
            type_name,
        }))
    }

    /// On Linux, re-checks the path of the opened descriptor (closes the resolve/open race).
    #[cfg(target_os = "linux")]
    fn opened_inside(&self, file: &File) -> bool {
        use std::os::fd::AsRawFd;
        match std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())) {
            Ok(actual) => {
                let inside = self.is_inside(&actual);
                if !inside {
                    debug!(
                        "file server: opened file is {}, outside the root",
                        actual.display()
                    );
                }
                inside
            }
            // No /proc: fall back to the canonicalize check already done.
            Err(_) => true,
        }
    }

    /// Elsewhere the canonicalize check is all there is.
    #[cfg(not(target_os = "linux"))]
    fn opened_inside(&self, _file: &File) -> bool {
        true
    }
}

impl Decision {
    /// The response status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The response headers, in sending order.
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// The first value of header `name` (case-insensitive), if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.as_str().eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.to_str().ok())
    }

    /// The canonical path of the file this response comes from (also for `HEAD`, `304`, `416`).
    pub fn served_path(&self) -> Option<&Path> {
        self.served.as_deref()
    }

    /// The `(offset, length)` of the file bytes this response will send, if it sends a file.
    pub fn file_range(&self) -> Option<(u64, u64)> {
        match self.body {
            Body::File { offset, len, .. } => Some((offset, len)),
            _ => None,
        }
    }

    /// Reads the whole planned body into memory (blocking; meant for tests and tooling).
    pub fn read_body(self) -> io::Result<Vec<u8>> {
        match self.body {
            Body::Empty => Ok(Vec::new()),
            Body::Bytes(b) => Ok(b.to_vec()),
            Body::File {
                mut file,
                offset,
                len,
            } => {
                file.seek(SeekFrom::Start(offset))?;
                let mut out = Vec::new();
                file.take(len).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }

    /// A small text error (or other generated) response; `head` drops the body.
    fn error(status: StatusCode, head: bool) -> Self {
        let text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        let mut d = Decision {
            status,
            headers: Vec::with_capacity(4),
            body: Body::Empty,
            served: None,
        };
        d.push(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        d.push(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        d.push(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
        if !head {
            d.body = Body::Bytes(Bytes::from(text));
        }
        d
    }

    fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.headers.push((name, value));
    }

    /// Builds the pingora response header.
    fn response_header(&self) -> pingora::Result<ResponseHeader> {
        let mut resp = ResponseHeader::build_no_case(self.status, Some(self.headers.len()))?;
        for (name, value) in &self.headers {
            resp.append_header(name.clone(), value.clone())?;
        }
        Ok(resp)
    }
}

/// The decision for a resolved regular file.
fn file_decision(target: Target, method: &Method, headers: &HeaderMap) -> Decision {
    let Target {
        file,
        meta,
        canonical,
        type_name,
    } = target;
    let head = method == Method::HEAD;
    let size = meta.len();
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok());
    let etag = mtime.map(|m| weak_etag(size, m));
    let last_modified = mtime.map(|m| format_http_date(m.as_secs()));

    let mut d = Decision {
        status: StatusCode::OK,
        headers: Vec::with_capacity(8),
        body: Body::Empty,
        served: Some(canonical),
    };
    let validators = |d: &mut Decision| {
        if let Some(v) = etag.as_deref().and_then(|e| HeaderValue::from_str(e).ok()) {
            d.push(header::ETAG, v);
        }
        if let Some(v) = last_modified
            .as_deref()
            .and_then(|l| HeaderValue::from_str(l).ok())
        {
            d.push(header::LAST_MODIFIED, v);
        }
    };

    if not_modified(headers, etag.as_deref(), mtime) {
        d.status = StatusCode::NOT_MODIFIED;
        validators(&mut d);
        d.push(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        return d;
    }

    let range = match headers.get(header::RANGE) {
        Some(value) if method == Method::GET => {
            let if_range_ok = match headers.get(header::IF_RANGE) {
                None => true,
                Some(v) => if_range_matches(v.as_bytes(), last_modified.as_deref()),
            };
            if if_range_ok {
                parse_range(value.as_bytes(), size)
            } else {
                RangeOutcome::Full
            }
        }
        _ => RangeOutcome::Full,
    };

    if range == RangeOutcome::Unsatisfiable {
        let mut e = Decision::error(StatusCode::RANGE_NOT_SATISFIABLE, head);
        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
            e.push(header::CONTENT_RANGE, v);
        }
        e.push(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        e.served = d.served;
        return e;
    }

    d.push(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&type_name)),
    );
    d.push(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    d.push(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    validators(&mut d);
    let (offset, len) = match range {
        RangeOutcome::Partial { start, end } => {
            d.status = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")) {
                d.push(header::CONTENT_RANGE, v);
            }
            (start, end.saturating_sub(start).saturating_add(1))
        }
        _ => (0, size),
    };
    d.push(header::CONTENT_LENGTH, HeaderValue::from(len));
    if !head {
        d.body = Body::File { file, offset, len };
    }
    d
}

/// `301` from a directory URL to its slash form.
fn redirect_to_slash(segments: &[String], query: Option<&str>, head: bool) -> Decision {
    let mut location = String::from("/");
    for segment in segments {
        encode_segment(segment, &mut location);
        location.push('/');
    }
    if let Some(q) = query.filter(|q| q.bytes().all(|b| (0x21..=0x7e).contains(&b))) {
        location.push('?');
        location.push_str(q);
    }
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            let mut d = Decision::error(StatusCode::MOVED_PERMANENTLY, head);
            d.push(header::LOCATION, v);
            d
        }
        Err(_) => Decision::error(StatusCode::INTERNAL_SERVER_ERROR, head),
    }
}

/// Percent-encodes a decoded segment so that it is a valid `pchar*` again.
fn encode_segment(segment: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in segment.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0x0f] {
                out.push(char::from(
                    HEX.get(usize::from(nibble)).copied().unwrap_or(b'0'),
                ));
            }
        }
    }
}

/// Maps an I/O error on a path inside the root to a status.
fn io_status(e: &io::Error) -> StatusCode {
    if e.kind() == io::ErrorKind::PermissionDenied {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::NOT_FOUND
    }
}

/// Decodes and validates the raw request path.
fn clean_path(raw: &str) -> Result<CleanPath, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::BadRequest);
    };
    let mut segments = Vec::new();
    let mut hidden = false;
    for raw_segment in rest.split('/') {
        if raw_segment.is_empty() {
            continue;
        }
        let segment = decode_segment(raw_segment)?;
        if segment == "." || segment == ".." || segment.contains('\\') {
            return Err(PathError::BadRequest);
        }
        if segment.starts_with('.') && !(segments.is_empty() && segment == WELL_KNOWN) {
            // Keep validating: a later malformed segment is still a 400.
            hidden = true;
        }
        segments.push(segment);
    }
    if hidden {
        return Err(PathError::Hidden);
    }
    Ok(CleanPath {
        segments,
        trailing_slash: raw.ends_with('/'),
    })
}

/// Percent-decodes one segment once, refusing bad escapes and dangerous bytes.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let mut out = Vec::with_capacity(raw.len());
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let decoded = if b == b'%' {
            let hi = bytes.next().and_then(hex_value);
            let lo = bytes.next().and_then(hex_value);
            match (hi, lo) {
                (Some(hi), Some(lo)) => {
                    let v = (hi << 4) | lo;
                    if v == b'/' || v == b'\\' || v == 0 {
                        return Err(PathError::BadRequest);
                    }
                    v
                }
                _ => return Err(PathError::BadRequest),
            }
        } else {
            b
        };
        if decoded < 0x20 || decoded == 0x7f {
            return Err(PathError::BadRequest);
        }
        out.push(decoded);
    }
    String::from_utf8(out).map_err(|_| PathError::BadRequest)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `Content-Type` for a file name, by extension (case-insensitive).
fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext.to_ascii_lowercase(),
        _ => return "application/octet-stream",
    };
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" | "cjs" => "text/javascript; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        _ => "application/octet-stream",
    }
}

/// Weak validator from size and modification time: `W/"<size hex>-<mtime ns hex>"`.
fn weak_etag(size: u64, mtime: Duration) -> String {
    format!("W/\"{size:x}-{:x}\"", mtime.as_nanos())
}

/// Whether `If-None-Match` / `If-Modified-Since` make this a `304`.
fn not_modified(headers: &HeaderMap, etag: Option<&str>, mtime: Option<Duration>) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        return etag.is_some_and(|e| etag_list_matches(inm.as_bytes(), e));
    }
    match (headers.get(header::IF_MODIFIED_SINCE), mtime) {
        (Some(ims), Some(mtime)) => std::str::from_utf8(ims.as_bytes())
            .ok()
            .and_then(parse_http_date)
            .is_some_and(|since| mtime.as_secs() <= since),
        _ => false,
    }
}

/// Weak comparison of an `If-None-Match` list (or `*`) against our ETag.
fn etag_list_matches(list: &[u8], ours: &str) -> bool {
    let Ok(list) = std::str::from_utf8(list) else {
        return false;
    };
    let ours = ours.strip_prefix("W/").unwrap_or(ours);
    let Some(ours) = ours.strip_prefix('"').and_then(|o| o.strip_suffix('"')) else {
        return false;
    };
    if list.trim() == "*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix("W/").unwrap_or(rest);
        let Some((opaque, after)) = tag.strip_prefix('"').and_then(|t| t.split_once('"')) else {
            return false;
        };
        if opaque == ours {
            return true;
        }
        rest = after;
    }
}

/// `If-Range`: entity tags never match (ours are weak); a date must equal `Last-Modified`.
fn if_range_matches(value: &[u8], last_modified: Option<&str>) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return false;
    }
    match (
        parse_http_date(value),
        last_modified.and_then(parse_http_date),
    ) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// Evaluates a `Range` header for a representation of `size` bytes.
///
/// Only a single `bytes` range is honoured; several ranges or anything malformed is [`Full`].
///
/// [`Full`]: RangeOutcome::Full
fn parse_range(value: &[u8], size: u64) -> RangeOutcome {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeOutcome::Full;
    };
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full; // none or several
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `n` bytes.
        let Some(n) = parse_digits(last) else {
            return RangeOutcome::Full;
        };
        if n == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        if size == 0 {
            return RangeOutcome::Full; // nothing to slice; send the (empty) whole
        }
        return RangeOutcome::Partial {
            start: size.saturating_sub(n),
            end: size - 1,
        };
    }
    let Some(start) = parse_digits(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_digits(last) {
            Some(end) if end >= start => end,
            _ => return RangeOutcome::Full, // invalid range-spec: ignore the header
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end: end.min(size - 1),
    }
}

/// Parses a non-empty run of ASCII digits, saturating at `u64::MAX`.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |acc, b| {
        acc.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the epoch as an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`).
fn format_http_date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let rem = secs % 86_400;
    let (y, m, d) = crate::calendar::civil_from_days(days);
    let weekday = DAYS
        .get(usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0))
        .copied()
        .unwrap_or("Sun");
    let month = MONTHS
        .get(usize::try_from(m.saturating_sub(1)).unwrap_or(0))
        .copied()
        .unwrap_or("Jan");
    format!(
        "{weekday}, {d:02} {month} {y:04} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses an HTTP-date in any of the three formats RFC 9110 requires recipients to accept
/// (IMF-fixdate, RFC 850, asctime) into seconds since the epoch. Dates before 1970 are `None`.
fn parse_http_date(s: &str) -> Option<u64> {
    let tokens: Vec<&str> = s.split_whitespace().collect();
    let (day, month, year, time) = match tokens.as_slice() {
        // Sun, 06 Nov 1994 08:49:37 GMT
        [_, day, month, year, time, "GMT"] => (
            parse_digits(day)?,
            *month,
            parse_fixed_digits(year, 4)?,
            *time,
        ),
        // Sunday, 06-Nov-94 08:49:37 GMT
        [_, date, time, "GMT"] => {
            let mut parts = date.split('-');
            let (Some(day), Some(month), Some(yy), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return None;
            };
            let yy = parse_fixed_digits(yy, 2)?;
            let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
            (parse_digits(day)?, month, year, *time)
        }
        // Sun Nov  6 08:49:37 1994
        [_, month, day, time, year] => (
            parse_digits(day)?,
            *month,
            parse_fixed_digits(year, 4)?,
            *time,
        ),
        _ => return None,
    };
    let month = MONTHS.iter().position(|m| *m == month)?;
    let mut hms = time.split(':');
    let (Some(h), Some(mi), Some(sec), None) = (hms.next(), hms.next(), hms.next(), hms.next())
    else {
        return None;
    };
    let (h, mi, sec) = (
        parse_fixed_digits(h, 2)?,
        parse_fixed_digits(mi, 2)?,
        parse_fixed_digits(sec, 2)?,
    );
    if !(1..=31).contains(&day) || h > 23 || mi > 59 || sec > 60 || year < 1970 {
        return None;
    }
    let days = crate::calendar::days_from_civil(
        i64::try_from(year).ok()?,
        i64::try_from(month).ok()? + 1,
        i64::try_from(day).ok()?,
    );
    let days = u64::try_from(days).ok()?;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Parses exactly `n` ASCII digits.
fn parse_fixed_digits(s: &str, n: usize) -> Option<u64> {
    if s.len() != n {
        return None;
    }
    parse_digits(s)
}

/// Sends a decision on the session. `Err(())` means the connection must not be reused.
async fn send(session: &mut ServerSession, decision: Decision) -> Result<(), ()> {
    let header = decision.response_header().map_err(|e| {
        warn!("file server: cannot build response header: {e}");
    })?;
    session
        .write_response_header(Box::new(header))
        .await
        .map_err(|e| debug!("file server: writing header failed: {e}"))?;
    match decision.body {
        Body::Empty => session.finish_body().await.map_err(|e| {
            debug!("file server: finishing response failed: {e}");
        }),
        Body::Bytes(bytes) => session
            .write_response_body(bytes, true)
            .await
            .map_err(|e| debug!("file server: writing body failed: {e}")),
        Body::File { file, offset, len } => stream_file(session, file, offset, len).await,
    }
}

/// Streams `len` bytes of `file` from `offset` in chunks of at most [`CHUNK_SIZE`].
async fn stream_file(
    session: &mut ServerSession,
    file: File,
    offset: u64,
    len: u64,
) -> Result<(), ()> {
    if len == 0 {
        return session
            .finish_body()
            .await
            .map_err(|e| debug!("file server: finishing response failed: {e}"));
    }
    let mut file = tokio::fs::File::from_std(file);
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))
            .await
            .map_err(|e| debug!("file server: seek failed: {e}"))?;
    }
    let mut reader = file.take(len);
    let mut remaining = len;
    while remaining > 0 {
        let want = usize::try_from(remaining).map_or(CHUNK_SIZE, |r| r.min(CHUNK_SIZE));
        let mut buf = BytesMut::with_capacity(want);
        let n = reader
            .read_buf(&mut buf)
            .await
            .map_err(|e| debug!("file server: read failed: {e}"))?;
        if n == 0 {
            debug!("file server: file shrank while being sent; closing the connection");
            return Err(());
        }
        remaining = remaining.saturating_sub(n as u64);
        session
            .write_response_body(buf.freeze(), remaining == 0)
            .await
            .map_err(|e| debug!("file server: client went away: {e}"))?;
    }
    Ok(())
}

#[async_trait]
impl HttpServerApp for FileServer {
    async fn process_new_http(
        self: &Arc<Self>,
        mut session: ServerSession,
        shutdown: &ShutdownWatch,
    ) -> Option<ReusedHttpStream> {
        match session.read_request().await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                debug!("file server: cannot read request: {e}");
                return None;
            }
        }
        if *shutdown.borrow() || !session.is_body_empty() {
            session.set_keepalive(None);
        }
        session.set_write_timeout(Some(WRITE_TIMEOUT));

        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_owned();
        let query = req.uri.query().map(str::to_owned);
        let mut headers = HeaderMap::new();
        for name in RELEVANT_HEADERS {
            for value in req.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let server = Arc::clone(self);
        let head = method == Method::HEAD;
        let decision = match tokio::task::spawn_blocking(move || {
            server.plan(&method, &path, query.as_deref(), &headers)
        })
        .await
        {
            Ok(d) => d,
            Err(e) => {
                warn!("file server: request task failed: {e}");
                Decision::error(StatusCode::INTERNAL_SERVER_ERROR, head)
            }
        };
        debug!(
            "file server: {} {} -> {}",
            session.req_header().method,
            session.req_header().uri,
            decision.status.as_u16()
        );
        send(&mut session, decision).await.ok()?;

        let settings = HttpPersistentSettings::for_session(&session);
        match session.finish().await {
            Ok(stream) => stream.map(|s| ReusedHttpStream::from_reusable_stream(s, settings)),
            Err(e) => {
                debug!("file server: finishing the request failed: {e}");
                None
            }
        }
    }
}

/// Builds the pingora service (named [`SERVICE_NAME`]) serving `root` on a TCP listener at `addr`.
///
/// Fails if `root` is not an existing directory (see [`FileServer::new`]). Binding happens when
/// the pingora server starts the service.
pub fn file_service(root: &Path, addr: SocketAddr) -> io::Result<Service<FileServer>> {
    let server = FileServer::new(root)?;
    let mut service = Service::new(SERVICE_NAME.to_owned(), server);
    service.add_tcp(&addr.to_string());
    Ok(service)
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_accepts_normal_paths() {
        let p = clean_path("/a/b%20c/d.txt").unwrap();
        assert_eq!(p.segments, ["a", "b c", "d.txt"]);
        assert!(!p.trailing_slash);
        let p = clean_path("/").unwrap();
        assert!(p.segments.is_empty());
        assert!(p.trailing_slash);
        let p = clean_path("//a///b/").unwrap();
        assert_eq!(p.segments, ["a", "b"]);
        assert!(p.trailing_slash);
        assert_eq!(clean_path("/caf%C3%A9").unwrap().segments, ["caf\u{e9}"]);
        assert_eq!(clean_path("/a%25b").unwrap().segments, ["a%b"]);
        assert_eq!(
            clean_path("/.well-known/acme-challenge/x")
                .unwrap()
                .segments,
            [".well-known", "acme-challenge", "x"]
        );
        assert_eq!(clean_path("/a..b").unwrap().segments, ["a..b"]);
    }

    #[test]
    fn clean_path_refuses_traversal_and_bad_escapes() {
        for bad in [
            "",
            "*",
            "a/b",
            "/..",
            "/../etc/passwd",
            "/a/../../etc",
            "/%2e%2e/etc",
            "/%2E%2E/etc",
            "/.%2e/etc",
            "/./x",
            "/..%2fetc/passwd",
            "/a%2Fb",
            "/a%5cb",
            "/a\\b",
            "/..\\x",
            "/%00",
            "/a%00b",
            "/%",
            "/%4",
            "/%zz",
            "/%C3%28",
            "/a%0ab",
            "/a%7f",
            "/a\tb",
            "/.git/../x",
        ] {
            assert_eq!(clean_path(bad), Err(PathError::BadRequest), "{bad:?}");
        }
    }

    #[test]
    fn clean_path_hides_dotfiles() {
        for hidden in [
            "/.env",
            "/.git/config",
            "/sub/.htpasswd",
            "/%2egit/HEAD",
            "/.well-known/.secret",
            "/sub/.well-known/x",
            "/.well-knownx/y",
        ] {
            assert_eq!(clean_path(hidden), Err(PathError::Hidden), "{hidden:?}");
        }
    }

    #[test]
    fn percent_decoding_happens_once() {
        // %252e%252e decodes to the literal name "%2e%2e", not to "..".
        assert_eq!(
            clean_path("/%252e%252e/x").unwrap().segments,
            ["%2e%2e", "x"]
        );
    }

    #[test]
    fn encode_segment_round_trips() {
        let mut out = String::new();
        encode_segment("a b/%?#\u{e9}~", &mut out);
        assert_eq!(out, "a%20b%2F%25%3F%23%C3%A9~");
        assert_eq!(clean_path(&format!("/{out}")), Err(PathError::BadRequest)); // has %2F
        let mut out = String::new();
        encode_segment("caf\u{e9} x", &mut out);
        assert_eq!(
            clean_path(&format!("/{out}")).unwrap().segments,
            ["caf\u{e9} x"]
        );
    }

    #[test]
    fn ranges() {
        use RangeOutcome::*;
        let r = |v: &str, size| parse_range(v.as_bytes(), size);
        assert_eq!(r("bytes=0-0", 10), Partial { start: 0, end: 0 });
        assert_eq!(r("bytes=2-5", 10), Partial { start: 2, end: 5 });
        assert_eq!(r("bytes=2-500", 10), Partial { start: 2, end: 9 });
        assert_eq!(r("bytes=7-", 10), Partial { start: 7, end: 9 });
        assert_eq!(r("bytes=-3", 10), Partial { start: 7, end: 9 });
        assert_eq!(r("bytes=-30", 10), Partial { start: 0, end: 9 });
        assert_eq!(r("Bytes = 1-2 ", 10), Partial { start: 1, end: 2 });
        assert_eq!(r("bytes=1-2,", 10), Partial { start: 1, end: 2 });
        assert_eq!(
            r("bytes=0-99999999999999999999999", 10),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(r("bytes=10-", 10), Unsatisfiable);
        assert_eq!(r("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(r("bytes=99999999999999999999999-", 10), Unsatisfiable);
        assert_eq!(r("bytes=-0", 10), Unsatisfiable);
        assert_eq!(r("bytes=0-", 0), Unsatisfiable);
        assert_eq!(r("bytes=-5", 0), Full);
        // Ignored: multi-range, malformed, other units, reversed.
        for full in [
            "bytes=0-1,3-4",
            "bytes=0-1, -2",
            "bytes=",
            "bytes=-",
            "bytes=a-b",
            "bytes=1",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=5-2",
            "items=0-1",
            "bytes 0-1",
            "",
        ] {
            assert_eq!(r(full, 10), Full, "{full:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 10), Full);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("A.HTM"), "text/html; charset=utf-8");
        assert_eq!(content_type("s.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.json"), "application/json");
        assert_eq!(content_type("a.txt"), "text/plain; charset=utf-8");
        assert_eq!(content_type("a.svg"), "image/svg+xml");
        assert_eq!(content_type("a.png"), "image/png");
        assert_eq!(content_type("a.jpg"), "image/jpeg");
        assert_eq!(content_type("a.jpeg"), "image/jpeg");
        assert_eq!(content_type("a.gif"), "image/gif");
        assert_eq!(content_type("a.webp"), "image/webp");
        assert_eq!(content_type("favicon.ico"), "image/x-icon");
        assert_eq!(content_type("m.wasm"), "application/wasm");
        assert_eq!(content_type("f.woff"), "font/woff");
        assert_eq!(content_type("f.woff2"), "font/woff2");
        assert_eq!(content_type("d.pdf"), "application/pdf");
        assert_eq!(content_type("f.xml"), "application/xml");
        assert_eq!(content_type("a.js.map"), "application/json");
        assert_eq!(content_type("noext"), "application/octet-stream");
        assert_eq!(content_type("a.exe"), "application/octet-stream");
        assert_eq!(content_type(".html"), "application/octet-stream");
        assert_eq!(content_type(""), "application/octet-stream");
    }

    #[test]
    fn etags() {
        let m = Duration::new(1_700_000_000, 123);
        let e = weak_etag(42, m);
        assert!(e.starts_with("W/\"2a-"), "{e}");
        assert_ne!(e, weak_etag(43, m));
        assert_ne!(e, weak_etag(42, Duration::new(1_700_000_000, 124)));
        let opaque = e.trim_start_matches("W/");
        assert!(etag_list_matches(e.as_bytes(), &e));
        assert!(etag_list_matches(opaque.as_bytes(), &e));
        assert!(etag_list_matches(
            format!("\"x\", {e} ,\"y\"").as_bytes(),
            &e
        ));
        assert!(etag_list_matches(b" * ", &e));
        assert!(!etag_list_matches(b"\"other\"", &e));
        assert!(!etag_list_matches(b"", &e));
        assert!(!etag_list_matches(b"garbage", &e));
        assert!(!etag_list_matches(b"\"unterminated", &e));
        assert!(!etag_list_matches(b"\xff", &e));
    }

    #[test]
    fn http_dates() {
        assert_eq!(format_http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(
            format_http_date(784_111_777),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            format_http_date(951_782_400),
            "Tue, 29 Feb 2000 00:00:00 GMT"
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Sun Nov  6 08:49:37 1994"),
            Some(784_111_777)
        );
        for secs in [0, 59, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800] {
            assert_eq!(parse_http_date(&format_http_date(secs)), Some(secs));
        }
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Sun, 06 Nov 1969 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
        let now = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert_eq!(parse_http_date(&format_http_date(now)), Some(now));
    }

    #[test]
    fn if_range() {
        let lm = format_http_date(1_700_000_000);
        assert!(if_range_matches(lm.as_bytes(), Some(&lm)));
        assert!(!if_range_matches(lm.as_bytes(), None));
        assert!(!if_range_matches(
            format_http_date(1_700_000_001).as_bytes(),
            Some(&lm)
        ));
        assert!(!if_range_matches(b"W/\"1-2\"", Some(&lm)));
        assert!(!if_range_matches(b"\"1-2\"", Some(&lm)));
    }
}
