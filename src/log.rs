//! A small logger: one line per event to stderr or to `error_log`, `log_level` honoured.

use std::io::Write;
use std::sync::Mutex;

/// Where log lines go.
enum Sink {
    Stderr,
    File(Mutex<std::fs::File>),
}

struct Logger {
    level: log::LevelFilter,
    sink: Sink,
}

impl log::Log for Logger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        meta.level() <= self.level
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = timestamp();
        let line = format!(
            "{now} {} {}: {}\n",
            record.level(),
            record.target(),
            record.args()
        );
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
            Sink::File(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
        }
    }

    fn flush(&self) {}
}

/// Installs the process logger. `file`: append to this file instead of stderr.
pub fn init(level: log::LevelFilter, file: Option<&std::path::Path>) -> std::io::Result<()> {
    let sink = match file {
        Some(path) => Sink::File(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        )),
        None => Sink::Stderr,
    };
    // pingora logs every proxied error at `error`; keep its noise at our level too.
    if log::set_boxed_logger(Box::new(Logger { level, sink })).is_ok() {
        log::set_max_level(level);
    }
    Ok(())
}

/// Now as `2026-12-01T08:04:14.123Z` (UTC, milliseconds).
pub fn timestamp() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (y, m, d) = crate::calendar::civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        since.subsec_millis()
    )
}
