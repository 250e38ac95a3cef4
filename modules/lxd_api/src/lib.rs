//! A small, blocking client for the LXD REST API.
//!
//! It talks to LXD or to Incus (LXD's community fork, the same `/1.0` API)
//! over the local unix socket (Debian's `/var/lib/lxd/unix.socket`, the
//! snap's `/var/snap/lxd/common/lxd/unix.socket`, or Incus's
//! `/var/lib/incus/unix.socket`, found automatically; see [`detect_socket_for`]) or
//! to an HTTPS listener with a client certificate. Over HTTPS the server
//! certificate is pinned (by a PEM file, or by its SHA-256 fingerprint, the
//! way `lxc remote add` trusts a server) or, without a pin, checked against
//! the public web PKI: there is no "accept any certificate" mode.
//!
//! Requests return the answer's `metadata`; when LXD starts a background
//! operation (creating, starting, deleting an instance, running a command) the
//! call waits for it to finish and turns a failed operation into an error. LXD's
//! error documents become [`Error`] values whose text says what was asked and
//! what LXD answered.
//!
//! ```no_run
//! # fn main() -> Result<(), lxd_api::Error> {
//! let lxd = lxd_api::Client::connect(None, &lxd_api::TlsOptions::default())?;
//! for inst in lxd.list_instances_full(None)? {
//!     println!("{} {}", inst["name"], inst["status"]);
//! }
//! lxd.put("/1.0/instances/web-01/state", &serde_json::json!({"action": "start"}))?;
//! # Ok(()) }
//! ```
//!
//! Used by the `lxd_instance` module and the dynamic inventory; the other
//! modules stay free of HTTP and TLS code.

mod backend;
mod client;
mod cluster;
mod error;
mod tls;

pub use backend::{
    detect_socket, detect_socket_for, Backend, BACKEND_ENV, DEBIAN_SOCKET, INCUS_SOCKET,
    SNAP_SOCKET,
};
pub use client::{encode, token_secret, with_query, Client, Endpoint, ExecOutput, Reply};
pub use cluster::{ClusterMember, MemberAction};
pub use error::{Error, Result};
pub use reqwest::Method;
pub use tls::{fingerprint, fingerprint_hex, fingerprint_of_pem_file, TlsOptions};
