//! Server level: one server changed through the runtime API, in the backend
//! named or (without one, as `community.general.haproxy` does) in every
//! backend of the file that has it; the file kept in step.

use ansible_module::{Diff, Fail, Module};
use serde_json::{Map, Value};

use crate::config::{self, Admin, BackendInfo, Server};
use crate::files::{hide_kept_secrets, read_config, write_config, Old};
use crate::ops::{runtime_can_apply, server_json, Ctx, Step};
use crate::params::{Params, State, Weight};
use crate::runtime::RtServer;
use crate::{applied, checks};

/// A server-level change: the backend's servers after this run, and the one
/// server as wanted (`None` when it goes).
#[derive(Debug, Clone)]
pub(crate) struct ServerChange {
    pub(crate) servers: Vec<Server>,
    pub(crate) server: Option<Server>,
}

/// The change a server-level run wants in `backend`, from the options and
/// the backend as the file has it, no I/O. Every value is checked first.
pub(crate) fn wanted(
    p: &Params,
    backend: &str,
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
            percent: None,
            check: true,
            backup: false,
            admin: Admin::Ready,
        },
        (None, None) => {
            return Err(Fail::new(format!(
                "server {server_name} is not in backend {backend}: give its address to add it"
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
    if let Some(weight) = &p.weight {
        match checks::weight_option(weight)? {
            Weight::Absolute(w) => {
                s.weight = w;
                s.percent = None;
            }
            // Of the configured weight, which stays; 100% is the weight itself.
            Weight::Percent(pct) => s.percent = (pct < 100).then_some(pct),
        }
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

/// Whether the run has nothing to act on in `info`: the server is not there
/// and the task neither adds it (no address) nor removes it nor asks for it
/// to exist (`present`, which fails in [`wanted`]).
fn not_found(p: &Params, info: &BackendInfo, server_name: &str) -> bool {
    !info.servers.iter().any(|s| s.name == server_name)
        && p.address.is_none()
        && !matches!(p.state, State::Absent | State::Present)
}

/// Whether the task only acts on a server that is already there: it gives no
/// address to add one and does not ask for it to exist. For such a task a
/// missing file, backend or running backend is one more "not found", so an
/// LB whose HAProxy is not set up yet is nothing to do unless
/// `fail_on_not_found` says otherwise.
fn acts_on_existing(p: &Params) -> bool {
    p.address.is_none() && p.state != State::Present
}

/// A server not found is a warning, or with `fail_on_not_found` an error.
fn report_not_found(m: &mut Module, p: &Params, what: String) -> Result<(), Fail> {
    if p.fail_on_not_found {
        return Err(Fail::new(format!("{what}: give its address to add it")));
    }
    m.warn(format!(
        "{what}: nothing done (fail_on_not_found=true makes this an error; give address to add it)"
    ));
    Ok(())
}

/// One backend's part of the run.
struct Target {
    backend: String,
    info: BackendInfo,
    running: Vec<RtServer>,
    change: ServerChange,
}

impl Target {
    /// The server as HAProxy runs it before this run.
    fn was(&self, server_name: &str) -> Vec<RtServer> {
        self.running
            .iter()
            .filter(|r| r.name == server_name)
            .cloned()
            .collect()
    }
}

/// The file as it is; `None` when it is missing and the task does not fail
/// for it.
fn read_file(m: &mut Module, p: &Params) -> Result<Option<Old>, Fail> {
    let old = read_config(m, &p.config_path)?;
    if old.is_none() && acts_on_existing(p) {
        report_not_found(m, p, format!("{} does not exist", p.config_path))?;
        return Ok(None);
    }
    old.map(Some).ok_or_else(|| {
        Fail::new(match &p.name {
            Some(b) => format!(
                "{} does not exist: set up backend {b} first (run the module without server)",
                p.config_path
            ),
            None => format!(
                "{} does not exist: set up a backend first (run the module with name and without server)",
                p.config_path
            ),
        })
    })
}

/// The backends the run acts on: the one named, or every backend of the
/// file that has the server (their names, read from the file, go into
/// runtime commands: checked like options).
fn backend_names(p: &Params, text: &str, server_name: &str) -> Result<Vec<String>, Fail> {
    if let Some(name) = &p.name {
        return Ok(vec![name.clone()]);
    }
    let found = config::backends_with_server(text, server_name);
    for b in &found {
        checks::name(
            &format!(
                "a backend name in {} (run the module without server to rewrite the file)",
                p.config_path
            ),
            b,
        )?;
    }
    Ok(found)
}

/// The backend as the file has it, and the change it takes; `None` when the
/// server is not there and the run does not fail for it.
fn target(
    m: &mut Module,
    ctx: &Ctx,
    text: &str,
    backend: &str,
    server_name: &str,
) -> Result<Option<Target>, Fail> {
    let p = ctx.p;
    let Some(info) = config::parse_backend(text, backend) else {
        if acts_on_existing(p) {
            report_not_found(
                m,
                p,
                format!("backend {backend} not found in {}", p.config_path),
            )?;
            return Ok(None);
        }
        return Err(Fail::new(format!(
            "backend {backend} not found in {}: set it up first (run the module without server)",
            p.config_path
        )));
    };
    // What the file says goes into runtime commands: checked like options.
    checks::from_file(&info, &p.config_path)?;
    if not_found(p, &info, server_name) {
        report_not_found(
            m,
            p,
            format!("server {server_name} is not in backend {backend}"),
        )?;
        return Ok(None);
    }
    let Some(running) = running_servers(ctx, backend)? else {
        if acts_on_existing(p) {
            report_not_found(
                m,
                p,
                format!(
                    "backend {backend} is in {} but not in the running HAProxy",
                    p.config_path
                ),
            )?;
            return Ok(None);
        }
        return Err(not_running(p, backend));
    };
    let change = wanted(p, backend, &info, server_name)?;
    Ok(Some(Target {
        backend: backend.to_string(),
        info,
        running,
        change,
    }))
}

/// The backend's servers in the running HAProxy; `None` when it does not
/// run that backend.
fn running_servers(ctx: &Ctx, backend: &str) -> Result<Option<Vec<RtServer>>, Fail> {
    ctx.sock
        .servers(backend)
        .map_err(|e| Fail::new(e.to_string()))
}

fn not_running(p: &Params, backend: &str) -> Fail {
    Fail::new(format!(
        "backend {backend} is in {} but not in the running HAProxy: run the module without server to reload it",
        p.config_path
    ))
}

pub(crate) fn server_level(m: &mut Module, mut ctx: Ctx, server_name: &str) -> anyhow::Result<()> {
    let p = ctx.p;
    checks::name("server", server_name)?;
    m.set("server", server_name);
    hide_kept_secrets(m, p);
    let Some(old) = read_file(m, p)? else {
        m.set("backends", Vec::<String>::new());
        m.set("actions", &ctx.actions);
        return Ok(());
    };
    let names = backend_names(p, &old.text, server_name)?;
    if names.is_empty() && p.state != State::Absent {
        report_not_found(
            m,
            p,
            format!("server {server_name} is in no backend of {}", p.config_path),
        )?;
    }
    let mut targets = vec![];
    for b in &names {
        targets.extend(target(m, &ctx, &old.text, b, server_name)?);
    }
    m.set(
        "backends",
        targets
            .iter()
            .map(|t| t.backend.as_str())
            .collect::<Vec<_>>(),
    );
    if targets.is_empty() {
        m.set("actions", &ctx.actions);
        return Ok(());
    }

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
    let Edited {
        text,
        wrote,
        can_runtime,
    } = edit_file(m, p, &old.text, &targets)?;

    if !can_runtime {
        m.set_changed(true);
        let action = if m.check_mode() {
            "reloaded"
        } else {
            ctx.reload_or_restore(&state_file, &text, wrote.then_some(Some(&old)), &[])?
        };
        m.set("service", action);
        // The new worker runs the file; the checks and sessions options
        // apply to it.
        for t in &targets {
            ctx.backend.clone_from(&t.backend);
            let now = if m.check_mode() {
                t.was(server_name)
            } else {
                running_servers(&ctx, &t.backend)?
                    .ok_or_else(|| not_running(p, &t.backend))?
                    .into_iter()
                    .filter(|r| r.name == server_name)
                    .collect()
            };
            checks_and_sessions(m, &mut ctx, t, &now, server_name)?;
        }
    } else {
        for t in &targets {
            ctx.backend.clone_from(&t.backend);
            converge_target(m, &mut ctx, t, server_name)?;
        }
        if let (false, true, Some(w)) = (m.check_mode(), loaded, worker) {
            applied::record(&state_file, w.pid, &text);
        }
    }
    if p.wait && !m.check_mode() {
        for t in &targets {
            if let Some(s) = &t.change.server {
                ctx.backend.clone_from(&t.backend);
                ctx.wait_for(std::slice::from_ref(s))?;
            }
        }
    }
    m.set("actions", &ctx.actions);
    Ok(())
}

/// The file with the server as the run wants it in every target backend.
struct Edited {
    text: String,
    /// Whether the file was written (or, in check mode, would be).
    wrote: bool,
    /// Whether the runtime API can bring the running HAProxy there, without a reload.
    can_runtime: bool,
}

/// Edits the server in every target backend of the file's text and writes
/// the file; reports the server's wanted state per backend.
fn edit_file(
    m: &mut Module,
    p: &Params,
    old_text: &str,
    targets: &[Target],
) -> anyhow::Result<Edited> {
    let mut text = old_text.to_string();
    let mut can_runtime = true;
    let mut states = Map::new();
    for t in targets {
        if let Some(edited) = config::replace_servers(&text, &t.backend, &t.change.servers) {
            text = edited;
        }
        can_runtime &= runtime_can_apply(&t.info.servers, &t.change.servers, &t.info);
        if let Some(s) = &t.change.server {
            states.insert(t.backend.clone(), server_json(s));
        }
    }
    let wrote = write_config(m, p, &text)?;
    m.set_changed(wrote);
    if let [t] = targets {
        if let Some(s) = &t.change.server {
            m.set("server_state", server_json(s));
        }
    }
    if !states.is_empty() {
        m.set("server_states", Value::Object(states));
    }
    Ok(Edited {
        text,
        wrote,
        can_runtime,
    })
}

/// Brings the server in one backend to what the run wants through the
/// runtime API.
fn converge_target(
    m: &mut Module,
    ctx: &mut Ctx,
    t: &Target,
    server_name: &str,
) -> Result<(), Fail> {
    let was = t.was(server_name);
    if let (Some(s), Some(r)) = (&t.change.server, was.first()) {
        drain_first(m, ctx, t, s, r)?;
    }
    let want: Vec<Server> = t.change.server.iter().cloned().collect();
    ctx.converge_runtime(
        m,
        format!("runtime: server {}/{server_name}", t.backend),
        &want,
        &was,
        &t.info,
    )?;
    checks_and_sessions(m, ctx, t, &was, server_name)
}

/// `drain` with `state=disabled` (community.general.haproxy's): the server
/// is drained first and, with `wait`, keeps no sessions before it goes into
/// maintenance.
fn drain_first(
    m: &mut Module,
    ctx: &mut Ctx,
    t: &Target,
    s: &Server,
    r: &RtServer,
) -> Result<(), Fail> {
    let p = ctx.p;
    if !p.drain || s.admin != Admin::Maint || r.admin() == Admin::Maint {
        return Ok(());
    }
    if r.admin() == Admin::Ready {
        let step = Step::State(s.name.clone(), Admin::Drain);
        m.set_changed(true);
        if m.check_mode() {
            ctx.actions
                .push(step.describe(&t.backend, &t.info.default_server));
        } else {
            ctx.execute(&[step], &t.info)?;
        }
    }
    if p.wait && !m.check_mode() {
        ctx.wait_for(&[Server {
            admin: Admin::Drain,
            ..s.clone()
        }])?;
    }
    Ok(())
}

/// `health`, `agent` and `shutdown_sessions` (community.general.haproxy's):
/// the server's health and agent checks follow its state (on when enabled,
/// off when disabled; a drain leaves them), and a disabled server's
/// sessions are shut down. Only what differs from `was` (the server as it
/// ran) is sent; a server added by this run has its health check from the
/// add.
fn checks_and_sessions(
    m: &mut Module,
    ctx: &mut Ctx,
    t: &Target,
    was: &[RtServer],
    server_name: &str,
) -> Result<(), Fail> {
    let p = ctx.p;
    let (Some(s), Some(r)) = (&t.change.server, was.first()) else {
        return Ok(());
    };
    let at = format!("{}/{server_name}", t.backend);
    let on = match s.admin {
        Admin::Ready => Some(true),
        Admin::Maint => Some(false),
        Admin::Drain => None,
    };
    let word = |on: bool| if on { "enabled" } else { "disabled" };
    let mut steps = vec![];
    let (mut before, mut after) = (String::new(), String::new());
    for (asked, kind, (configured, enabled), keyword) in [
        (p.health, "health", r.health(), "check"),
        (p.agent, "agent", r.agent(), "agent-check"),
    ] {
        let Some(on) = on.filter(|_| asked) else {
            continue;
        };
        if !configured {
            m.warn(format!(
                "server {at} has no {kind} check ({keyword}): {kind}=true changes nothing there"
            ));
        } else if enabled != on {
            steps.push(if kind == "health" {
                Step::Health(s.name.clone(), on)
            } else {
                Step::Agent(s.name.clone(), on)
            });
            before.push_str(&format!("{kind} check {}\n", word(enabled)));
            after.push_str(&format!("{kind} check {}\n", word(on)));
        }
    }
    if p.shutdown_sessions {
        if s.admin == Admin::Maint {
            let n = ctx.sessions()?.get(server_name).copied().unwrap_or(0);
            if n > 0 {
                steps.push(Step::Shutdown(s.name.clone()));
                before.push_str(&format!("{n} session(s)\n"));
                after.push_str("sessions shut down\n");
            }
        } else {
            m.warn(format!(
                "shutdown_sessions applies to a server being disabled (state=disabled or maint), as in community.general.haproxy: the sessions of {at} are left to finish"
            ));
        }
    }
    if steps.is_empty() {
        return Ok(());
    }
    m.set_changed(true);
    m.add_diff(Diff::new(
        format!("runtime: server {at} checks and sessions"),
        before,
        after,
    ));
    if m.check_mode() {
        ctx.actions.extend(
            steps
                .iter()
                .map(|st| st.describe(&t.backend, &t.info.default_server)),
        );
        Ok(())
    } else {
        ctx.execute(&steps, &t.info)
    }
}

#[cfg(test)]
mod tests {
    //! Server-level runs against a stand-in for HAProxy's admin socket that
    //! keeps each server's state, answers `show servers state`, `show stat`
    //! and `show info` like HAProxy 2.6, and records every command: how
    //! community.general.haproxy's options map onto runtime commands, and that
    //! a second run sends none.

    use std::collections::BTreeMap;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::sync::{Arc, Mutex};

    use serde_json::{json, Value};

    use super::*;

    #[derive(Debug, Clone)]
    struct Srv {
        addr: String,
        port: u16,
        flags: u32,
        weight: u16,
        check_state: u32,
        agent_state: u32,
        scur: u64,
    }

    type Servers = BTreeMap<(String, String), Srv>;

    #[derive(Clone, Default)]
    struct Fake {
        servers: Arc<Mutex<Servers>>,
        commands: Arc<Mutex<Vec<String>>>,
    }

    impl Fake {
        fn start(path: &std::path::Path, servers: Servers) -> Fake {
            let fake = Fake {
                servers: Arc::new(Mutex::new(servers)),
                commands: Arc::default(),
            };
            let listener = UnixListener::bind(path).expect("bind");
            let f = fake.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    let mut line = String::new();
                    let mut reader = BufReader::new(&stream);
                    if reader.read_line(&mut line).is_err() {
                        continue;
                    }
                    let answer = f.answer(line.trim_end());
                    let _ = (&stream).write_all(answer.as_bytes());
                }
            });
            fake
        }

        fn lock(&self) -> std::sync::MutexGuard<'_, Servers> {
            self.servers.lock().unwrap_or_else(|e| e.into_inner())
        }

        /// The commands that changed something, taken.
        fn sent(&self) -> Vec<String> {
            std::mem::take(&mut *self.commands.lock().unwrap_or_else(|e| e.into_inner()))
        }

        fn get(&self, b: &str, s: &str) -> Srv {
            self.lock()[&(b.to_string(), s.to_string())].clone()
        }

        fn answer(&self, cmd: &str) -> String {
            let w: Vec<&str> = cmd.split_whitespace().collect();
            let mut servers = self.lock();
            match w.as_slice() {
                ["show", "info"] => return "Name: HAProxy\nPid: 42\nUptime_sec: 1000\n".into(),
                ["show", "servers", "state", b] => {
                    if !servers.keys().any(|(x, _)| x == b) {
                        return "Can't find backend.\n".into();
                    }
                    let mut out = String::from("1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port\n");
                    for ((x, name), s) in servers.iter().filter(|((x, _), _)| x == b) {
                        let op = if s.flags & 1 != 0 { 0 } else { 2 };
                        out.push_str(&format!(
                            "3 {x} 1 {name} {} {op} {} {} 100 1 15 3 4 {} {} 0 0 - {}\n",
                            s.addr, s.flags, s.weight, s.check_state, s.agent_state, s.port
                        ));
                    }
                    return out + "\n";
                }
                ["show", "stat", ..] => {
                    let mut out = String::from("# pxname,svname,qcur,qmax,scur,smax\n");
                    for ((b, name), s) in servers.iter() {
                        out.push_str(&format!("{b},{name},0,0,{},0\n", s.scur));
                    }
                    return out;
                }
                _ => {}
            }
            self.commands
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(cmd.to_string());
            let at = |bs: &str| {
                bs.split_once('/')
                    .map(|(b, s)| (b.to_string(), s.to_string()))
                    .unwrap_or_default()
            };
            let mut with = |bs: &str, f: &dyn Fn(&mut Srv)| match servers.get_mut(&at(bs)) {
                Some(s) => {
                    f(s);
                    String::new()
                }
                None => "No such server.\n".into(),
            };
            match w.as_slice() {
                ["set", "server", bs, "state", "ready"] => with(bs, &|s| s.flags &= !0x09),
                ["set", "server", bs, "state", "drain"] => {
                    with(bs, &|s| s.flags = (s.flags & !0x01) | 0x08)
                }
                ["set", "server", bs, "state", "maint"] => with(bs, &|s| s.flags |= 0x01),
                ["set", "server", bs, "weight", n] => {
                    let n: u16 = n.parse().unwrap_or(999);
                    with(bs, &move |s| s.weight = n)
                }
                ["enable", "health", bs] => with(bs, &|s| s.check_state |= 4),
                ["disable", "health", bs] => with(bs, &|s| s.check_state &= !4),
                ["enable", "agent", bs] => with(bs, &|s| s.agent_state |= 4),
                ["disable", "agent", bs] => with(bs, &|s| s.agent_state &= !4),
                ["shutdown", "sessions", "server", bs] => with(bs, &|s| s.scur = 0),
                _ => "Unknown command.\n".into(),
            }
        }
    }

    const FILE: &str = "global\n    stats socket SOCK mode 600 level admin\n\n\
        backend www\n    balance roundrobin\n    default-server inter 2s rise 2 fall 3\n    \
        server lb1 10.0.0.1:80 weight 100 check\n    server web2 10.0.0.2:80 weight 100 check\n\n\
        backend api\n    balance roundrobin\n    default-server inter 2s rise 2 fall 3\n    \
        server lb1 10.0.0.1:8080 weight 100 check\n";

    struct Bed {
        dir: tempfile::TempDir,
        fake: Fake,
    }

    impl Bed {
        fn new() -> Bed {
            let dir = tempfile::tempdir().expect("tempdir");
            let sock = dir.path().join("admin.sock");
            let srv = |port| Srv {
                addr: "10.0.0.1".into(),
                port,
                flags: 0,
                weight: 100,
                check_state: 6,
                agent_state: 0,
                scur: 0,
            };
            let mut servers = BTreeMap::new();
            servers.insert(("www".into(), "lb1".into()), srv(80));
            servers.insert(
                ("www".into(), "web2".into()),
                Srv {
                    addr: "10.0.0.2".into(),
                    ..srv(80)
                },
            );
            servers.insert(("api".into(), "lb1".into()), srv(8080));
            let fake = Fake::start(&sock, servers);
            let text = FILE.replace("SOCK", &sock.display().to_string());
            std::fs::write(dir.path().join("haproxy.cfg"), text).expect("write");
            Bed { dir, fake }
        }

        fn at(&self, f: &str) -> String {
            self.dir.path().join(f).display().to_string()
        }

        /// Runs the module with a task written for community.general.haproxy
        /// (plus where the file is and a checker that accepts it).
        fn run(&self, task: Value) -> (Value, bool) {
            let mut args = json!({
                "config_path": self.at("haproxy.cfg"),
                "validate": "true %s",
                "socket": self.at("admin.sock"),
            });
            for (k, v) in task.as_object().cloned().unwrap_or_default() {
                args[k] = v;
            }
            let (out, failed) = ansible_module::execute(
                "haproxy_backend",
                &crate::spec(),
                args.as_object().cloned().unwrap_or_default(),
                crate::run,
            );
            (Value::Object(out), failed)
        }

        fn ok(&self, task: Value) -> Value {
            let (out, failed) = self.run(task);
            assert!(!failed, "{out:#}");
            out
        }

        /// Runs `task`, expects exactly `commands`, then runs it again and
        /// expects none and no change.
        fn converges(&self, task: Value, commands: &[&str]) -> Value {
            let out = self.ok(task.clone());
            assert_eq!(self.fake.sent(), commands, "{out:#}");
            assert_eq!(out["changed"], json!(!commands.is_empty()), "{out:#}");
            let again = self.ok(task);
            assert_eq!(self.fake.sent(), Vec::<String>::new(), "{again:#}");
            assert_eq!(again["changed"], json!(false), "{again:#}");
            out
        }

        fn file(&self) -> String {
            std::fs::read_to_string(self.at("haproxy.cfg")).expect("read")
        }
    }

    fn warned(out: &Value, needle: &str) -> bool {
        out["warnings"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|w| w.as_str().unwrap_or_default().contains(needle))
    }

    #[test]
    fn community_general_tasks_map_onto_runtime_commands() {
        let bed = Bed::new();
        // host and socket are aliases; no backend: every backend that has it.
        let out = bed.converges(
            json!({"state": "disabled", "host": "lb1"}),
            &[
                "set server www/lb1 state maint",
                "set server api/lb1 state maint",
            ],
        );
        assert_eq!(out["backends"], json!(["www", "api"]));
        assert!(out.get("backend").is_none(), "{out:#}");
        assert_eq!(out["server_states"]["api"]["state"], json!("maint"));
        assert!(bed
            .file()
            .contains("server lb1 10.0.0.1:80 weight 100 check disabled\n"));
        assert!(bed
            .file()
            .contains("server lb1 10.0.0.1:8080 weight 100 check disabled\n"));
        assert!(bed
            .file()
            .contains("server web2 10.0.0.2:80 weight 100 check\n"));

        // health and agent follow the state; the agent is not configured.
        let out = bed.converges(
            json!({"state": "disabled", "host": "lb1", "health": true, "agent": true}),
            &["disable health www/lb1", "disable health api/lb1"],
        );
        assert!(warned(&out, "has no agent check (agent-check)"), "{out:#}");
        assert_eq!(bed.fake.get("api", "lb1").check_state, 2);

        // Enabled in one backend, with an absolute weight.
        let out = bed.converges(
            json!({"state": "enabled", "host": "lb1", "backend": "www", "weight": 10}),
            &[
                "set server www/lb1 state ready",
                "set server www/lb1 weight 10",
            ],
        );
        assert_eq!(out["backend"], json!("www"));
        assert_eq!(out["server_state"]["weight"], json!(10));
        assert_eq!(bed.fake.get("api", "lb1").flags & 1, 1, "api untouched");
        // health was not asked for: the check stays off, as with c.g.
        assert_eq!(bed.fake.get("www", "lb1").check_state, 2);
        bed.converges(
            json!({"state": "enabled", "host": "lb1", "backend": "www", "health": true}),
            &["enable health www/lb1"],
        );

        // A percentage of the configured weight, kept in the file.
        let out = bed.converges(
            json!({"state": "enabled", "host": "lb1", "backend": "www", "weight": "50%"}),
            &["set server www/lb1 weight 5"],
        );
        assert_eq!(out["server_state"]["weight_percent"], json!(50));
        assert!(
            bed.file()
                .contains("server lb1 10.0.0.1:80 weight 5 check  # weight 50% of 10\n"),
            "{}",
            bed.file()
        );
        // Enabling again without a weight keeps the share; 100% is the weight.
        bed.converges(
            json!({"state": "enabled", "host": "lb1", "backend": "www"}),
            &[],
        );
        bed.converges(
            json!({"state": "enabled", "host": "lb1", "backend": "www", "weight": "100%"}),
            &["set server www/lb1 weight 10"],
        );

        // Drain, then disabled with sessions shut down.
        bed.converges(
            json!({"state": "drain", "host": "lb1", "backend": "www"}),
            &["set server www/lb1 state drain"],
        );
        if let Some(s) = bed.fake.lock().get_mut(&("www".into(), "lb1".into())) {
            s.scur = 3;
        }
        let out = bed.converges(
            json!({"state": "disabled", "host": "lb1", "backend": "www", "shutdown_sessions": true}),
            &["set server www/lb1 state maint", "shutdown sessions server www/lb1"],
        );
        assert!(
            out["actions"]
                .to_string()
                .contains("shutdown sessions server www/lb1"),
            "{out:#}"
        );
        // On a drain, shutdown_sessions does nothing (as with c.g.) and says so.
        let out = bed.ok(
            json!({"state": "drain", "host": "lb1", "backend": "www", "shutdown_sessions": true}),
        );
        assert_eq!(bed.fake.sent(), ["set server www/lb1 state drain"]);
        assert!(warned(
            &out,
            "shutdown_sessions applies to a server being disabled"
        ));

        // drain: true with disabled drains first, then maintenance.
        bed.ok(json!({"state": "enabled", "host": "lb1", "backend": "www"}));
        bed.fake.sent();
        bed.converges(
            json!({"state": "disabled", "host": "lb1", "backend": "www", "drain": true}),
            &[
                "set server www/lb1 state drain",
                "set server www/lb1 state maint",
            ],
        );
    }

    /// Check mode lists the commands, the community.general ones included,
    /// and sends none.
    #[test]
    fn check_mode_reports_and_sends_nothing() {
        let bed = Bed::new();
        if let Some(s) = bed.fake.lock().get_mut(&("api".into(), "lb1".into())) {
            s.scur = 2;
        }
        let before = bed.file();
        let out = bed.ok(json!({
            "state": "disabled", "host": "lb1", "health": true, "shutdown_sessions": true,
            "drain": true, "_ansible_check_mode": true, "_ansible_diff": true,
        }));
        assert_eq!(out["changed"], json!(true), "{out:#}");
        assert_eq!(
            out["actions"],
            json!([
                "set server www/lb1 state drain",
                "set server www/lb1 state maint",
                "disable health www/lb1",
                "set server api/lb1 state drain",
                "set server api/lb1 state maint",
                "disable health api/lb1",
                "shutdown sessions server api/lb1",
            ]),
            "{out:#}"
        );
        assert!(
            out["diff"].to_string().contains("checks and sessions"),
            "{out:#}"
        );
        assert!(bed.fake.sent().is_empty());
        assert_eq!(bed.file(), before);
    }

    #[test]
    fn a_server_not_found_is_a_warning_unless_asked() {
        let bed = Bed::new();
        let before = bed.file();
        for task in [
            json!({"state": "disabled", "host": "nope"}),
            json!({"state": "enabled", "host": "nope", "backend": "www"}),
            json!({"state": "drain", "host": "web2", "backend": "api"}),
        ] {
            let out = bed.ok(task.clone());
            assert_eq!(out["changed"], json!(false), "{out:#}");
            assert!(
                warned(&out, "nothing done (fail_on_not_found=true"),
                "{out:#}"
            );
            let mut strict = task;
            strict["fail_on_not_found"] = json!(true);
            let (out, failed) = bed.run(strict);
            assert!(failed, "{out:#}");
            assert!(
                out["msg"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("give its address to add it"),
                "{out:#}"
            );
        }
        let (out, failed) =
            bed.run(json!({"state": "disabled", "host": "nope", "fail_on_not_found": true}));
        assert!(failed);
        assert!(out["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("server nope is in no backend of "));
        // So is a backend that is not there (community.general.haproxy skips
        // it), and a file that is not there: an LB not set up yet.
        let missing = bed.at("missing.cfg");
        let fresh = bed.at("fresh.cfg");
        std::fs::write(
            &fresh,
            bed.file() + "\nbackend fresh\n    server lb1 10.0.0.1:80 weight 100 check\n",
        )
        .expect("write");
        for (task, msg) in [
            (
                json!({"state": "disabled", "host": "lb1", "backend": "nope"}),
                "backend nope not found in ".to_string(),
            ),
            (
                json!({"state": "drain", "host": "lb1", "backend": "www", "config_path": missing}),
                format!("{missing} does not exist"),
            ),
            (
                json!({"state": "enabled", "host": "lb1", "backend": "fresh", "config_path": fresh}),
                format!("backend fresh is in {fresh} but not in the running HAProxy"),
            ),
        ] {
            let out = bed.ok(task.clone());
            assert_eq!(out["changed"], json!(false), "{out:#}");
            assert!(warned(&out, &msg), "{out:#}");
            let mut strict = task;
            strict["fail_on_not_found"] = json!(true);
            let (out, failed) = bed.run(strict);
            assert!(failed, "{out:#}");
            assert!(
                out["msg"].as_str().unwrap_or_default().starts_with(&msg),
                "{out:#}"
            );
        }
        // Adding a server needs the file and the backend whatever the option.
        let (out, failed) = bed.run(
            json!({"state": "enabled", "host": "web9", "backend": "nope",
            "address": "10.0.0.9"}),
        );
        assert!(failed, "{out:#}");
        assert!(out["msg"]
            .as_str()
            .unwrap_or_default()
            .starts_with("backend nope not found"));
        assert!(!std::path::Path::new(&missing).exists());
        assert_eq!(bed.file(), before);
        assert!(bed.fake.sent().is_empty());
        // Removing what is not there is no warning.
        let out = bed.ok(json!({"state": "absent", "host": "nope"}));
        assert!(!warned(&out, "nothing done"), "{out:#}");
    }

    #[test]
    fn options_that_need_a_server_or_a_backend_say_so() {
        let bed = Bed::new();
        for (task, msg) in [
            (
                json!({"state": "present"}),
                "missing required arguments: name",
            ),
            (
                json!({"host": "new", "address": "10.0.0.9", "state": "enabled"}),
                "address adds the server to one backend: give name (or backend) with it",
            ),
            (
                json!({"name": "www", "servers": [], "health": true, "shutdown_sessions": true}),
                "shutdown_sessions, health act on one server",
            ),
            (
                json!({"host": "lb1", "state": "enabled", "wait_retries": 0}),
                "wait_retries must be 1 or more, got: 0",
            ),
            (
                json!({"host": "lb1", "state": "enabled", "wait_interval": -1}),
                "wait_interval must be 0 or more seconds, got: -1",
            ),
            (
                json!({"host": "lb1", "state": "enabled", "weight": "150%"}),
                "weight as a percentage must be from 0% to 100%",
            ),
        ] {
            let (out, failed) = bed.run(task.clone());
            assert!(failed, "{task}: {out:#}");
            assert!(
                out["msg"].as_str().unwrap_or_default().contains(msg),
                "{task}: want {msg:?}: {out:#}"
            );
        }
        assert!(bed.fake.sent().is_empty());
    }

    /// community.general.haproxy's `state` choices are ours with the same
    /// meaning in HAProxy's terms: enabled is ready, disabled is maint.
    #[test]
    fn states_map_to_admin_states() {
        let info = BackendInfo {
            servers: vec![Server {
                name: "a".into(),
                address: "10.0.0.1".into(),
                port: 80,
                weight: 100,
                percent: None,
                check: true,
                backup: false,
                admin: Admin::Ready,
            }],
            ..BackendInfo::default()
        };
        for (state, admin) in [
            ("enabled", Some(Admin::Ready)),
            ("disabled", Some(Admin::Maint)),
            ("maint", Some(Admin::Maint)),
            ("drain", Some(Admin::Drain)),
            ("present", Some(Admin::Ready)),
            ("absent", None),
        ] {
            let p: Params = serde_json::from_value(json!({
                "name": "web", "state": state, "server": "a",
                "wait": false, "wait_timeout": 60, "drain": false, "shutdown_sessions": false,
                "health": false, "agent": false, "fail_on_not_found": false,
                "balance": "roundrobin", "forwardfor": true, "stickiness": "none",
                "health_check": {"method": "OPTIONS", "path": "/", "expect_status": 200, "interval": "2s", "fast_interval": "500ms",
                                 "rise": 2, "fall": 3, "observe": "layer4", "error_limit": 1, "on_error": "mark-down"},
                "retry": {"retries": 3, "redispatch": 1, "conditions": [], "replay_methods": []},
                "frontend": {"name": "http_in", "bind": "*:80"},
                "cookie": {"name": "SERVERID", "key_file": "/etc/haproxy/cookie.key"},
                "stats": {"enabled": false, "bind": "*:8404", "uri": "/s", "user": "stats", "password_file": "/etc/haproxy/stats.password"},
                "timeouts": {"connect": "5s", "client": "50s", "server": "50s", "http_request": "10s", "queue": "30s"},
                "extra": {"global": [], "defaults": [], "frontend": [], "backend": []},
                "config_path": "/etc/haproxy/haproxy.cfg", "admin_socket": "/run/haproxy/admin.sock",
                "validate": "haproxy -c -q -f %s",
            }))
            .expect("params");
            let change = wanted(&p, "web", &info, "a").expect(state);
            assert_eq!(change.server.map(|s| s.admin), admin, "{state}");
        }
    }
}
