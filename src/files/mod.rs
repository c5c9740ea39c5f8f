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

mod conditional;
mod date;
mod decision;
mod path;
mod service;

use conditional::*;
use date::*;
use decision::*;
use path::*;
pub use service::file_service;

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

/// Maps an I/O error on a path inside the root to a status.
fn io_status(e: &io::Error) -> StatusCode {
    if e.kind() == io::ErrorKind::PermissionDenied {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::NOT_FOUND
    }
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
