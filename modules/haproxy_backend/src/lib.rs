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
pub mod checks;
pub mod config;
pub mod params;
pub mod runtime;
mod stats;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use ansible_module::config_file::{run_checker, ConfigError};
use ansible_module::{service, ConfigFile, Diff, Fail, Module, ModuleSpec};
use serde_json::{json, Value};

use config::{Admin, BackendCfg, BackendInfo, FrontendCfg, Layout, Server, StatsCfg};
use params::Params;
use runtime::{RtServer, Socket, OP_RUNNING};

pub const UNIT: &str = "haproxy";
const POLL: Duration = Duration::from_millis(200);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);

pub fn spec() -> ModuleSpec {
    ModuleSpec::from_json(params::SPEC)
}

/// The module body.
pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    checks::name("name", &p.name)?;
    if p.wait_timeout < 0 {
        return Err(Fail::new(format!(
            "wait_timeout must be 0 or more seconds, got: {}",
            p.wait_timeout
        ))
        .into());
    }
    m.set("backend", &p.name);
    m.set("config_path", &p.config_path);
    let ctx = Ctx {
        sock: Socket::new(&p.admin_socket),
        timeout: Duration::from_secs(p.wait_timeout.unsigned_abs()),
        p: &p,
        actions: vec![],
    };
    match p.server.clone() {
        Some(server) => server_level(m, ctx, &server),
        None => backend_level(m, ctx),
    }
}

struct Ctx<'a> {
    p: &'a Params,
    sock: Socket,
    timeout: Duration,
    /// Runtime API commands sent (or, in check mode, that would be sent).
    actions: Vec<String>,
}

/// One change to the running HAProxy.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Add(Server),
    Addr(Server),
    Weight(String, u16),
    State(String, Admin),
    Remove(String),
}

impl Step {
    /// The runtime command(s) the step stands for, as check mode reports them.
    fn describe(&self, backend: &str, defaults: &str) -> String {
        match self {
            Step::Add(s) => format!("add server {backend}/{} {}", s.name, s.add_args(defaults)),
            Step::Addr(s) => format!(
                "set server {backend}/{} addr {} port {}",
                s.name, s.address, s.port
            ),
            Step::Weight(n, w) => format!("set server {backend}/{n} weight {w}"),
            Step::State(n, a) => format!("set server {backend}/{n} state {}", a.as_str()),
            Step::Remove(n) => format!("del server {backend}/{n}"),
        }
    }

    fn server(&self) -> &str {
        match self {
            Step::Add(s) | Step::Addr(s) => &s.name,
            Step::Weight(n, _) | Step::State(n, _) | Step::Remove(n) => n,
        }
    }
}

/// What it takes to bring the running servers to `desired`; servers running
/// but not desired are removed.
fn plan(desired: &[Server], running: &[RtServer]) -> Vec<Step> {
    let mut steps = vec![];
    for d in desired {
        let Some(r) = running.iter().find(|r| r.name == d.name) else {
            steps.push(Step::Add(d.clone()));
            continue;
        };
        if d.has_ip() && (r.address != d.address || r.port != d.port) {
            steps.push(Step::Addr(d.clone()));
        }
        if r.admin() != d.admin {
            steps.push(Step::State(d.name.clone(), d.admin));
        }
        if d.admin == Admin::Ready && r.weight != d.weight {
            steps.push(Step::Weight(d.name.clone(), d.weight));
        }
    }
    for r in running {
        if !desired.iter().any(|d| d.name == r.name) {
            steps.push(Step::Remove(r.name.clone()));
        }
    }
    steps
}

fn describe_running(servers: &[RtServer]) -> String {
    servers
        .iter()
        .map(|r| {
            format!(
                "{} {}:{} weight {} {} ({})\n",
                r.name,
                r.address,
                r.port,
                r.weight,
                r.admin().as_str(),
                r.op_name()
            )
        })
        .collect()
}

fn describe_desired(servers: &[Server]) -> String {
    servers
        .iter()
        .map(|s| {
            format!(
                "{} {} weight {} {}\n",
                s.name,
                s.addr_port(),
                s.effective_weight(),
                s.admin.as_str()
            )
        })
        .collect()
}

fn server_json(s: &Server) -> Value {
    json!({
        "name": s.name, "address": s.address, "port": s.port, "weight": s.weight,
        "check": s.check, "backup": s.backup,
        "state": match s.admin { Admin::Ready => "enabled", Admin::Drain => "drain", Admin::Maint => "maint" },
    })
}

impl Ctx<'_> {
    fn backend(&self) -> &str {
        &self.p.name
    }

    fn cmd(&mut self, command: String, ok: &[&str]) -> Result<(), Fail> {
        self.sock
            .command(&command, ok)
            .map_err(|e| Fail::new(e.to_string()).with("actions", &self.actions))?;
        self.actions.push(command);
        Ok(())
    }

    /// Sends the commands for `steps`.
    fn execute(&mut self, steps: &[Step], info: &BackendInfo) -> Result<(), Fail> {
        let b = self.backend().to_string();
        for step in steps {
            match step {
                Step::Add(s) => {
                    let args = s.add_args(&info.default_server);
                    self.cmd(
                        format!("add server {b}/{} {args}", s.name),
                        &["New server registered"],
                    )?;
                    if s.check {
                        self.cmd(format!("enable health {b}/{}", s.name), &[])?;
                    }
                    if s.admin != Admin::Maint {
                        self.cmd(
                            format!("set server {b}/{} state {}", s.name, s.admin.as_str()),
                            &[],
                        )?;
                    }
                    if let Some(key) = &info.cookie_key {
                        // Servers added at runtime get their dynamic cookie only
                        // when the backend's key is set again.
                        self.sock
                            .command(&format!("set dynamic-cookie-key backend {b} {key}"), &[])
                            .and_then(|()| {
                                self.sock
                                    .command(&format!("enable dynamic-cookie backend {b}"), &[])
                            })
                            .map_err(|e| Fail::new(e.to_string()))?;
                        self.actions
                            .push(format!("set dynamic-cookie-key backend {b} (same key)"));
                    }
                }
                Step::Addr(s) => self.cmd(
                    format!(
                        "set server {b}/{} addr {} port {}",
                        s.name, s.address, s.port
                    ),
                    &["IP changed", "no need to change", "port changed"],
                )?,
                Step::Weight(n, w) => self.cmd(format!("set server {b}/{n} weight {w}"), &[])?,
                Step::State(n, a) => {
                    self.cmd(format!("set server {b}/{n} state {}", a.as_str()), &[])?;
                }
                Step::Remove(n) => self.remove(n)?,
            }
        }
        Ok(())
    }

    /// Maintenance, wait for its sessions to end, delete.
    fn remove(&mut self, server: &str) -> Result<(), Fail> {
        let b = self.backend().to_string();
        self.cmd(format!("set server {b}/{server} state maint"), &[])?;
        let start = Instant::now();
        loop {
            let sessions = self.sessions()?.get(server).copied().unwrap_or(0);
            if sessions == 0 {
                let command = format!("del server {b}/{server}");
                match self.sock.command(&command, &["Server deleted"]) {
                    Ok(()) => {
                        self.actions.push(command);
                        return Ok(());
                    }
                    Err(e) if start.elapsed() >= self.timeout => {
                        return Err(Fail::new(format!(
                            "server {b}/{server} is in maintenance but could not be deleted within {}s: {e}",
                            self.timeout.as_secs()
                        ))
                        .with("actions", &self.actions));
                    }
                    Err(_) => {}
                }
            } else if start.elapsed() >= self.timeout {
                return Err(Fail::new(format!(
                    "server {b}/{server} still has {sessions} session(s) after {}s in maintenance; raise wait_timeout to let them finish",
                    self.timeout.as_secs()
                ))
                .with("actions", &self.actions));
            }
            std::thread::sleep(POLL);
        }
    }

    fn sessions(&self) -> Result<BTreeMap<String, u64>, Fail> {
        self.sock
            .sessions(self.backend())
            .map_err(|e| Fail::new(e.to_string()))
    }

    fn running(&self) -> Result<Vec<RtServer>, Fail> {
        self.sock
            .servers(self.backend())
            .map_err(|e| Fail::new(e.to_string()))?
            .ok_or_else(|| {
                Fail::new(format!(
                    "backend {} is not in the running HAProxy",
                    self.backend()
                ))
            })
    }

    /// Polls until every server in `servers` is where it should be: up when
    /// enabled, without sessions when drained or in maintenance.
    fn wait_for(&self, servers: &[Server]) -> Result<(), Fail> {
        let start = Instant::now();
        loop {
            let running = self.running()?;
            let sessions = self.sessions()?;
            let mut pending = vec![];
            for s in servers {
                let Some(r) = running.iter().find(|r| r.name == s.name) else {
                    pending.push(format!("{} is not running", s.name));
                    continue;
                };
                let n = sessions.get(&s.name).copied().unwrap_or(0);
                match s.admin {
                    Admin::Ready if r.admin() != Admin::Ready || r.op_state != OP_RUNNING => {
                        pending.push(format!(
                            "{} to be up (it is {}, {}; is its health check passing?)",
                            s.name,
                            r.admin().as_str(),
                            r.op_name()
                        ));
                    }
                    Admin::Drain | Admin::Maint if r.admin() != s.admin || n > 0 => {
                        pending.push(format!(
                            "{} to be {} with no sessions (it is {}, {n} session(s))",
                            s.name,
                            s.admin.as_str(),
                            r.admin().as_str()
                        ));
                    }
                    _ => {}
                }
            }
            if pending.is_empty() {
                return Ok(());
            }
            if start.elapsed() >= self.timeout {
                return Err(Fail::new(format!(
                    "timed out after {}s waiting for {}: {}",
                    self.timeout.as_secs(),
                    self.backend(),
                    pending.join("; ")
                ))
                .with("actions", &self.actions));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Reloads a running HAProxy (never restarts it) or starts a stopped one,
    /// and waits until the new worker answers on the admin socket.
    /// Returns what was done and the new worker's pid.
    fn reload_or_start(&self) -> Result<(&'static str, u32), Fail> {
        if !service::is_active(UNIT) {
            service::run("systemctl", &["start", UNIT])?;
            return Ok(("started", self.await_worker(None, "started")?));
        }
        let before = self.sock.pid().ok().flatten();
        service::run("systemctl", &["reload", UNIT])?;
        Ok(("reloaded", self.await_worker(before, "reloaded")?))
    }

    fn await_worker(&self, old_pid: Option<u32>, what: &str) -> Result<u32, Fail> {
        let start = Instant::now();
        loop {
            let pid = self.sock.pid().ok().flatten();
            if let Some(pid) = pid.filter(|p| Some(*p) != old_pid) {
                return Ok(pid);
            }
            if start.elapsed() >= RELOAD_TIMEOUT {
                let journal = service::run(
                    "journalctl",
                    &["-u", UNIT, "-n", "15", "--no-pager", "-o", "cat"],
                )
                .unwrap_or_default();
                return Err(Fail::new(format!(
                    "haproxy was {what} but no new worker answered on {} within {}s (the new configuration did not take effect; is another service bound to its ports?)",
                    self.sock.path.display(),
                    RELOAD_TIMEOUT.as_secs()
                ))
                .with("journal", journal));
            }
            std::thread::sleep(POLL);
        }
    }
}

fn read_config(path: &str) -> Result<Option<String>, Fail> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Fail::new(format!("reading {path}: {e}"))),
    }
}

/// Writes the config (validated, atomically); `private` makes it root-only,
/// for a file that holds the stats password.
fn write_config(m: &mut Module, p: &Params, text: &str, private: bool) -> Result<bool, Fail> {
    let out = ConfigFile::new(&p.config_path)
        .validate_with(p.validate.as_str())
        .mode(if private { 0o600 } else { 0o644 })
        .write(text, m.check_mode())
        .map_err(|e| {
            let mut msg = e.to_string();
            if let ConfigError::Rejected { output, .. } = &e {
                if output.trim().is_empty() {
                    msg.push_str(&explain_rejection(&p.validate, &p.config_path, text));
                }
            }
            Fail::new(msg)
        })?;
    let mut changed = out.changed;
    if out.changed {
        m.add_diff(out.diff);
    }
    if private {
        if let Ok(meta) = std::fs::metadata(&p.config_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                changed = true;
                if !m.check_mode() {
                    std::fs::set_permissions(
                        &p.config_path,
                        std::fs::Permissions::from_mode(0o600),
                    )
                    .map_err(|e| Fail::new(format!("chmod 0600 {}: {e}", p.config_path)))?;
                }
            }
        }
    }
    Ok(changed)
}

/// `haproxy -c -q` says nothing about why it rejects a file: check the same
/// text again without `-q` to have the reason.
fn explain_rejection(validate: &str, config_path: &str, text: &str) -> String {
    let loud: Vec<&str> = validate.split_whitespace().filter(|w| *w != "-q").collect();
    if loud.len() == validate.split_whitespace().count() {
        return String::new();
    }
    let dir = std::path::Path::new(config_path)
        .parent()
        .unwrap_or(std::path::Path::new("/tmp"));
    let Ok(mut tmp) = tempfile::Builder::new()
        .prefix(".haproxy-check.")
        .tempfile_in(dir)
    else {
        return String::new();
    };
    if std::io::Write::write_all(&mut tmp, text.as_bytes()).is_err() {
        return String::new();
    }
    match run_checker(&loud.join(" "), tmp.path()) {
        Err((_, output)) => output.replace(&tmp.path().display().to_string(), config_path),
        Ok(()) => String::new(),
    }
}

/// Whether the running HAProxy can go from `old` to `new` servers through the
/// runtime API alone.
fn runtime_can_apply(old: &[Server], new: &[Server], info: &BackendInfo) -> bool {
    let added_ok = new
        .iter()
        .all(|n| match old.iter().find(|o| o.name == n.name) {
            // A name would not be resolved for a server added at runtime.
            None => n.has_ip() && info.dynamic_lb(),
            Some(o) => {
                o.check == n.check
                    && o.backup == n.backup
                    && (n.has_ip() || (o.address == n.address && o.port == n.port))
            }
        });
    added_ok
}

fn backend_level(m: &mut Module, mut ctx: Ctx) -> anyhow::Result<()> {
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

    if needs_reload {
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
        let steps = plan(&servers, &running);
        if !steps.is_empty() {
            m.set_changed(true);
            m.add_diff(Diff::new(
                format!("runtime: backend {}", p.name),
                describe_running(&running),
                describe_desired(&servers),
            ));
            if m.check_mode() {
                ctx.actions = steps
                    .iter()
                    .map(|s| s.describe(&p.name, &info.default_server))
                    .collect();
            } else {
                ctx.execute(&steps, &info)?;
            }
        }
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

fn server_level(m: &mut Module, mut ctx: Ctx, server_name: &str) -> anyhow::Result<()> {
    let p = ctx.p;
    checks::name("server", server_name)?;
    m.set("server", server_name);
    let Some(old) = read_config(&p.config_path)? else {
        return Err(Fail::new(format!(
            "{} does not exist: set up backend {} first (run the module without server)",
            p.config_path, p.name
        ))
        .into());
    };
    let Some(info) = config::parse_backend(&old, &p.name) else {
        return Err(Fail::new(format!(
            "backend {} not found in {}: set it up first (run the module without server)",
            p.name, p.config_path
        ))
        .into());
    };
    let running = ctx
        .sock
        .servers(&p.name)
        .map_err(|e| Fail::new(e.to_string()))?;
    let Some(running) = running else {
        return Err(Fail::new(format!(
            "backend {} is in {} but not in the running HAProxy: run the module without server to reload it",
            p.name, p.config_path
        ))
        .into());
    };

    let state_file = applied::state_path(&p.admin_socket);
    let worker = ctx.sock.info().ok().flatten();
    let loaded = worker.is_some_and(|w| applied::in_sync(&p.config_path, &old, w, &state_file));
    if !loaded {
        m.warn(format!(
            "the running HAProxy has not loaded {} as it is: run the module without server to reload it",
            p.config_path
        ));
    }
    let existing = info.servers.iter().find(|s| s.name == server_name).cloned();
    let mut servers = info.servers.clone();
    let desired = if p.state == "absent" {
        servers.retain(|s| s.name != server_name);
        None
    } else {
        let mut s = match (&existing, &p.address) {
            (Some(s), _) => s.clone(),
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
                ))
                .into())
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
        s.admin = match p.state.as_str() {
            "present" => s.admin,
            "enabled" => Admin::Ready,
            "drain" => Admin::Drain,
            _ => Admin::Maint,
        };
        match servers.iter_mut().find(|o| o.name == server_name) {
            Some(slot) => *slot = s.clone(),
            None => servers.push(s.clone()),
        }
        Some(s)
    };
    let text = config::replace_servers(&old, &p.name, &servers).unwrap_or_else(|| old.clone());
    let can_runtime = runtime_can_apply(&info.servers, &servers, &info);
    let private =
        std::fs::metadata(&p.config_path).is_ok_and(|meta| meta.permissions().mode() & 0o077 == 0);
    if write_config(m, p, &text, private)? {
        m.set_changed(true);
    }
    if let Some(s) = &desired {
        m.set("server_state", server_json(s));
    }

    if !can_runtime {
        m.set_changed(true);
        let action = if m.check_mode() {
            "reloaded"
        } else {
            let (action, pid) = ctx.reload_or_start()?;
            applied::record(&state_file, pid, &text);
            action
        };
        m.set("service", action);
    } else {
        let mine: Vec<RtServer> = running
            .iter()
            .filter(|r| r.name == server_name)
            .cloned()
            .collect();
        let want: Vec<Server> = desired.iter().cloned().collect();
        let steps = plan(&want, &mine);
        if !steps.is_empty() {
            m.set_changed(true);
            m.add_diff(Diff::new(
                format!("runtime: server {}/{server_name}", p.name),
                describe_running(&mine),
                describe_desired(&want),
            ));
            if m.check_mode() {
                ctx.actions = steps
                    .iter()
                    .map(|s| s.describe(&p.name, &info.default_server))
                    .collect();
            } else {
                ctx.execute(&steps, &info)?;
            }
        }
        if let (false, true, Some(w)) = (m.check_mode(), loaded, worker) {
            applied::record(&state_file, w.pid, &text);
        }
    }
    if p.wait && !m.check_mode() {
        if let Some(s) = &desired {
            ctx.wait_for(std::slice::from_ref(s))?;
        }
    }
    m.set("actions", &ctx.actions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(name: &str, admin: Admin, weight: u16) -> Server {
        Server {
            name: name.into(),
            address: "10.231.0.5".into(),
            port: 80,
            weight,
            check: true,
            backup: false,
            admin,
        }
    }

    fn rt(name: &str, flags: u32, weight: u16) -> RtServer {
        RtServer {
            name: name.into(),
            address: "10.231.0.5".into(),
            port: 80,
            op_state: 2,
            admin_flags: flags,
            weight,
        }
    }

    #[test]
    fn matching_runtime_needs_no_step() {
        assert!(plan(&[srv("a", Admin::Ready, 100)], &[rt("a", 0, 100)]).is_empty());
        // A drained server read back from the file after a reload runs at weight 0.
        assert!(plan(&[srv("a", Admin::Drain, 100)], &[rt("a", 0, 0)]).is_empty());
        assert!(plan(&[srv("a", Admin::Drain, 100)], &[rt("a", 8, 100)]).is_empty());
        assert!(plan(&[srv("a", Admin::Maint, 100)], &[rt("a", 5, 100)]).is_empty());
        // Enabled at runtime after a reload from a file that said `disabled`.
        assert!(plan(&[srv("a", Admin::Ready, 100)], &[rt("a", 4, 100)]).is_empty());
    }

    #[test]
    fn plan_adds_removes_and_restores_weight() {
        let steps = plan(
            &[srv("a", Admin::Ready, 100), srv("b", Admin::Ready, 50)],
            &[rt("a", 0, 0), rt("c", 0, 100)],
        );
        assert_eq!(
            steps,
            vec![
                Step::State("a".into(), Admin::Ready),
                Step::Weight("a".into(), 100),
                Step::Add(srv("b", Admin::Ready, 50)),
                Step::Remove("c".into()),
            ]
        );
    }

    #[test]
    fn names_and_backup_changes_need_a_reload() {
        let info = BackendInfo {
            balance: "roundrobin".into(),
            ..BackendInfo::default()
        };
        let a = srv("a", Admin::Ready, 100);
        let mut named = srv("b", Admin::Ready, 100);
        named.address = "web-02.example".into();
        assert!(runtime_can_apply(&[], std::slice::from_ref(&a), &info));
        assert!(!runtime_can_apply(&[], &[named], &info));
        let mut backup = a.clone();
        backup.backup = true;
        assert!(!runtime_can_apply(
            std::slice::from_ref(&a),
            &[backup],
            &info
        ));
        let static_rr = BackendInfo {
            balance: "static-rr".into(),
            ..BackendInfo::default()
        };
        assert!(!runtime_can_apply(&[], &[a], &static_rr));
    }

    #[test]
    fn spec_parses() {
        assert!(ModuleSpec::try_from_json(params::SPEC).is_ok());
    }
}
