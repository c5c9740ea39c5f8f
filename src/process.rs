//! Making the pingora server: its bootstrap (listeners from an old process with `-u`), and with
//! `user`/`group` the listeners bound as root, handed to pingora, and the privileges dropped
//! before any service starts.

use std::fmt;
use std::sync::Arc;

use aralez_compiler::MainConfig;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::server::Server;

use crate::listen_check::ListenError;
use crate::privilege::{PrivilegeError, Target};

/// Why the server could not be made (the process does not start).
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// Listener addresses that cannot be bound.
    Listen(Vec<ListenError>),
    /// The hand-over of the bound listeners to pingora failed.
    HandOver(String),
    /// The privileges could not be dropped.
    Privilege(PrivilegeError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listen(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            Self::HandOver(e) => write!(f, "listeners: {e}"),
            Self::Privilege(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for StartError {}

/// The server, bootstrapped (with `upgrade`, holding the old process's listeners).
pub fn bootstrap(conf: ServerConf, upgrade: bool, daemon: bool) -> Server {
    let opt = Opt {
        upgrade,
        daemon,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, conf);
    server.bootstrap();
    server
}

/// As [`bootstrap`] (with the settings `conf` makes), then drops to `target`. Without `upgrade`, every listener of `cfg` is bound
/// first (as root, so ports below 1024 work) and handed to pingora through its own hand-over
/// socket, in a folder only root can enter; with `upgrade` they come from the old process. The
/// server keeps `conf.upgrade_sock` for the next upgrade.
pub fn bootstrap_and_drop(
    conf: &dyn Fn() -> ServerConf,
    upgrade: bool,
    daemon: bool,
    cfg: &MainConfig,
    target: &Target,
) -> Result<Server, StartError> {
    let server = if upgrade {
        bootstrap(conf(), true, daemon)
    } else {
        let listeners = crate::listen_check::bind(&crate::listen_check::listeners(cfg))
            .map_err(StartError::Listen)?;
        let folder = private_folder().map_err(|e| StartError::HandOver(e.to_string()))?;
        let sock = folder.join("listeners.sock").display().to_string();
        // a Unix socket path holds at most 107 bytes (pingora would panic on a longer one)
        if sock.len() > MAX_SOCKET_PATH {
            let _ = std::fs::remove_dir_all(&folder);
            return Err(StartError::HandOver(format!(
                "the hand-over socket path {sock} is longer than {MAX_SOCKET_PATH} bytes; set TMPDIR to a shorter folder"
            )));
        }
        let handing = crate::listen_check::hand_over(listeners, sock.clone())
            .map_err(|e| StartError::HandOver(e.to_string()))?;
        let mut server = bootstrap(
            ServerConf {
                upgrade_sock: sock,
                ..conf()
            },
            true,
            daemon,
        );
        let sent = handing
            .join()
            .map_err(|_| StartError::HandOver("the hand-over thread stopped".into()))
            .and_then(|r| r.map_err(StartError::HandOver));
        let _ = std::fs::remove_dir_all(&folder);
        sent?;
        // later upgrades (`-u` of the next binary) use the configured socket
        server.configuration = Arc::new(conf());
        server
    };
    crate::privilege::drop_to(target).map_err(StartError::Privilege)?;
    log::info!(
        "privileges dropped to user {} (uid {}, gid {})",
        target.user,
        target.uid,
        target.gid
    );
    Ok(server)
}

/// The longest Unix socket path (`sun_path` is 108 bytes with its NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// A fresh folder only root can enter, for the hand-over socket.
fn private_folder() -> std::io::Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let mut seed = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| std::io::Error::other("no randomness"))?;
    let name = format!("aralez-hand-over-{}", u64::from_le_bytes(seed));
    let path = std::env::temp_dir().join(name);
    std::fs::DirBuilder::new().mode(0o700).create(&path)?;
    Ok(path)
}
