//! Backend level: the whole file from the options, then a reload, or the
//! runtime API when only servers changed.

use ansible_module::{Fail, Module};

use crate::config::{self, Admin, BackendCfg, BackendInfo, FrontendCfg, Layout, Server, StatsCfg};
use crate::files::{read_config, write_config};
use crate::ops::{runtime_can_apply, server_json, Ctx, UNIT};
use crate::{applied, checks, stats};
use ansible_module::service;

pub(crate) fn backend_level(m: &mut Module, mut ctx: Ctx) -> anyhow::Result<()> {
    let p = ctx.p;
    if p.address.is_some() || p.port.is_some() || p.weight.is_some() {
        return Err(Fail::new(
            "address, port and weight are options of one server: use them with server, or list the backend's servers in servers",
        )
        .into());
    }
    if p.state != "present" && p.state != "absent" {
        return Err(Fail::new(format!(
            "state={} applies to one server: set server (the backend itself takes present or absent)",
            p.state
        ))
        .into());
    }
    for (what, value) in [
        ("frontend.bind", &p.frontend.bind),
        ("health_check.path", &p.health_check.path),
        ("health_check.interval", &p.health_check.interval),
        ("timeouts.connect", &p.timeouts.connect),
        ("timeouts.client", &p.timeouts.client),
        ("timeouts.server", &p.timeouts.server),
        ("timeouts.http_request", &p.timeouts.http_request),
        ("timeouts.queue", &p.timeouts.queue),
        ("cookie.name", &p.cookie.name),
    ] {
        checks::word(what, value)?;
    }
    checks::name("frontend.name", &p.frontend.name)?;
    if !p
        .health_check
        .method
        .chars()
        .all(|c| c.is_ascii_uppercase())
        || p.health_check.method.is_empty()
    {
        return Err(Fail::new(format!(
            "health_check.method must be an HTTP method in capitals, got: {:?}",
            p.health_check.method
        ))
        .into());
    }
    let expect_status = u16::try_from(p.health_check.expect_status)
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| {
            Fail::new(format!(
                "health_check.expect_status must be an HTTP status (100-599), got: {}",
                p.health_check.expect_status
            ))
        })?;
    let (rise, fall) = (p.health_check.rise, p.health_check.fall);
    if !(1..=100).contains(&rise) || !(1..=100).contains(&fall) {
        return Err(
            Fail::new("health_check.rise and health_check.fall must be between 1 and 100").into(),
        );
    }
    if p.stickiness == "source" && p.balance != "source" && p.balance != "roundrobin" {
        return Err(Fail::new(format!(
            "stickiness=source hashes the client address (balance source); it conflicts with balance={}",
            p.balance
        ))
        .into());
    }
    let balance = if p.stickiness == "source" {
        "source".to_string()
    } else {
        p.balance.clone()
    };

    let old = read_config(&p.config_path)?;
    let old_info = old
        .as_deref()
        .and_then(|t| config::parse_backend(t, &p.name));

    let mut servers = vec![];
    if p.state == "present" {
        let given = p.servers.clone().unwrap_or_default();
        checks::unique("server names", given.iter().map(|s| s.name.as_str()))?;
        for s in &given {
            checks::name("servers.name", &s.name)?;
            checks::address(&format!("address of server {}", s.name), &s.address)?;
            let port = checks::port(&format!("port of server {}", s.name), s.port)?;
            let weight = checks::weight(&format!("weight of server {}", s.name), s.weight)?;
            // The admin state (drain, maintenance) set on a server is kept.
            let admin = old_info
                .as_ref()
                .and_then(|i| i.servers.iter().find(|o| o.name == s.name))
                .map_or(Admin::Ready, |o| o.admin);
            servers.push(Server {
                name: s.name.clone(),
                address: s.address.clone(),
                port,
                weight,
                check: s.check,
                backup: s.backup,
                admin,
            });
        }
    }

    let stats = if p.stats.enabled {
        checks::word("stats.bind", &p.stats.bind)?;
        checks::word("stats.uri", &p.stats.uri)?;
        checks::word("stats.user", &p.stats.user)?;
        if p.stats.user.contains(':') {
            return Err(Fail::new("stats.user must not contain ':'").into());
        }
        let (password, changed) = stats::password(&p.stats.password_file, m.check_mode())?;
        m.hide(password.clone());
        m.set_changed(changed);
        m.set("stats_password_file", &p.stats.password_file);
        m.set("stats_user", &p.stats.user);
        Some(StatsCfg {
            bind: p.stats.bind.clone(),
            uri: p.stats.uri.clone(),
            user: p.stats.user.clone(),
            password,
        })
    } else {
        None
    };

    let cookie = if p.stickiness == "cookie" {
        let key = p.cookie.key.clone().unwrap_or_else(|| p.name.clone());
        checks::word("cookie.key", &key)?;
        Some((p.cookie.name.clone(), key))
    } else {
        None
    };
    let default_server = format!("inter {} rise {rise} fall {fall}", p.health_check.interval);
    let present = p.state == "present";
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
            check_method: p.health_check.method.clone(),
            check_path: p.health_check.path.clone(),
            expect_status,
            default_server: default_server.clone(),
            cookie: cookie.clone(),
            servers: servers.clone(),
        }),
        stats,
    };
    let text = config::render(&layout);
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
    let loaded = match (&old, worker) {
        (Some(old_text), Some(w)) => applied::in_sync(&p.config_path, old_text, w, &state_file),
        _ => false,
    };
    let config_changed = old.as_deref() != Some(text.as_str());
    let info = BackendInfo {
        servers: servers.clone(),
        default_server,
        cookie_key: cookie.map(|(_, k)| k),
        balance,
    };
    let runtime_only = match (&old, &old_info, &running) {
        (Some(old_text), Some(old_info), Some(_)) if present => {
            config::without_servers(old_text, &p.name) == config::without_servers(&text, &p.name)
                && runtime_can_apply(&old_info.servers, &servers, &info)
        }
        _ => false,
    };
    let needs_reload = !active || running.is_none() || !loaded || (config_changed && !runtime_only);
    if write_config(m, p, &text, p.stats.enabled)? {
        m.set_changed(true);
    }

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
            let (action, pid) = ctx.reload_or_start()?;
            applied::record(&state_file, pid, &text);
            action
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
