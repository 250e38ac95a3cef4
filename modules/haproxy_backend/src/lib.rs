//! `haproxy_backend`: one HAProxy backend on a load balancer, end to end.
//!
//! Without `server` the module renders the whole haproxy.cfg (global with the
//! admin socket, defaults, the frontend, the backend and its servers, an
//! optional stats listener), writes it validated by `haproxy -c`, and reloads
//! HAProxy, or, when only servers changed, applies the change through the
//! runtime API and writes the file without a reload. With `server` it changes
//! one server at runtime (add, remove, drain, maintenance, weight) and keeps the
//! file in step, so the file is the truth for the next reload or restart.

mod applied;
mod backend;
pub mod checks;
pub mod config;
mod files;
#[cfg(test)]
mod hostile;
mod ops;
pub mod params;
pub mod runtime;
mod secret;
mod server;

use std::time::Duration;

use ansible_module::{Module, ModuleSpec};

use ops::Ctx;
use params::Params;
use runtime::Socket;

pub fn spec() -> ModuleSpec {
    ModuleSpec::from_json(params::SPEC)
}

/// The module body.
pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    // Every option is checked before anything is read, written or sent.
    checks::options(&p)?;
    m.set("backend", &p.name);
    m.set("config_path", &p.config_path);
    let ctx = Ctx {
        sock: Socket::new(&p.admin_socket),
        timeout: Duration::from_secs(p.wait_timeout.unsigned_abs()),
        p: &p,
        actions: vec![],
    };
    match p.server.clone() {
        Some(server) => server::server_level(m, ctx, &server),
        None => backend::backend_level(m, ctx),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn spec_parses() {
        assert!(ansible_module::ModuleSpec::try_from_json(super::params::SPEC).is_ok());
    }
}
