//! `haproxy_backend`: one HAProxy backend on a load balancer, end to end.
//!
//! Without `server` the module renders the whole haproxy.cfg (global with the
//! admin socket, defaults, the frontend, the backend and its servers, an
//! optional stats listener), writes it validated by `haproxy -c`, and reloads
//! HAProxy, or, when only servers changed, applies the change through the
//! runtime API and writes the file without a reload. With `server` it changes
//! one server at runtime (add, remove, drain, maintenance, weight) and keeps the
//! file in step, so the file is the truth for the next reload or restart.
//! A task written for `community.general.haproxy` runs unchanged but for the
//! module's name: its option names are aliases or options here (`host`,
//! `socket`, `wait_interval`, `wait_retries`, `drain`, `shutdown_sessions`,
//! `health`, `agent`, `fail_on_not_found`, a weight in percent), and without
//! a backend named the server is changed in every backend that has it.

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
mod tls;

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
    if let Some(name) = &p.name {
        m.set("backend", name);
    }
    m.set("config_path", &p.config_path);
    let ctx = Ctx {
        sock: Socket::new(&p.admin_socket),
        timeout: p.wait_limit(),
        backend: p.backend().to_string(),
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
    use serde_json::{json, Value};

    #[test]
    fn spec_parses() {
        assert!(ansible_module::ModuleSpec::try_from_json(super::params::SPEC).is_ok());
    }

    /// A bool for an int option is an int to Ansible (Python's `True` is 1):
    /// `port: true` is port 1, not "internal error: parameters do not match
    /// the module's types".
    #[test]
    fn a_bool_for_an_int_option_is_a_number() {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |f: &str| dir.path().join(f).display().to_string();
        let args = |extra: Value| {
            let mut a = json!({
                "name": "web",
                "config_path": at("haproxy.cfg"),
                "admin_socket": at("admin.sock"),
                "validate": "true %s",
                "stats": {"password_file": at("stats.password")},
                "cookie": {"key_file": at("cookie.key")},
                "_ansible_check_mode": true,
                "_ansible_diff": true,
            });
            for (k, v) in extra.as_object().cloned().unwrap_or_default() {
                a[k] = v;
            }
            a.as_object().cloned().unwrap_or_default()
        };

        let servers = json!({"servers": [{"name": "a", "address": "10.0.0.1", "port": true}]});
        let (out, failed) =
            ansible_module::execute("haproxy_backend", &super::spec(), args(servers), super::run);
        assert!(!failed, "{out:?}");
        assert_eq!(out["servers"][0]["port"], json!(1), "{out:?}");
        let after = out["diff"]["after"].as_str().unwrap_or_default();
        assert!(after.contains("server a 10.0.0.1:1 "), "{after}");
        assert_eq!(
            out["invocation"]["module_args"]["servers"][0]["port"],
            json!(true)
        );

        // At the top level port belongs to server: the module's own check
        // answers, after the value parsed.
        let (out, failed) = ansible_module::execute(
            "haproxy_backend",
            &super::spec(),
            args(json!({"port": true})),
            super::run,
        );
        assert!(failed);
        let msg = out["msg"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with("address, port and weight are options of one server"),
            "{msg}"
        );
        assert!(
            std::fs::read_dir(dir.path()).expect("ls").next().is_none(),
            "check mode wrote"
        );
    }
}
