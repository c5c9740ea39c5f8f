//! The access log writer: lines handed over a bounded channel to one writer thread, which owns
//! the file (or stderr) and reopens it on SIGUSR1 (logrotate's `postrotate`).
//!
//! The request path only formats its line and `try_send`s it: no lock, no write, no wait. When the
//! writer falls behind by [`QUEUE_LINES`] lines, further lines are dropped and counted in
//! `aralez_access_log_dropped_total` instead of slowing requests down. The writer polls the queue
//! (see [`run`]) so that a request never wakes it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};

use aralez_compiler::AccessLogFormat;

/// Lines queued between the request path and the writer thread.
pub const QUEUE_LINES: usize = 8192;

/// How long the writer sleeps once the queue is empty.
const POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);

/// One access log entry, as the JSON line names its fields.
#[derive(Debug, serde::Serialize)]
pub struct Entry<'a> {
    /// UTC time the line was written, RFC 3339 with milliseconds.
    pub time: &'a str,
    /// `X-Request-Id` of the request.
    pub request_id: &'a str,
    /// The W3C trace id (32 hex digits).
    pub trace_id: &'a str,
    /// The address the request is attributed to (see `trusted_proxies`).
    pub client: Option<std::net::IpAddr>,
    /// The TCP peer.
    pub peer: Option<std::net::IpAddr>,
    /// The request method.
    pub method: &'a str,
    /// `Host` (or HTTP/2 `:authority`).
    pub host: &'a str,
    /// The path, without the query.
    pub path: &'a str,
    /// The response status (0: none was sent).
    pub status: u16,
    /// Request body bytes read from the client.
    pub bytes_in: usize,
    /// Response body bytes sent to the client.
    pub bytes_out: usize,
    /// Milliseconds from the request head to the end of the response.
    pub duration_ms: f64,
    /// The backend id, when one was chosen.
    pub upstream: Option<&'a str>,
    /// The route id, when the request was routed.
    pub route: Option<&'a str>,
    /// Hash of the generation that served the request.
    pub generation: &'a str,
    /// The route's authentication scheme (`none` without one).
    pub auth: &'a str,
    /// `ok`, `denied`, or `none` (no authentication ran).
    pub auth_result: &'a str,
    /// `pass`, `rate`, `x4xx` (which limit refused it), or `none` (not routed).
    pub limit: &'a str,
    /// pingora's error type when the request ended in an error.
    pub error: Option<&'a str>,
}

impl Entry<'_> {
    /// The entry as one JSON line, newline included.
    pub fn json_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        line.push('\n');
        line
    }
}

/// What the writer thread receives.
enum Message {
    Line(String),
    Reopen,
}

/// The sending side, shared by every request.
pub struct AccessLogWriter {
    sender: SyncSender<Message>,
    format: AccessLogFormat,
    dropped: prometheus::IntCounter,
}

/// Errors starting the writer.
#[derive(Debug)]
pub enum StartError {
    /// The file cannot be opened for appending.
    Open(PathBuf, std::io::Error),
    /// The writer thread or the SIGUSR1 listener cannot be started.
    Thread(std::io::Error),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Open(p, e) => write!(f, "cannot open access_log_file {}: {e}", p.display()),
            StartError::Thread(e) => write!(f, "cannot start the access log writer: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

impl AccessLogWriter {
    /// Opens `file` (stderr when `None`) and makes the queue. The lines queue up until
    /// [`WriterThread`] runs as a pingora background service (after a `daemon` fork, so that the
    /// thread lives in the serving process). `dropped` counts lines lost to a full queue.
    pub fn new(
        file: Option<PathBuf>,
        format: AccessLogFormat,
        dropped: prometheus::IntCounter,
    ) -> Result<(Self, WriterThread), StartError> {
        let sink = match &file {
            Some(path) => Sink::File(open(path).map_err(|e| StartError::Open(path.clone(), e))?),
            None => Sink::Stderr,
        };
        let (sender, receiver) = sync_channel(QUEUE_LINES);
        let thread = WriterThread {
            parts: std::sync::Mutex::new(Some((receiver, sink, file, sender.clone()))),
        };
        Ok((
            Self {
                sender,
                format,
                dropped,
            },
            thread,
        ))
    }

    /// The line format.
    pub fn format(&self) -> AccessLogFormat {
        self.format
    }

    /// Queues one line (newline included); never blocks: a full queue drops and counts it.
    pub fn write(&self, line: String) {
        match self.sender.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => self.dropped.inc(),
        }
    }
}

/// What the writer thread takes when it starts: the queue, the sink, the path to reopen and a
/// sender for SIGUSR1.
type Parts = (
    Receiver<Message>,
    Sink,
    Option<PathBuf>,
    SyncSender<Message>,
);

/// The writer thread and the SIGUSR1 listener, as a pingora background service.
pub struct WriterThread {
    parts: std::sync::Mutex<Option<Parts>>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for WriterThread {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let parts = self.parts.lock().ok().and_then(|mut p| p.take());
        if let Some((receiver, sink, file, reopen)) = parts {
            if let Err(e) = spawn(receiver, sink, file, reopen) {
                log::error!("{e}; access lines are dropped");
            }
        }
        let _ = shutdown.changed().await;
    }
}

fn spawn(
    receiver: Receiver<Message>,
    sink: Sink,
    file: Option<PathBuf>,
    reopen: SyncSender<Message>,
) -> Result<(), StartError> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGUSR1])
        .map_err(StartError::Thread)?;
    std::thread::Builder::new()
        .name("access-log".into())
        .spawn(move || run(receiver, sink, file))
        .map_err(StartError::Thread)?;
    std::thread::Builder::new()
        .name("access-log-usr1".into())
        .spawn(move || {
            for _ in signals.forever() {
                if reopen.send(Message::Reopen).is_err() {
                    return;
                }
            }
        })
        .map_err(StartError::Thread)?;
    Ok(())
}

enum Sink {
    Stderr,
    File(std::fs::File),
}

fn open(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

/// The writer loop. It never blocks on the queue: it drains whatever is queued (at most
/// [`QUEUE_LINES`] messages), writes it through a 64 KiB buffer, flushes, and sleeps
/// [`POLL_INTERVAL`] when the queue ran empty. So a request's `try_send` never has a parked
/// receiver to wake (no system call on the request path), and writes are batched. Lines reach the
/// file at most about [`POLL_INTERVAL`] after their request ended.
fn run(receiver: Receiver<Message>, sink: Sink, path: Option<PathBuf>) {
    let writer = |sink: Box<dyn Write>| std::io::BufWriter::with_capacity(64 * 1024, sink);
    let mut out = writer(match sink {
        Sink::Stderr => Box::new(std::io::stderr()),
        Sink::File(f) => Box::new(f),
    });
    loop {
        let mut drained = false;
        for _ in 0..QUEUE_LINES {
            match receiver.try_recv() {
                Ok(Message::Line(line)) => {
                    if let Err(e) = out.write_all(line.as_bytes()) {
                        log::warn!("access log: write failed: {e}");
                    }
                }
                Ok(Message::Reopen) => {
                    let _ = out.flush();
                    if let Some(path) = &path {
                        match open(path) {
                            Ok(f) => out = writer(Box::new(f)),
                            Err(e) => log::error!(
                                "access log: cannot reopen {}: {e}; still writing to the old file",
                                path.display()
                            ),
                        }
                    }
                }
                Err(TryRecvError::Empty) => {
                    drained = true;
                    break;
                }
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
        if drained {
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_escape_what_clients_send() {
        let e = Entry {
            time: "t",
            request_id: "r",
            trace_id: "t",
            client: "192.0.2.1".parse().ok(),
            peer: None,
            method: "GET",
            host: "a\"b\n",
            path: "/x\\y",
            status: 200,
            bytes_in: 1,
            bytes_out: 2,
            duration_ms: 1.5,
            upstream: None,
            route: Some("r1"),
            generation: "h",
            auth: "none",
            auth_result: "none",
            limit: "pass",
            error: None,
        };
        let line = e.json_line();
        assert!(line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["host"], "a\"b\n");
        assert_eq!(v["path"], "/x\\y");
        assert!(v["upstream"].is_null());
    }
}
