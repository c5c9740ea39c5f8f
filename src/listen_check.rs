//! Listener preflight: before pingora starts, every configured listener address is bound once
//! (and released), so that a busy port refuses the start with a clear message and a non-zero exit
//! instead of a panicking pingora thread and a process that reports ready while serving nothing.
//!
//! Skipped for `-u` (graceful upgrade): the sockets then come from the old process, which still
//! holds them. With `user`/`group`, the sockets are bound here as root and kept ([`bind`]), then
//! handed to pingora ([`hand_over`]) before the privileges are dropped.

use std::fmt;
use std::net::{SocketAddr, TcpListener};

use aralez_compiler::MainConfig;

/// A listener address that cannot be bound.
#[derive(Debug)]
pub struct ListenError {
    /// The address from main.yaml.
    pub addr: SocketAddr,
    /// The main.yaml key that names it (`proxy_address_http`, `config_address`, …).
    pub setting: &'static str,
    /// Why the bind failed (e.g. address in use, permission denied).
    pub source: std::io::Error,
}

impl fmt::Display for ListenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot listen on {} ({}): {}",
            self.addr, self.setting, self.source
        )
    }
}

impl std::error::Error for ListenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Every listener address main.yaml configures, with the key that names it, in a fixed order.
pub fn listeners(cfg: &MainConfig) -> Vec<(&'static str, SocketAddr)> {
    let mut out = vec![
        ("proxy_address_http", cfg.proxy_address_http),
        ("config_address", cfg.config_address),
    ];
    let optional = [
        ("proxy_address_tls", cfg.proxy_address_tls),
        ("config_tls_address", cfg.config_tls_address),
        ("file_server_address", cfg.file_server_address),
    ];
    out.extend(
        optional
            .into_iter()
            .filter_map(|(name, addr)| addr.map(|a| (name, a))),
    );
    out
}

/// Binds every address of `listeners` at the same time (so that two settings naming the same
/// address are caught too), then releases them all. Returns one error per address that failed.
pub fn check(listeners: &[(&'static str, SocketAddr)]) -> Vec<ListenError> {
    match bind(listeners) {
        Ok(_held) => Vec::new(),
        Err(errors) => errors,
    }
}

/// Binds every address of `listeners` and keeps them (for the privilege drop: bound as root,
/// handed to pingora with [`hand_over`]).
pub fn bind(
    listeners: &[(&'static str, SocketAddr)],
) -> Result<Vec<(SocketAddr, TcpListener)>, Vec<ListenError>> {
    let mut held = Vec::with_capacity(listeners.len());
    let mut errors = Vec::new();
    for &(setting, addr) in listeners {
        match TcpListener::bind(addr) {
            Ok(l) => held.push((addr, l)),
            Err(source) => errors.push(ListenError {
                addr,
                setting,
                source,
            }),
        }
    }
    if errors.is_empty() {
        Ok(held)
    } else {
        Err(errors)
    }
}

/// Sends bound `listeners` over pingora's listener hand-over socket `sock` (what an old process
/// does for `-u`), from a thread: the pingora server must have been made with `upgrade: true`
/// and `upgrade_sock: sock`, and its `bootstrap()` receives them. Our copies are closed once
/// sent. Join the handle after `bootstrap()` returns.
pub fn hand_over(
    listeners: Vec<(SocketAddr, TcpListener)>,
    sock: String,
) -> std::io::Result<std::thread::JoinHandle<Result<(), String>>> {
    std::thread::Builder::new()
        .name("aralez-hand-over".into())
        .spawn(move || {
            use std::os::fd::AsRawFd;
            let mut fds = pingora::server::Fds::new();
            for (addr, l) in &listeners {
                // pingora's runtime expects non-blocking sockets (as an old process's are); the
                // flag belongs to the socket, so the copy pingora receives has it too
                if let Err(e) = l.set_nonblocking(true) {
                    return Err(format!("{addr}: {e}"));
                }
                fds.add(addr.to_string(), l.as_raw_fd());
            }
            let sent = fds
                .send_to_sock(sock.as_str())
                .map(|_| ())
                .map_err(|e| format!("handing the listeners over: {e}"));
            drop(listeners);
            sent
        })
}

/// The start-up step: unless `upgrade`, checks every listener of `cfg`; `Err` holds every
/// address that cannot be listened on.
pub fn preflight(cfg: &MainConfig, upgrade: bool) -> Result<(), Vec<ListenError>> {
    if upgrade {
        return Ok(());
    }
    let errors = check(&listeners(cfg));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_busy_address_is_named_with_its_setting() {
        let busy = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = busy.local_addr().unwrap();
        let errors = check(&[("config_address", addr)]);
        assert_eq!(errors.len(), 1);
        let text = errors[0].to_string();
        assert!(
            text.starts_with(&format!("cannot listen on {addr} (config_address): ")),
            "{text}"
        );
    }

    #[test]
    fn the_same_address_twice_is_a_conflict_and_free_ones_pass() {
        let free = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let errors = check(&[("proxy_address_http", free), ("file_server_address", free)]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].setting, "file_server_address");
        let other = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(check(&[("proxy_address_http", other)]).is_empty());
    }
}
