//! Which server speaks the API: LXD or Incus, its community fork. Both serve
//! the same `/1.0` REST API, so one client talks to either; the name matters
//! for where the local socket is, for messages (a user running Incus should
//! not be told to start LXD) and for the command line a hint suggests.

use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{Error, Result};

/// Debian's `lxd` package serves its API here.
pub const DEBIAN_SOCKET: &str = "/var/lib/lxd/unix.socket";
/// The snap's socket.
pub const SNAP_SOCKET: &str = "/var/snap/lxd/common/lxd/unix.socket";
/// Debian's `incus` package (Debian 13, bookworm-backports) serves its API here.
pub const INCUS_SOCKET: &str = "/var/lib/incus/unix.socket";

/// The environment variable that picks the backend when the socket is found
/// automatically: `lxd`, `incus`, or unset (LXD's sockets first, then Incus's).
pub const BACKEND_ENV: &str = "VRRP_BACKEND";

/// The server behind an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    #[default]
    Lxd,
    Incus,
}

impl Backend {
    /// The name users know it by (`LXD`, `Incus`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Lxd => "LXD",
            Backend::Incus => "Incus",
        }
    }

    /// Its command-line client (`lxc`, `incus`), for hints.
    pub fn cli(self) -> &'static str {
        match self {
            Backend::Lxd => "lxc",
            Backend::Incus => "incus",
        }
    }

    /// Reads `lxd` or `incus` (any case); anything else is a settings error.
    pub fn parse(s: &str) -> Result<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lxd" => Ok(Backend::Lxd),
            "incus" => Ok(Backend::Incus),
            other => Err(Error::Config(format!(
                "backend {other:?} not understood: use lxd or incus"
            ))),
        }
    }

    /// The backend `$VRRP_BACKEND` asks for, `None` when it is unset or empty.
    pub fn from_env() -> Result<Option<Backend>> {
        match std::env::var(BACKEND_ENV) {
            Ok(v) if !v.trim().is_empty() => Backend::parse(&v)
                .map(Some)
                .map_err(|e| Error::Config(format!("{BACKEND_ENV}: {e}"))),
            _ => Ok(None),
        }
    }

    /// What a socket path says: Incus's own directories (Debian's, or
    /// `$INCUS_DIR`) mean Incus; everything else is taken for LXD until the
    /// server says otherwise (`GET /1.0`).
    pub fn of_socket(path: &Path) -> Backend {
        let incus_dir = std::env::var_os("INCUS_DIR").filter(|d| !d.is_empty());
        if incus_dir.is_some_and(|d| path.parent() == Some(Path::new(&d))) {
            return Backend::Incus;
        }
        if path
            .components()
            .any(|c| c.as_os_str().to_str().is_some_and(|s| s == "incus"))
        {
            return Backend::Incus;
        }
        Backend::Lxd
    }

    /// What the server says of itself in `GET /1.0`: `environment.server`
    /// is `lxd` or `incus`.
    pub fn of_server(doc: &Value) -> Option<Backend> {
        doc.pointer("/environment/server")
            .and_then(Value::as_str)
            .and_then(|s| Backend::parse(s).ok())
    }

    /// The sockets this backend may listen on, in the order they are tried.
    fn sockets(self) -> Vec<PathBuf> {
        let (dir_var, fixed): (&str, &[&str]) = match self {
            Backend::Lxd => ("LXD_DIR", &[DEBIAN_SOCKET, SNAP_SOCKET]),
            Backend::Incus => ("INCUS_DIR", &[INCUS_SOCKET]),
        };
        let mut out = vec![];
        if let Some(dir) = std::env::var_os(dir_var).filter(|d| !d.is_empty()) {
            out.push(PathBuf::from(dir).join("unix.socket"));
        }
        out.extend(fixed.iter().map(PathBuf::from));
        out
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The local socket for `want` (`None`: `$VRRP_BACKEND`, and when that is
/// unset LXD's sockets, then Incus's). LXD first keeps hosts that have only
/// LXD, or both, working as before; Incus is used where LXD is absent.
pub fn detect_socket_for(want: Option<Backend>) -> Result<(PathBuf, Backend)> {
    let want = match want {
        Some(b) => Some(b),
        None => Backend::from_env()?,
    };
    let order: &[Backend] = match want {
        Some(Backend::Lxd) => &[Backend::Lxd],
        Some(Backend::Incus) => &[Backend::Incus],
        None => &[Backend::Lxd, Backend::Incus],
    };
    let tried: Vec<(PathBuf, Backend)> = order
        .iter()
        .flat_map(|b| b.sockets().into_iter().map(move |p| (p, *b)))
        .collect();
    if let Some(found) = tried.iter().find(|(p, _)| p.exists()) {
        return Ok(found.clone());
    }
    let list: Vec<String> = tried.iter().map(|(p, _)| p.display().to_string()).collect();
    let (backend, what) = match want {
        Some(b) => (b, b.name().to_string()),
        None => (Backend::Lxd, "LXD or Incus".to_string()),
    };
    Err(Error::Connect {
        backend,
        endpoint: format!("the local {what} socket"),
        reason: format!(
            "none of {} exists (is {what} installed and running?)",
            list.join(", ")
        ),
    })
}

/// The local socket (see [`detect_socket_for`]).
pub fn detect_socket() -> Result<PathBuf> {
    detect_socket_for(None).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_parsing() {
        assert_eq!(Backend::Lxd.to_string(), "LXD");
        assert_eq!(Backend::Incus.to_string(), "Incus");
        assert_eq!(Backend::Incus.cli(), "incus");
        assert_eq!(Backend::parse(" Incus ").ok(), Some(Backend::Incus));
        assert_eq!(Backend::parse("LXD").ok(), Some(Backend::Lxd));
        let err = Backend::parse("docker").err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("backend \"docker\" not understood: use lxd or incus")
        );
    }

    #[test]
    fn socket_paths_name_their_backend() {
        assert_eq!(Backend::of_socket(Path::new(INCUS_SOCKET)), Backend::Incus);
        assert_eq!(Backend::of_socket(Path::new(DEBIAN_SOCKET)), Backend::Lxd);
        assert_eq!(Backend::of_socket(Path::new(SNAP_SOCKET)), Backend::Lxd);
        assert_eq!(
            Backend::of_socket(Path::new("/run/incus-x/unix.socket")),
            Backend::Lxd,
            "only a whole path component counts"
        );
    }

    #[test]
    fn the_server_names_itself() {
        let incus = json!({"api_extensions": [], "environment": {"server": "incus", "server_version": "6.0.4"}});
        let lxd = json!({"environment": {"server": "lxd", "server_version": "5.0.2"}});
        assert_eq!(Backend::of_server(&incus), Some(Backend::Incus));
        assert_eq!(Backend::of_server(&lxd), Some(Backend::Lxd));
        assert_eq!(Backend::of_server(&json!({"auth": "untrusted"})), None);
    }

    #[test]
    fn each_backend_has_its_own_sockets() {
        let lxd = Backend::Lxd.sockets();
        let incus = Backend::Incus.sockets();
        assert!(lxd.ends_with(&[DEBIAN_SOCKET.into(), SNAP_SOCKET.into()]));
        assert!(incus.ends_with(&[INCUS_SOCKET.into()]));
        assert!(!lxd.iter().any(|p| incus.contains(p)));
    }
}
