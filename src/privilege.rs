//! `user` / `group`: started as root, Aralez binds every listener and reads what it must read,
//! then drops to the configured user and group before it serves a request.
//!
//! The drop clears the supplementary groups (`setgroups`), then sets the group (`setgid`), then
//! the user (`setuid`); all three ids (real, effective, saved) change, so root cannot be regained,
//! and the result is read back and checked. The listeners are handed to pingora through its own
//! socket hand-over (the mechanism of `-u`), so nothing is bound after the drop.

use std::fmt;

use nix::unistd::{Gid, Group, Uid, User};

/// Who to become.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The user's name as configured.
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The group: `group`, else the user's primary group.
    pub gid: u32,
}

/// Why the privileges cannot be dropped (the process does not start).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PrivilegeError {
    /// `user`/`group` are set but the process is not root.
    NotRoot {
        /// The uid the process runs as.
        uid: u32,
    },
    /// `group` without `user`.
    GroupWithoutUser,
    /// No such user.
    UnknownUser(String),
    /// No such group.
    UnknownGroup(String),
    /// The user or group database could not be read.
    Lookup(String),
    /// A system call of the drop failed, or the ids read back are not the target's.
    Drop(String),
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRoot { uid } => write!(
                f,
                "user/group: dropping privileges needs the process to start as root, but it runs as uid {uid}; start it as root, or remove user/group (a non-root process can bind ports below 1024 with CAP_NET_BIND_SERVICE)"
            ),
            Self::GroupWithoutUser => write!(f, "group is set without user; set user too"),
            Self::UnknownUser(u) => write!(f, "user: no user named `{u}` on this system"),
            Self::UnknownGroup(g) => write!(f, "group: no group named `{g}` on this system"),
            Self::Lookup(e) => write!(f, "user/group: cannot read the user database: {e}"),
            Self::Drop(e) => write!(f, "user/group: dropping privileges failed: {e}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// The target of `user` / `group` (`None` when neither is set). Checked before anything binds:
/// the process must be root, and the names must exist.
pub fn target(user: Option<&str>, group: Option<&str>) -> Result<Option<Target>, PrivilegeError> {
    let Some(user) = user else {
        return match group {
            Some(_) => Err(PrivilegeError::GroupWithoutUser),
            None => Ok(None),
        };
    };
    let uid = Uid::current();
    if !uid.is_root() {
        return Err(PrivilegeError::NotRoot { uid: uid.as_raw() });
    }
    let found = User::from_name(user)
        .map_err(|e| PrivilegeError::Lookup(e.to_string()))?
        .ok_or_else(|| PrivilegeError::UnknownUser(user.to_string()))?;
    let gid = match group {
        None => found.gid,
        Some(g) => {
            Group::from_name(g)
                .map_err(|e| PrivilegeError::Lookup(e.to_string()))?
                .ok_or_else(|| PrivilegeError::UnknownGroup(g.to_string()))?
                .gid
        }
    };
    Ok(Some(Target {
        user: user.to_string(),
        uid: found.uid.as_raw(),
        gid: gid.as_raw(),
    }))
}

/// Drops to `target`: supplementary groups cleared, then the group, then the user; checked by
/// reading the ids back and by failing to become root again.
pub fn drop_to(target: &Target) -> Result<(), PrivilegeError> {
    let (uid, gid) = (Uid::from_raw(target.uid), Gid::from_raw(target.gid));
    let step = |what: &str, r: nix::Result<()>| {
        r.map_err(|e| PrivilegeError::Drop(format!("{what}: {e}")))
    };
    step("setgroups", nix::unistd::setgroups(&[]))?;
    step("setgid", nix::unistd::setgid(gid))?;
    step("setuid", nix::unistd::setuid(uid))?;
    let ids = (
        Uid::current(),
        Uid::effective(),
        Gid::current(),
        Gid::effective(),
    );
    if ids != (uid, uid, gid, gid) {
        return Err(PrivilegeError::Drop(format!(
            "the ids are now uid {}/{} gid {}/{}",
            ids.0, ids.1, ids.2, ids.3
        )));
    }
    if nix::unistd::getgroups().is_ok_and(|g| g.iter().any(|&x| x != gid)) {
        return Err(PrivilegeError::Drop(
            "supplementary groups remain".to_string(),
        ));
    }
    if !uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
        return Err(PrivilegeError::Drop("root could be regained".to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_is_nothing_to_do() {
        assert_eq!(target(None, None), Ok(None));
        assert_eq!(
            target(None, Some("nogroup")),
            Err(PrivilegeError::GroupWithoutUser)
        );
    }

    #[test]
    fn unknown_names_are_refused_by_name() {
        if !Uid::current().is_root() {
            assert!(matches!(
                target(Some("nobody"), None),
                Err(PrivilegeError::NotRoot { .. })
            ));
            return;
        }
        assert_eq!(
            target(Some("no-such-user-aralez"), None),
            Err(PrivilegeError::UnknownUser("no-such-user-aralez".into()))
        );
        assert_eq!(
            target(Some("root"), Some("no-such-group-aralez")),
            Err(PrivilegeError::UnknownGroup("no-such-group-aralez".into()))
        );
        let t = target(Some("root"), None).ok().flatten();
        assert_eq!(t.map(|t| (t.uid, t.gid)), Some((0, 0)));
    }
}
