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

    /// The file check mode would write, or the failure, for `extra` options.
    fn rendered(extra: Value) -> (serde_json::Map<String, Value>, bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let at = |f: &str| dir.path().join(f).display().to_string();
        let a = json!({
            "name": "web",
            "servers": [{"name": "a", "address": "10.0.0.1"}],
            "config_path": at("haproxy.cfg"),
            "admin_socket": at("admin.sock"),
            "validate": "true %s",
            "_ansible_check_mode": true,
            "_ansible_diff": true,
        });
        let mut args = a.as_object().cloned().unwrap_or_default();
        // A null in `extra` leaves the option out.
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            match v {
                Value::Null => args.remove(&k),
                v => args.insert(k, v),
            };
        }
        ansible_module::execute("haproxy_backend", &super::spec(), args, super::run)
    }

    /// By default a GET, HEAD or OPTIONS a server dropped goes to another
    /// server, any other method only when its connection failed; a refused
    /// connection has the server checked at the fast interval.
    #[test]
    fn retries_replay_only_what_a_client_may_repeat() {
        let (out, failed) = rendered(json!({}));
        assert!(!failed, "{out:?}");
        let after = out["diff"]["after"].as_str().unwrap_or_default();
        assert!(
            after.contains(
                "    balance roundrobin\n    option redispatch 1\n    retries 3\n    \
                 retry-on conn-failure empty-response response-timeout 0rtt-rejected 502 503 504\n    \
                 http-request disable-l7-retry unless { method GET HEAD OPTIONS }\n    option httpchk "
            ),
            "{after}"
        );
        assert!(
            after.contains(
                "    default-server inter 2s fastinter 500ms rise 2 fall 3 observe layer4 error-limit 1 on-error fastinter\n"
            ),
            "{after}"
        );
        assert_eq!(after.matches("retries").count(), 1, "{after}");

        let (out, failed) = rendered(json!({
            "retry": {"conditions": [], "replay_methods": [], "retries": 0, "redispatch": -1},
            "health_check": {"observe": "none"},
        }));
        assert!(!failed, "{out:?}");
        let after = out["diff"]["after"].as_str().unwrap_or_default();
        assert!(
            after.contains(
                "    option redispatch -1\n    retries 0\n    retry-on none\n    http-request disable-l7-retry\n"
            ),
            "{after}"
        );
        assert!(
            after.contains("    default-server inter 2s fastinter 500ms rise 2 fall 3\n"),
            "{after}"
        );

        for (extra, want) in [
            (
                json!({"retry": {"replay_methods": ["GET", "post"]}}),
                "retry.replay_methods[1] must be an HTTP method in capitals, got: \"post\"",
            ),
            (
                json!({"retry": {"replay_methods": ["GET }"]}}),
                "retry.replay_methods[0] must be an HTTP method",
            ),
            (
                json!({"retry": {"conditions": ["conn-failure", "429"]}}),
                "value of conditions must be one or more of: none, conn-failure,",
            ),
            (
                json!({"retry": {"retries": 101}}),
                "retry.retries must be between 0 and 100, got: 101",
            ),
            (
                json!({"retry": {"redispatch": -101}}),
                "retry.redispatch must be between -100 and 100",
            ),
            (
                json!({"health_check": {"error_limit": 0}}),
                "health_check.error_limit must be between 1 and 1000",
            ),
            (
                json!({"health_check": {"fast_interval": "1s;x"}}),
                "health_check.fast_interval must not contain ';'",
            ),
            (
                json!({"health_check": {"observe": "layer3"}}),
                "value of observe must be one of: none, layer4, layer7",
            ),
            (
                json!({"extra": {"backend": ["retry-on none"]}}),
                "the module writes it from retry.conditions",
            ),
        ] {
            let (out, failed) = rendered(extra.clone());
            let msg = out["msg"].as_str().unwrap_or_default();
            assert!(failed && msg.contains(want), "{extra}: {msg}");
        }
    }

    /// Unit names go into `systemctl` argument lists and the stats password
    /// into haproxy.cfg: a bad one is refused before anything is read, and a
    /// refused password is not shown.
    #[test]
    fn unit_names_and_the_stats_password_are_checked_first() {
        for (extra, want) in [
            (
                json!({"conflicting_services": ["apache2", "--now"]}),
                "conflicting_services[1] entry \"--now\" is not a unit name",
            ),
            (
                json!({"conflicting_services": ["a;b"]}),
                "conflicting_services[0] must not contain ';'",
            ),
            (
                json!({"conflicting_services": ["haproxy.service"]}),
                "conflicting_services lists haproxy.service, the service this module keeps running",
            ),
            (
                json!({"conflicting_services": ["apache2", "apache2"]}),
                "duplicate conflicting_services: apache2",
            ),
            (
                json!({"stats": {"enabled": true, "password": "pass word"}}),
                "stats.password must not contain a space",
            ),
            (
                json!({"servers": null, "server": "a", "conflicting_services": ["apache2"]}),
                "conflicting_services goes with the backend (without server)",
            ),
        ] {
            let (out, failed) = rendered(extra.clone());
            let msg = out["msg"].as_str().unwrap_or_default();
            assert!(failed && msg.starts_with(want), "{extra}: {msg}");
            assert!(
                !Value::Object(out.clone()).to_string().contains("pass word"),
                "{out:?}"
            );
        }
        let (out, failed) = rendered(json!({"stats": {"enabled": true, "password": "s3cretPass"}}));
        assert!(!failed, "{out:?}");
        assert!(
            !Value::Object(out.clone())
                .to_string()
                .contains("s3cretPass"),
            "{out:?}"
        );
        assert!(
            out["diff"]["after"]
                .as_str()
                .unwrap_or_default()
                .contains("stats auth stats:********"),
            "{out:?}"
        );
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
