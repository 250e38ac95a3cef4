//! Backend level: the whole file from the options, then a reload, or the
//! runtime API when only servers changed.

use ansible_module::{service, Fail, Module};

use crate::config::{self, Admin, BackendCfg, BackendInfo, FrontendCfg, Layout, Server, StatsCfg};
use crate::files::{hide_kept_secrets, read_config, write_config};
use crate::ops::{runtime_can_apply, server_json, Ctx, UNIT};
use crate::params::Params;
use crate::{applied, checks, secret};

/// What a backend-level run wants the file to say.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub(crate) text: String,
    pub(crate) servers: Vec<Server>,
    pub(crate) info: BackendInfo,
}

/// Every check of a backend-level run: nothing is read or written before
/// these pass.
pub(crate) fn check(p: &Params) -> Result<(), Fail> {
    checks::options(p)?;
    if p.address.is_some() || p.port.is_some() || p.weight.is_some() {
        return Err(Fail::new(
            "address, port and weight are options of one server: use them with server, or list the backend's servers in servers",
        ));
    }
    if p.state != "present" && p.state != "absent" {
        return Err(Fail::new(format!(
            "state={} applies to one server: set server (the backend itself takes present or absent)",
            p.state
        )));
    }
    Ok(())
}

/// The file a backend-level run wants, from the options alone (no I/O):
/// `old` is the backend as the file has it (a server's drain or maintenance
/// state is kept), `stats_password` is needed with `stats.enabled`,
/// `cookie_key` with `stickiness=cookie`. Every value is checked first.
pub(crate) fn render(
    p: &Params,
    old: Option<&BackendInfo>,
    stats_password: Option<&str>,
    cookie_key: Option<&str>,
) -> Result<Wanted, Fail> {
    check(p)?;
    let present = p.state == "present";
    let hc = &p.health_check;
    let expect_status = checks::expect_status(hc.expect_status)?;
    let balance = if p.stickiness == "source" {
        "source".to_string()
    } else {
        p.balance.clone()
    };
    let mut servers = vec![];
    if present {
        for s in p.servers.as_deref().unwrap_or_default() {
            // The admin state (drain, maintenance) set on a server is kept.
            let admin = old
                .and_then(|i| i.servers.iter().find(|o| o.name == s.name))
                .map_or(Admin::Ready, |o| o.admin);
            servers.push(Server {
                name: s.name.clone(),
                address: s.address.clone(),
                port: checks::port("servers.port", s.port)?,
                weight: checks::weight("servers.weight", s.weight)?,
                check: s.check,
                backup: s.backup,
                admin,
            });
        }
    }
    let stats = match (p.stats.enabled, stats_password) {
        (false, _) => None,
        (true, Some(password)) => {
            secret::check("the stats password", password)?;
            Some(StatsCfg {
                bind: p.stats.bind.clone(),
                uri: p.stats.uri.clone(),
                user: p.stats.user.clone(),
                password: password.to_string(),
            })
        }
        (true, None) => return Err(Fail::new("internal error: no stats password")),
    };
    let cookie = match (p.stickiness == "cookie" && present, cookie_key) {
        (false, _) => None,
        (true, Some(key)) => {
            secret::check("cookie.key", key)?;
            Some((p.cookie.name.clone(), key.to_string()))
        }
        (true, None) => return Err(Fail::new("internal error: no cookie key")),
    };
    let default_server = format!("inter {} rise {} fall {}", hc.interval, hc.rise, hc.fall);
    let layout = Layout {
        admin_socket: p.admin_socket.clone(),
        timeouts: vec![
            ("connect", p.timeouts.connect.clone()),
            ("client", p.timeouts.client.clone()),
            ("server", p.timeouts.server.clone()),
            ("http-request", p.timeouts.http_request.clone()),
            ("queue", p.timeouts.queue.clone()),
        ],
        frontend: present.then(|| FrontendCfg {
            name: p.frontend.name.clone(),
            bind: p.frontend.bind.clone(),
            forwardfor: p.forwardfor,
            backend: p.name.clone(),
        }),
        backend: present.then(|| BackendCfg {
            name: p.name.clone(),
            balance: balance.clone(),
            check_method: hc.method.clone(),
            check_path: hc.path.clone(),
            expect_status,
            default_server: default_server.clone(),
            cookie: cookie.clone(),
            servers: servers.clone(),
        }),
        stats,
    };
    Ok(Wanted {
        text: config::render(&layout),
        info: BackendInfo {
            servers: servers.clone(),
            default_server,
            cookie_key: cookie.map(|(_, k)| k),
            balance,
        },
        servers,
    })
}

pub(crate) fn backend_level(m: &mut Module, mut ctx: Ctx) -> anyhow::Result<()> {
    let p = ctx.p;
    check(p)?;
    hide_kept_secrets(m, p);
    let old = read_config(m, &p.config_path)?;
    let old_text = old.as_ref().map(|o| o.text.as_str());
    let old_info = old_text.and_then(|t| config::parse_backend(t, &p.name));
    let present = p.state == "present";

    // The secrets are read and checked (or made up) first, written only
    // once the whole file renders.
    let password = if p.stats.enabled {
        let kept = secret::load(&p.stats.password_file, "stats password", None)?;
        m.hide(kept.value.clone());
        Some(kept)
    } else {
        None
    };
    // The dynamic-cookie key: cookie.key, else the one kept in
    // cookie.key_file, made from the key haproxy.cfg has already (cookies
    // handed out stay valid) or at random. Not hidden when it is the
    // backend's name (the old default, no secret): that would hide the name.
    let (key, kept_key) = match (p.stickiness == "cookie" && present, &p.cookie.key) {
        (false, _) => (None, None),
        (true, Some(key)) => (Some(key.clone()), None),
        (true, None) => {
            let seed = old_info
                .as_ref()
                .and_then(|i| i.cookie_key.as_deref())
                .filter(|k| secret::check("key", k).is_ok());
            let kept = secret::load(&p.cookie.key_file, "cookie key", seed)?;
            (Some(kept.value.clone()), Some(kept))
        }
    };
    if let Some(key) = key.as_ref().filter(|k| **k != p.name) {
        m.hide(key.clone());
    }
    let Wanted {
        text,
        servers,
        info,
    } = render(
        p,
        old_info.as_ref(),
        password.as_ref().map(|k| k.value.as_str()),
        key.as_deref(),
    )?;
    if let Some(kept) = &password {
        m.set_changed(kept.save(m.check_mode())?);
        m.set("stats_password_file", &p.stats.password_file);
        m.set("stats_user", &p.stats.user);
    }
    if let Some(kept) = &kept_key {
        m.set_changed(kept.save(m.check_mode())?);
        m.set("cookie_key_file", &p.cookie.key_file);
    }
    m.set(
        "servers",
        servers.iter().map(server_json).collect::<Vec<_>>(),
    );

    if !present && old_info.is_none() {
        return Ok(()); // Nothing of this backend in the file.
    }

    let active = service::is_active(UNIT);
    let (running, worker) = if active {
        (
            ctx.sock.servers(&p.name).ok().flatten(),
            ctx.sock.info().ok().flatten(),
        )
    } else {
        (None, None)
    };
    let state_file = applied::state_path(&p.admin_socket);
    // Whether the running worker has the file as it is before this run.
    let loaded = match (old_text, worker) {
        (Some(old_text), Some(w)) => applied::in_sync(&p.config_path, old_text, w, &state_file),
        _ => false,
    };
    let config_changed = old_text != Some(text.as_str());
    let runtime_only = match (old_text, &old_info, &running) {
        (Some(old_text), Some(old_info), Some(_)) if present => {
            config::without_servers(old_text, &p.name) == config::without_servers(&text, &p.name)
                && runtime_can_apply(&old_info.servers, &servers, &info)
        }
        _ => false,
    };
    let needs_reload = !active || running.is_none() || !loaded || (config_changed && !runtime_only);
    let wrote = write_config(m, p, &text)?;
    m.set_changed(wrote);

    if !present && !active {
        // Removing a backend does not start a stopped HAProxy.
    } else if needs_reload {
        m.set_changed(true);
        let action = if m.check_mode() {
            if active {
                "reloaded"
            } else {
                "started"
            }
        } else {
            ctx.reload_or_restore(&state_file, &text, wrote.then_some(old.as_ref()))?
        };
        m.set("service", action);
        if present && p.wait && !m.check_mode() {
            ctx.wait_for(&servers)?;
        }
    } else if let Some(running) = running {
        let steps = ctx.converge_runtime(
            m,
            format!("runtime: backend {}", p.name),
            &servers,
            &running,
            &info,
        )?;
        if let (false, Some(w)) = (m.check_mode(), worker) {
            applied::record(&state_file, w.pid, &text);
        }
        if p.wait && !m.check_mode() {
            let touched: Vec<Server> = servers
                .iter()
                .filter(|s| steps.iter().any(|st| st.server() == s.name))
                .cloned()
                .collect();
            ctx.wait_for(&touched)?;
        }
    }
    m.set("actions", &ctx.actions);
    Ok(())
}
