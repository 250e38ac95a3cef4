//! Changing the running HAProxy: planning runtime API steps from the wanted
//! servers, sending them, waiting for servers to reach their state, reloading.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use ansible_module::{service, Diff, Fail, Module};
use serde_json::{json, Value};

use crate::applied;
use crate::config::{Admin, BackendInfo, Server};
use crate::files::{restore_config, Old, Undo};
use crate::params::Params;
use crate::runtime::{RtServer, Socket, OP_RUNNING};

pub const UNIT: &str = "haproxy";
const POLL: Duration = Duration::from_millis(200);
const RELOAD_TIMEOUT: Duration = Duration::from_secs(20);
/// systemd answers a reload or start of HAProxy in well under a second; a
/// job stuck behind others fails the task instead of hanging it.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct Ctx<'a> {
    pub(crate) p: &'a Params,
    /// The backend acted on (a server-level run over several backends
    /// changes it between them).
    pub(crate) backend: String,
    pub(crate) sock: Socket,
    pub(crate) timeout: Duration,
    /// Runtime API commands sent (or, in check mode, that would be sent).
    pub(crate) actions: Vec<String>,
}

/// One change to the running HAProxy.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Add(Server),
    Addr(Server),
    Weight(String, u16),
    State(String, Admin),
    Remove(String),
    /// `enable health` (true) or `disable health` (false).
    Health(String, bool),
    /// `enable agent` (true) or `disable agent` (false).
    Agent(String, bool),
    /// `shutdown sessions server`.
    Shutdown(String),
}

fn toggle(on: bool) -> &'static str {
    if on {
        "enable"
    } else {
        "disable"
    }
}

impl Step {
    /// The runtime command(s) the step stands for, as check mode reports them.
    pub(crate) fn describe(&self, backend: &str, defaults: &str) -> String {
        match self {
            Step::Add(s) => format!("add server {backend}/{} {}", s.name, s.add_args(defaults)),
            Step::Addr(s) => format!(
                "set server {backend}/{} addr {} port {}",
                s.name, s.address, s.port
            ),
            Step::Weight(n, w) => format!("set server {backend}/{n} weight {w}"),
            Step::State(n, a) => format!("set server {backend}/{n} state {}", a.as_str()),
            Step::Remove(n) => format!("del server {backend}/{n}"),
            Step::Health(n, on) => format!("{} health {backend}/{n}", toggle(*on)),
            Step::Agent(n, on) => format!("{} agent {backend}/{n}", toggle(*on)),
            Step::Shutdown(n) => format!("shutdown sessions server {backend}/{n}"),
        }
    }

    pub(crate) fn server(&self) -> &str {
        match self {
            Step::Add(s) | Step::Addr(s) => &s.name,
            Step::Weight(n, _)
            | Step::State(n, _)
            | Step::Remove(n)
            | Step::Health(n, _)
            | Step::Agent(n, _)
            | Step::Shutdown(n) => n,
        }
    }
}

/// The admin state of running server `r` as compared with `d`: a server
/// meant to be ready at weight 0 (`weight: 0` or `"0%"`) is ready, not
/// drained, when HAProxy's flags say so.
pub(crate) fn running_admin(r: &RtServer, d: &Server) -> Admin {
    if d.admin == Admin::Ready && d.effective_weight() == 0 {
        r.admin_by_flags()
    } else {
        r.admin()
    }
}

/// What it takes to bring the running servers to `desired`; servers running
/// but not desired are removed.
pub(crate) fn plan(desired: &[Server], running: &[RtServer]) -> Vec<Step> {
    let mut steps = vec![];
    for d in desired {
        let Some(r) = running.iter().find(|r| r.name == d.name) else {
            steps.push(Step::Add(d.clone()));
            continue;
        };
        if d.has_ip() && (r.address != d.address || r.port != d.port) {
            steps.push(Step::Addr(d.clone()));
        }
        if running_admin(r, d) != d.admin {
            steps.push(Step::State(d.name.clone(), d.admin));
        }
        if d.admin == Admin::Ready && r.weight != d.effective_weight() {
            steps.push(Step::Weight(d.name.clone(), d.effective_weight()));
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

pub(crate) fn server_json(s: &Server) -> Value {
    let mut v = json!({
        "name": s.name, "address": s.address, "port": s.port, "weight": s.weight,
        "check": s.check, "backup": s.backup,
        "state": match s.admin { Admin::Ready => "enabled", Admin::Drain => "drain", Admin::Maint => "maint" },
    });
    if let Some(p) = s.percent {
        v["weight_percent"] = json!(p);
    }
    v
}

impl Ctx<'_> {
    pub(crate) fn backend(&self) -> &str {
        &self.backend
    }

    pub(crate) fn cmd(&mut self, command: String, ok: &[&str]) -> Result<(), Fail> {
        self.sock
            .command(&command, ok)
            .map_err(|e| Fail::new(e.to_string()).with("actions", &self.actions))?;
        self.actions.push(command);
        Ok(())
    }

    /// Brings `running` to `desired` through the runtime API and reports it
    /// as a change to `what` with a diff; check mode only lists the commands
    /// that would be sent. Returns the steps taken.
    pub(crate) fn converge_runtime(
        &mut self,
        m: &mut Module,
        what: String,
        desired: &[Server],
        running: &[RtServer],
        info: &BackendInfo,
    ) -> Result<Vec<Step>, Fail> {
        let steps = plan(desired, running);
        if steps.is_empty() {
            return Ok(steps);
        }
        m.set_changed(true);
        m.add_diff(Diff::new(
            what,
            describe_running(running),
            describe_desired(desired),
        ));
        if m.check_mode() {
            let described: Vec<String> = steps
                .iter()
                .map(|s| s.describe(self.backend(), &info.default_server))
                .collect();
            self.actions.extend(described);
        } else {
            self.execute(&steps, info)?;
        }
        Ok(steps)
    }

    /// Sends the commands for `steps`.
    pub(crate) fn execute(&mut self, steps: &[Step], info: &BackendInfo) -> Result<(), Fail> {
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
                Step::Health(..) | Step::Agent(..) | Step::Shutdown(..) => {
                    self.cmd(step.describe(&b, &info.default_server), &[])?;
                }
            }
        }
        Ok(())
    }

    /// Maintenance, wait for its sessions to end, delete.
    pub(crate) fn remove(&mut self, server: &str) -> Result<(), Fail> {
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

    pub(crate) fn sessions(&self) -> Result<BTreeMap<String, u64>, Fail> {
        self.sock
            .sessions(self.backend())
            .map_err(|e| Fail::new(e.to_string()))
    }

    pub(crate) fn running(&self) -> Result<Vec<RtServer>, Fail> {
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
    pub(crate) fn wait_for(&self, servers: &[Server]) -> Result<(), Fail> {
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
                let admin = running_admin(r, s);
                match s.admin {
                    Admin::Ready if admin != Admin::Ready || r.op_state != OP_RUNNING => {
                        pending.push(format!(
                            "{} to be up (it is {}, {}; is its health check passing?)",
                            s.name,
                            admin.as_str(),
                            r.op_name()
                        ));
                    }
                    Admin::Drain | Admin::Maint if admin != s.admin || n > 0 => {
                        pending.push(format!(
                            "{} to be {} with no sessions (it is {}, {n} session(s))",
                            s.name,
                            s.admin.as_str(),
                            admin.as_str()
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
    pub(crate) fn reload_or_start(&self) -> Result<(&'static str, u32), Fail> {
        if !service::is_active(UNIT) {
            service::run_bounded("systemctl", &["start", UNIT], SYSTEMCTL_TIMEOUT)?;
            return Ok(("started", self.await_worker(None, "started")?));
        }
        let before = self.sock.pid().ok().flatten();
        service::run_bounded("systemctl", &["reload", UNIT], SYSTEMCTL_TIMEOUT)?;
        Ok(("reloaded", self.await_worker(before, "reloaded")?))
    }

    /// Reloads (or starts) HAProxy for `text` and records that its new
    /// worker runs it; returns what was done. `undo` is the file as it was
    /// before this run wrote it (`None`: this run did not write it): when
    /// the new configuration does not take effect, the old bytes are put
    /// back exactly, HAProxy is reloaded with them, and the run fails
    /// saying so.
    pub(crate) fn reload_or_restore(
        &self,
        state_file: &Path,
        text: &str,
        undo: Option<Option<&Old>>,
        also: &[Undo],
    ) -> Result<&'static str, Fail> {
        let failed = match self.reload_or_start() {
            Ok((action, pid)) => {
                applied::record(state_file, pid, text);
                return Ok(action);
            }
            Err(e) => e,
        };
        if undo.is_none() && also.is_empty() {
            return Err(failed);
        }
        let path = &self.p.config_path;
        let fail = |what: String| Fail {
            msg: format!("{}; {what}", failed.msg),
            extra: failed.extra.clone(),
        };
        let mut back: Vec<&str> = vec![];
        for u in also {
            if let Err(e) = u.restore() {
                return Err(fail(format!(
                    "putting the old {} back failed too, it holds the new one: {}",
                    u.path, e.msg
                )));
            }
            back.push(&u.path);
        }
        // The text HAProxy is reloaded with: the old file, or this one when
        // this run did not write it.
        let old_text = match undo {
            None => text,
            Some(old) => {
                if let Err(e) = restore_config(self.p, old) {
                    return Err(fail(format!(
                        "putting the old config back failed too, {path} holds the new one: {}",
                        e.msg
                    )));
                }
                let Some(old) = old else {
                    return Err(fail(format!(
                        "the old config was restored: there was no {path} before this run, so it was removed"
                    )));
                };
                back.insert(0, path);
                &old.text
            }
        };
        let then = if !service::is_active(UNIT) {
            "HAProxy is not running and was left stopped".to_string()
        } else {
            match self.reload_or_start() {
                Ok((_, pid)) => {
                    applied::record(state_file, pid, old_text);
                    "HAProxy was reloaded with it".to_string()
                }
                Err(e) => format!("reloading HAProxy with it failed too: {}", e.msg),
            }
        };
        let is = if back.len() == 1 { "is" } else { "are" };
        Err(fail(format!(
            "the old config was restored: {} {is} back byte for byte and {then}",
            back.join(" and ")
        )))
    }

    pub(crate) fn await_worker(&self, old_pid: Option<u32>, what: &str) -> Result<u32, Fail> {
        let start = Instant::now();
        loop {
            let pid = self.sock.pid().ok().flatten();
            if let Some(pid) = pid.filter(|p| Some(*p) != old_pid) {
                return Ok(pid);
            }
            if start.elapsed() >= RELOAD_TIMEOUT {
                let journal = service::run_bounded(
                    "journalctl",
                    &["-u", UNIT, "-n", "15", "--no-pager", "-o", "cat"],
                    Duration::from_secs(10),
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

/// Whether the running HAProxy can go from `old` to `new` servers through the
/// runtime API alone.
pub(crate) fn runtime_can_apply(old: &[Server], new: &[Server], info: &BackendInfo) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn srv(name: &str, admin: Admin, weight: u16) -> Server {
        Server {
            name: name.into(),
            address: "10.231.0.5".into(),
            port: 80,
            weight,
            percent: None,
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
            check_state: 6,
            agent_state: 0,
        }
    }

    /// A weight given as a percentage runs at its share of the configured
    /// weight; a server meant to be ready at weight 0 is not taken for a
    /// drained one (which would set it ready on every run).
    #[test]
    fn percent_weights_and_weight_zero_converge() {
        let half = Server {
            percent: Some(50),
            ..srv("a", Admin::Ready, 30)
        };
        assert_eq!(
            plan(std::slice::from_ref(&half), &[rt("a", 0, 30)]),
            vec![Step::Weight("a".into(), 15)]
        );
        assert!(plan(std::slice::from_ref(&half), &[rt("a", 0, 15)]).is_empty());
        let zero = Server {
            percent: Some(0),
            ..srv("a", Admin::Ready, 30)
        };
        assert_eq!(
            plan(std::slice::from_ref(&zero), &[rt("a", 0, 30)]),
            vec![Step::Weight("a".into(), 0)]
        );
        assert!(plan(std::slice::from_ref(&zero), &[rt("a", 0, 0)]).is_empty());
        assert!(plan(&[srv("a", Admin::Ready, 0)], &[rt("a", 0, 0)]).is_empty());
        // Drained by the flag: set ready, then weight 0 stays.
        assert_eq!(
            plan(&[srv("a", Admin::Ready, 0)], &[rt("a", 8, 0)]),
            vec![Step::State("a".into(), Admin::Ready)]
        );
        // The new server's `add server` runs at the share too.
        assert!(half.add_args("").starts_with("10.231.0.5:80 weight 15 "));
        assert_eq!(server_json(&half)["weight_percent"], serde_json::json!(50));
        assert!(server_json(&srv("a", Admin::Ready, 1))
            .get("weight_percent")
            .is_none());
    }

    #[test]
    fn community_general_steps_are_one_command_each() {
        for (step, want) in [
            (Step::Health("a".into(), false), "disable health web/a"),
            (Step::Health("a".into(), true), "enable health web/a"),
            (Step::Agent("a".into(), false), "disable agent web/a"),
            (Step::Agent("a".into(), true), "enable agent web/a"),
            (Step::Shutdown("a".into()), "shutdown sessions server web/a"),
        ] {
            assert_eq!(step.describe("web", ""), want);
            assert_eq!(step.server(), "a");
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
}
