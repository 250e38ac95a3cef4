//! Server level: one server changed through the runtime API, the file kept
//! in step.

use ansible_module::{Fail, Module};

use crate::config::{self, Admin, BackendInfo, Server};
use crate::files::{hide_kept_secrets, read_config, write_config, Old};
use crate::ops::{runtime_can_apply, server_json, Ctx};
use crate::params::{Params, State};
use crate::runtime::RtServer;
use crate::{applied, checks};

/// A server-level change: the backend's servers after this run, and the one
/// server as wanted (`None` when it goes).
#[derive(Debug, Clone)]
pub(crate) struct ServerChange {
    pub(crate) servers: Vec<Server>,
    pub(crate) server: Option<Server>,
}

/// The change a server-level run wants, from the options and the backend
/// as the file has it, no I/O. Every value is checked first.
pub(crate) fn wanted(
    p: &Params,
    info: &BackendInfo,
    server_name: &str,
) -> Result<ServerChange, Fail> {
    checks::options(p)?;
    checks::name("server", server_name)?;
    let existing = info.servers.iter().find(|s| s.name == server_name).cloned();
    let mut servers = info.servers.clone();
    if p.state == State::Absent {
        servers.retain(|s| s.name != server_name);
        return Ok(ServerChange {
            servers,
            server: None,
        });
    }
    let mut s = match (existing, &p.address) {
        (Some(s), _) => s,
        (None, Some(_)) => Server {
            name: server_name.to_string(),
            address: String::new(),
            port: 80,
            weight: 100,
            check: true,
            backup: false,
            admin: Admin::Ready,
        },
        (None, None) => {
            return Err(Fail::new(format!(
                "server {server_name} is not in backend {}: give its address to add it",
                p.name
            )))
        }
    };
    if let Some(address) = &p.address {
        checks::address("address", address)?;
        s.address = address.clone();
    }
    if let Some(port) = p.port {
        s.port = checks::port("port", port)?;
    }
    if let Some(weight) = p.weight {
        s.weight = checks::weight("weight", weight)?;
    }
    s.admin = match p.state {
        // (absent has returned above)
        State::Present | State::Absent => s.admin,
        State::Enabled => Admin::Ready,
        State::Drain => Admin::Drain,
        State::Disabled | State::Maint => Admin::Maint,
    };
    match servers.iter_mut().find(|o| o.name == server_name) {
        Some(slot) => *slot = s.clone(),
        None => servers.push(s.clone()),
    }
    Ok(ServerChange {
        servers,
        server: Some(s),
    })
}

/// The backend as the file has it.
struct InFile {
    /// The whole file, put back on a rollback.
    old: Old,
    info: BackendInfo,
}

/// Reads the backend from the file; what the file says goes into runtime
/// commands, so it is checked like options.
fn read_backend(m: &mut Module, p: &Params) -> Result<InFile, Fail> {
    let Some(old) = read_config(m, &p.config_path)? else {
        return Err(Fail::new(format!(
            "{} does not exist: set up backend {} first (run the module without server)",
            p.config_path, p.name
        )));
    };
    let Some(info) = config::parse_backend(&old.text, &p.name) else {
        return Err(Fail::new(format!(
            "backend {} not found in {}: set it up first (run the module without server)",
            p.name, p.config_path
        )));
    };
    checks::from_file(&info, &p.config_path)?;
    Ok(InFile { old, info })
}

/// The backend's servers in the running HAProxy, which must have it.
fn running_servers(ctx: &Ctx) -> Result<Vec<RtServer>, Fail> {
    let p = ctx.p;
    let running = ctx
        .sock
        .servers(&p.name)
        .map_err(|e| Fail::new(e.to_string()))?;
    running.ok_or_else(|| {
        Fail::new(format!(
            "backend {} is in {} but not in the running HAProxy: run the module without server to reload it",
            p.name, p.config_path
        ))
    })
}

pub(crate) fn server_level(m: &mut Module, mut ctx: Ctx, server_name: &str) -> anyhow::Result<()> {
    let p = ctx.p;
    checks::name("server", server_name)?;
    m.set("server", server_name);
    hide_kept_secrets(m, p);
    let InFile { old, info } = read_backend(m, p)?;
    let running = running_servers(&ctx)?;

    let state_file = applied::state_path(&p.admin_socket);
    let worker = ctx.sock.info().ok().flatten();
    let loaded =
        worker.is_some_and(|w| applied::in_sync(&p.config_path, &old.text, w, &state_file));
    if !loaded {
        m.warn(format!(
            "the running HAProxy has not loaded {} as it is: run the module without server to reload it",
            p.config_path
        ));
    }
    let change = wanted(p, &info, server_name)?;
    let text = config::replace_servers(&old.text, &p.name, &change.servers)
        .unwrap_or_else(|| old.text.clone());
    let can_runtime = runtime_can_apply(&info.servers, &change.servers, &info);
    let wrote = write_config(m, p, &text)?;
    m.set_changed(wrote);
    if let Some(s) = &change.server {
        m.set("server_state", server_json(s));
    }

    if !can_runtime {
        m.set_changed(true);
        let action = if m.check_mode() {
            "reloaded"
        } else {
            ctx.reload_or_restore(&state_file, &text, wrote.then_some(Some(&old)), &[])?
        };
        m.set("service", action);
    } else {
        let mine: Vec<RtServer> = running
            .iter()
            .filter(|r| r.name == server_name)
            .cloned()
            .collect();
        let want: Vec<Server> = change.server.iter().cloned().collect();
        ctx.converge_runtime(
            m,
            format!("runtime: server {}/{server_name}", p.name),
            &want,
            &mine,
            &info,
        )?;
        if let (false, true, Some(w)) = (m.check_mode(), loaded, worker) {
            applied::record(&state_file, w.pid, &text);
        }
    }
    if p.wait && !m.check_mode() {
        if let Some(s) = &change.server {
            ctx.wait_for(std::slice::from_ref(s))?;
        }
    }
    m.set("actions", &ctx.actions);
    Ok(())
}
