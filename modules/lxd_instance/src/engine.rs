//! Bringing one instance to the asked state through the LXD API.

use std::time::{Duration, Instant};

use ansible_module::{service, Diff, Fail, Module};
use anyhow::{anyhow, Result};
use lxd_api::{encode, with_query, Client, Endpoint, Method, TlsOptions};
use serde_json::{json, Value};

use crate::params::{Params, State};
use crate::plan::{self, Desired};
use crate::wait;

/// Image downloads from a remote server can take minutes: creation waits at
/// least this long whatever `timeout` says.
const CREATE_TIMEOUT: Duration = Duration::from_secs(600);

/// The module body: one instance (`name`), or several side by side
/// (`instances`, see [`crate::batch`]).
pub fn run(m: &mut Module) -> Result<()> {
    let p: Params = m.parse()?;
    service::seconds_option("timeout", p.timeout)?;
    if !p.show_secrets {
        m.redact("cloud_init.user_data");
        m.redact("cloud_init.vendor_data");
        for key in p.config.iter().flat_map(|c| c.keys()) {
            if plan::secret_key(key) {
                m.redact(&format!("config.{key}"));
            }
        }
    }
    if p.instances.is_some() {
        return crate::batch::run(m, &p);
    }
    let one = converge_one(&p, m.check_mode());
    m.set_changed(one.changed());
    m.set("actions", &one.actions);
    m.set("log_verbose", &one.log);
    m.set("log_verbosity", m.internal.verbosity);
    for w in &one.warnings {
        m.warn(w.clone());
    }
    if let Some(s) = &one.old_state {
        m.set("old_state", s);
    }
    match one.outcome {
        Ok(out) => {
            for (key, value) in out.results() {
                m.set(key, value);
            }
            m.add_diff(out.diff);
            Ok(())
        }
        Err(err) => match err.downcast::<Fail>() {
            Ok(f) => Err(f.with("actions", &one.actions).into()),
            Err(other) => Err(Fail::new(format!("{other:#}"))
                .with("actions", &one.actions)
                .into()),
        },
    }
}

/// What one instance's run did and found.
pub struct One {
    pub actions: Vec<String>,
    pub log: Vec<String>,
    pub warnings: Vec<String>,
    pub old_state: Option<State>,
    pub outcome: Result<Outcome>,
}

impl One {
    pub fn changed(&self) -> bool {
        !self.actions.is_empty()
    }

    /// Why the run failed, as the module says it; `None` when it did not.
    pub fn failure(&self) -> Option<String> {
        let err = self.outcome.as_ref().err()?;
        Some(match err.downcast_ref::<Fail>() {
            Some(f) => f.msg.clone(),
            None => format!("{err:#}"),
        })
    }
}

/// Connects and brings one instance to what `p` asks.
pub fn converge_one(p: &Params, check: bool) -> One {
    let ready = plan::desired(p)
        .map_err(|e| anyhow::Error::from(Fail::new(format!("{e:#}"))))
        .and_then(|desired| Ok((desired, connect(p)?)));
    let (desired, lxd) = match ready {
        Ok(r) => r,
        Err(err) => {
            return One {
                actions: vec![],
                log: vec![],
                warnings: vec![],
                old_state: None,
                outcome: Err(err),
            }
        }
    };
    let mut e = Engine {
        lxd,
        p,
        check,
        actions: vec![],
        log: vec![],
        warnings: vec![],
        old_state: None,
    };
    let outcome = e.converge(&desired);
    One {
        actions: e.actions,
        log: e.log,
        warnings: e.warnings,
        old_state: e.old_state,
        outcome,
    }
}

/// The member an instance document names; a standalone LXD says `none`.
fn member_of(doc: &Value) -> Option<String> {
    doc.get("location")
        .and_then(Value::as_str)
        .filter(|l| !l.is_empty() && *l != "none")
        .map(str::to_string)
}

/// Connects and checks LXD answers and trusts us; every failure here is a
/// message about the connection, before anything is read or changed.
fn connect(p: &Params) -> Result<Client> {
    let tls = TlsOptions::from_options(
        p.client_cert.as_deref(),
        p.client_key.as_deref(),
        p.server_cert.as_deref(),
        p.server_cert_fingerprint.as_deref(),
    );
    let endpoint = match p.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => Endpoint::parse(u)?,
        None => match lxd_api::detect_socket() {
            Ok(path) => Endpoint::Unix(path),
            Err(detect_err) => {
                let snap = p.snap_url.as_deref().map(Endpoint::parse).transpose()?;
                match snap {
                    Some(Endpoint::Unix(path)) if path.exists() => Endpoint::Unix(path),
                    _ => return Err(detect_err.into()),
                }
            }
        },
    };
    let https = matches!(endpoint, Endpoint::Https(_));
    if !https && (tls.server_cert.is_some() || tls.server_cert_fingerprint.is_some()) {
        return Err(Fail::new(format!(
            "server_cert and server_cert_fingerprint pin an HTTPS server; {endpoint} is a unix socket (set url: https://HOST:8443)"
        ))
        .into());
    }
    let lxd = Client::for_endpoint(endpoint.clone(), &tls)?;
    let server = lxd.server()?;
    // After GET /1.0 the client knows whether LXD or Incus answered.
    let backend = lxd.backend();
    if https && server.get("auth").and_then(Value::as_str) != Some("trusted") {
        if let Some(pw) = p.trust_password.as_deref().filter(|s| !s.is_empty()) {
            lxd.add_trust(pw).map_err(|e| {
                anyhow!("{backend} at {endpoint} does not trust this client and adding it with trust_password failed: {e}")
            })?;
            if !lxd.is_trusted()? {
                return Err(Fail::new(format!(
                    "{backend} at {endpoint} still does not trust this client after trust_password was accepted"
                ))
                .into());
            }
        } else {
            let which = match &tls.client_cert {
                Some(c) => format!("client certificate {}", c.display()),
                None => {
                    "client certificate (none given; looked for ~/.config/lxc/client.crt)".into()
                }
            };
            return Err(Fail::new(format!(
                "{backend} at {endpoint} does not trust this {which}: add it on the server with `{} config trust add`, or give trust_password",
                backend.cli()
            ))
            .into());
        }
    }
    Ok(lxd)
}

pub struct Outcome {
    addresses: Option<Value>,
    ipv4_address: Option<String>,
    cloud_init_status: Option<String>,
    /// The cluster member the instance is on (clustered LXD only).
    location: Option<String>,
    after: Option<Value>,
    pub diff: Diff,
}

impl Outcome {
    /// The result's fields for what the run found (the diff aside).
    pub fn results(&self) -> Vec<(&'static str, Value)> {
        let mut out = vec![];
        if let Some(a) = &self.addresses {
            out.push(("addresses", a.clone()));
        }
        if let Some(ip) = &self.ipv4_address {
            out.push(("ipv4_address", Value::from(ip.as_str())));
        }
        if let Some(s) = &self.cloud_init_status {
            out.push(("cloud_init_status", Value::from(s.as_str())));
        }
        if let Some(l) = &self.location {
            out.push(("location", Value::from(l.as_str())));
        }
        if let Some(view) = &self.after {
            out.push(("instance", view.clone()));
        }
        out
    }
}

/// The instance as a run found it.
struct Found {
    /// LXD's document of it; `None` when there is no such instance.
    doc: Option<Value>,
    state: State,
}

/// What an instance that runs answers.
#[derive(Default)]
struct Running {
    addresses: Option<Value>,
    ipv4_address: Option<String>,
    cloud_init_status: Option<String>,
}

/// A change of an instance's run state (`PUT .../state`), named as LXD and
/// the result's `actions` name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start,
    Stop,
    Restart,
    Freeze,
    Unfreeze,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Restart => "restart",
            Action::Freeze => "freeze",
            Action::Unfreeze => "unfreeze",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

struct Engine<'a> {
    lxd: Client,
    p: &'a Params,
    check: bool,
    actions: Vec<String>,
    log: Vec<String>,
    warnings: Vec<String>,
    old_state: Option<State>,
}

/// The module's name for an LXD status.
fn module_state(status: &str) -> State {
    match status {
        "Running" => State::Started,
        "Frozen" => State::Frozen,
        _ => State::Stopped,
    }
}

impl Engine<'_> {
    fn project(&self) -> Option<&str> {
        self.p.project.as_deref().filter(|s| !s.is_empty())
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::try_from(self.p.timeout).unwrap_or(30))
    }

    fn with_project(&self, path: &str) -> String {
        match self.project() {
            Some(p) => with_query(path, &[("project", p)]),
            None => path.to_string(),
        }
    }

    /// Adds how long a logged step took to its `log_verbose` line.
    fn took(&mut self, line: usize, started: Instant) {
        if let Some(l) = self.log.get_mut(line) {
            l.push_str(&format!(" ({:.2} s)", started.elapsed().as_secs_f64()));
        }
    }

    fn instance_path(&self, suffix: &str) -> String {
        self.with_project(&format!("/1.0/instances/{}{suffix}", encode(&self.p.name)))
    }

    /// Reads the instance, brings it to the asked state and, once it runs,
    /// reads (or waits for) its addresses and cloud-init.
    fn converge(&mut self, d: &Desired) -> Result<Outcome> {
        let found = self.observe()?;
        let before = found
            .doc
            .as_ref()
            .map(|c| plan::view(c, found.state, self.p.show_secrets));
        let after_doc = self.reach(d, &found)?;
        let after = after_doc
            .as_ref()
            .map(|a| plan::view(a, self.shown_state(), self.p.show_secrets));
        let diff = Diff::new(
            format!("lxd instance {}", self.p.name),
            before.as_ref().map(plan::yaml).unwrap_or_default(),
            after.as_ref().map(plan::yaml).unwrap_or_default(),
        );
        let running_now = matches!(self.p.state, State::Started | State::Restarted);
        let simulated = self.check && !self.actions.is_empty();
        let running = if running_now && !simulated {
            self.running()?
        } else {
            Running::default()
        };
        let location = match (&after_doc, &found.doc) {
            (None, _) => None,
            (Some(_), Some(cur)) => member_of(cur),
            // LXD picks the member (or honours target) only when it creates
            // the instance: its document before that cannot say where.
            (Some(_), None) if !self.check => self
                .lxd
                .instance(&self.p.name, self.project())?
                .as_ref()
                .and_then(member_of),
            (Some(_), None) => None,
        };
        if let (Some(cur), Some(want)) = (&found.doc, self.p.target.as_deref()) {
            if let Some(at) = member_of(cur).filter(|at| !want.is_empty() && at != want) {
                self.warnings.push(format!(
                    "instance {} is on cluster member {at}, not {want}; target only applies when an instance is created",
                    self.p.name
                ));
            }
        }
        Ok(Outcome {
            addresses: running.addresses,
            ipv4_address: running.ipv4_address,
            cloud_init_status: running.cloud_init_status,
            location,
            after,
            diff,
        })
    }

    /// The instance as it is (its state logged and kept for `old_state`);
    /// warns when it is not of the asked type.
    fn observe(&mut self) -> Result<Found> {
        let name = self.p.name.clone();
        let doc = self.lxd.instance(&name, self.project())?;
        let state = doc.as_ref().map_or(State::Absent, |c| {
            module_state(c.get("status").and_then(Value::as_str).unwrap_or(""))
        });
        self.log.push(format!("instance {name}: {state}"));
        self.old_state = Some(state);
        if let Some(cur) = &doc {
            let kind = cur
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("container");
            if kind != self.p.kind.as_str() {
                self.warnings.push(format!(
                    "instance {name} is a {kind}, not a {}; type only applies when an instance is created",
                    self.p.kind
                ));
            }
        }
        Ok(Found { doc, state })
    }

    /// Creates, updates, deletes and starts or stops the instance as asked;
    /// returns its document afterwards (`None` when there is none).
    fn reach(&mut self, d: &Desired, found: &Found) -> Result<Option<Value>> {
        let want = self.p.state;
        match (want, &found.doc) {
            (State::Absent, None) => Ok(None),
            (State::Absent, Some(_)) => {
                self.remove(found.state)?;
                Ok(None)
            }
            (_, None) => {
                let created = self.create(d, want != State::Stopped)?;
                if want == State::Frozen {
                    self.state_action(Action::Freeze, false)?;
                }
                Ok(Some(created))
            }
            (_, Some(cur)) => {
                let mut after = Some(cur.clone());
                if let Some(u) = plan::update(cur, d) {
                    self.apply(cur, &u)?;
                    after = Some(u.body.clone());
                }
                for (action, force) in self.transition(want, found.state) {
                    self.state_action(action, force)?;
                }
                Ok(after)
            }
        }
    }

    /// Stops (unfreezing first) and deletes an instance. A clean shutdown
    /// comes first unless force_stop; the instance is going away, so one that
    /// does not shut down is stopped hard.
    fn remove(&mut self, old: State) -> Result<()> {
        if old == State::Frozen {
            self.state_action(Action::Unfreeze, false)?;
        }
        if old != State::Stopped {
            let force = self.p.force_stop;
            if let Err(e) = self.state_action(Action::Stop, force) {
                if force {
                    return Err(e);
                }
                self.log
                    .push(format!("clean stop failed ({e:#}); stopping forcibly"));
                self.state_action(Action::Stop, true)?;
            }
        }
        self.delete()
    }

    /// The state actions (with their `force`) from the state an existing
    /// instance is in to the asked one.
    fn transition(&self, want: State, old: State) -> Vec<(Action, bool)> {
        use Action::{Freeze, Restart, Start, Stop, Unfreeze};
        let force = self.p.force_stop;
        match (want, old) {
            (State::Started, State::Frozen) => vec![(Unfreeze, false)],
            (State::Started | State::Restarted, State::Stopped) => vec![(Start, false)],
            (State::Stopped, State::Frozen) => vec![(Unfreeze, false), (Stop, force)],
            (State::Stopped, State::Started) => vec![(Stop, force)],
            (State::Restarted, State::Frozen) => vec![(Unfreeze, false), (Restart, force)],
            (State::Restarted, State::Started) => vec![(Restart, force)],
            (State::Frozen, State::Stopped) => vec![(Start, false), (Freeze, false)],
            (State::Frozen, State::Started) => vec![(Freeze, false)],
            _ => vec![],
        }
    }

    /// The state the result shows: `restarted` only when a restart happened.
    fn shown_state(&self) -> State {
        match self.p.state {
            State::Restarted if self.actions.is_empty() => State::Started,
            state => state,
        }
    }

    /// The addresses of an instance that runs (after waiting for IPv4 when
    /// asked), and cloud-init's status when asked to wait for it.
    fn running(&mut self) -> Result<Running> {
        let name = self.p.name.clone();
        let st = if self.p.wait_for_ipv4_addresses {
            self.log.push("wait for IPv4".into());
            let (line, t0) = (self.log.len() - 1, Instant::now());
            let waited = wait::ipv4(
                &self.lxd,
                &name,
                self.project(),
                self.timeout(),
                self.p.wait_for_ipv4_interfaces.as_deref(),
            );
            self.took(line, t0);
            waited?
        } else {
            self.lxd.instance_state(&name, self.project())?
        };
        let cloud_init_status = if self.p.wait_for_cloud_init {
            Some(self.wait_for_cloud_init()?)
        } else {
            None
        };
        Ok(Running {
            addresses: Some(Value::Object(wait::addresses(&st))),
            ipv4_address: wait::primary_ipv4(&st),
            cloud_init_status,
        })
    }

    /// Waits for cloud-init's first boot to end; returns its status.
    fn wait_for_cloud_init(&mut self) -> Result<String> {
        let name = self.p.name.clone();
        self.log.push("wait for cloud-init".into());
        let (line, t0) = (self.log.len() - 1, Instant::now());
        let waited = wait::cloud_init(&self.lxd, &name, self.project(), self.timeout());
        self.took(line, t0);
        let found = waited?;
        if let Some(l) = self.log.get_mut(line) {
            l.push_str(&format!(": {} ({})", found.status, found.source));
        }
        if let Some(w) = found.warning {
            self.warnings.push(w);
        }
        Ok(found.status)
    }

    /// Checks the source and profiles exist before creating, so a typo fails
    /// with a message about the typo and nothing is made.
    fn precheck(&self, source: &Value, d: &Desired) -> Result<()> {
        let local = source.get("server").is_none()
            && source.get("type").and_then(Value::as_str) == Some("image");
        if local {
            if let Some(alias) = source.get("alias").and_then(Value::as_str) {
                // Aliases may hold slashes (vendor/release): encode each part.
                let escaped: Vec<String> = alias.split('/').map(encode).collect();
                let path = self.with_project(&format!("/1.0/images/aliases/{}", escaped.join("/")));
                match self.lxd.get(&path) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        let known = self.names("/1.0/images/aliases", "/1.0/images/aliases/");
                        return Err(Fail::new(format!(
                            "cannot create instance {}: image alias {alias:?} not found on this {} ({}); set source.server for a remote image",
                            self.p.name,
                            self.lxd.backend(),
                            known_list("known aliases", &known)
                        ))
                        .into());
                    }
                    Err(e) => return Err(e.into()),
                }
            } else if let Some(fp) = source.get("fingerprint").and_then(Value::as_str) {
                let path = self.with_project(&format!("/1.0/images/{}", encode(fp)));
                match self.lxd.get(&path) {
                    Ok(_) => {}
                    Err(e) if e.is_not_found() => {
                        return Err(Fail::new(format!(
                            "cannot create instance {}: no image with fingerprint {fp:?} on this {}; set source.server for a remote image",
                            self.p.name,
                            self.lxd.backend()
                        ))
                        .into())
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        }
        self.check_profiles(d)
    }

    fn check_profiles(&self, d: &Desired) -> Result<()> {
        for profile in d.profiles.iter().flatten() {
            let path = self.with_project(&format!("/1.0/profiles/{}", encode(profile)));
            match self.lxd.get(&path) {
                Ok(_) => {}
                Err(e) if e.is_not_found() => {
                    let known = self.names("/1.0/profiles", "/1.0/profiles/");
                    return Err(Fail::new(format!(
                        "profile {profile:?} does not exist on this {} ({})",
                        self.lxd.backend(),
                        known_list("existing profiles", &known)
                    ))
                    .into());
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Names from a listing of URLs (best effort, for messages).
    fn names(&self, list: &str, prefix: &str) -> Vec<String> {
        self.lxd
            .get(&self.with_project(list))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(Value::as_str)
            .map(|u| {
                let u = u.split('?').next().unwrap_or(u);
                // LXD escapes names in URLs (some versions twice).
                let mut name = u.strip_prefix(prefix).unwrap_or(u).to_string();
                for _ in 0..2 {
                    name = percent_decode(&name);
                }
                name
            })
            .collect()
    }

    fn create(&mut self, d: &Desired, start: bool) -> Result<Value> {
        let name = self.p.name.clone();
        let Some(source) = plan::source(self.p.source.as_ref())? else {
            return Err(Fail::new(format!(
                "instance {name} does not exist and source is not set: give source (for example source: {{alias: debian/12, server: ..., protocol: simplestreams}}) to create it"
            ))
            .into());
        };
        self.precheck(&source, d)?;
        let body = plan::create_body(self.p, d, &source);
        let mut path = "/1.0/instances".to_string();
        if let Some(t) = self.p.target.as_deref().filter(|t| !t.is_empty()) {
            path = with_query(&path, &[("target", t)]);
        }
        let path = self.with_project(&path);
        self.log.push(format!("create: POST {path}"));
        if self.check {
            self.actions.push("create".into());
            if start {
                self.actions.push("start".into());
            }
            return Ok(body);
        }
        let (line, t0) = (self.log.len() - 1, Instant::now());
        let created = self.lxd.call(
            Method::POST,
            &path,
            Some(&body),
            CREATE_TIMEOUT.max(self.timeout()),
        );
        self.took(line, t0);
        if let Err(e) = created {
            let cleaned = self.remove_leftover();
            return Err(Fail::new(format!("cannot create instance {name}: {e}{cleaned}")).into());
        }
        self.actions.push("create".into());
        if start {
            if let Err(e) = self.state_action(Action::Start, false) {
                let cleaned = self.remove_leftover();
                self.actions.clear();
                return Err(Fail::new(format!(
                    "instance {name} was created but did not start: {e:#}{cleaned}"
                ))
                .into());
            }
        }
        // What LXD made (profiles filled in, image keys) is what the diff shows.
        Ok(self
            .lxd
            .instance(&name, self.project())
            .ok()
            .flatten()
            .unwrap_or(body))
    }

    /// Deletes what a failed creation left; says what happened, for the message.
    fn remove_leftover(&mut self) -> String {
        let name = self.p.name.clone();
        match self.lxd.instance(&name, self.project()) {
            Ok(None) => String::new(),
            Ok(Some(inst)) => {
                if inst.get("status").and_then(Value::as_str) != Some("Stopped") {
                    let body = json!({"action": "stop", "force": true, "timeout": 30});
                    let _ = self.lxd.call(
                        Method::PUT,
                        &self.instance_path("/state"),
                        Some(&body),
                        Duration::from_secs(60),
                    );
                }
                match self.lxd.call(
                    Method::DELETE,
                    &self.instance_path(""),
                    None,
                    Duration::from_secs(120),
                ) {
                    Ok(_) => "; the half-created instance was deleted again".into(),
                    Err(e) => format!("; deleting the half-created instance failed too: {e}"),
                }
            }
            Err(e) => format!("; could not check for a half-created instance: {e}"),
        }
    }

    fn apply(&mut self, cur: &Value, u: &plan::Update) -> Result<()> {
        let name = self.p.name.clone();
        for c in &u.changes {
            self.log.push(c.clone());
        }
        if u.changes
            .iter()
            .any(|c| c.starts_with("config cloud-init."))
        {
            self.warnings.push(format!(
                "cloud-init reads its cloud-init.* keys on an instance's first boot only: {name} keeps what it did then (recreate it to run the new data)"
            ));
        }
        if let Some(profiles) = u.body.get("profiles").and_then(Value::as_array) {
            if Some(&Value::Array(profiles.clone())) != cur.get("profiles") {
                let d = Desired {
                    profiles: Some(
                        profiles
                            .iter()
                            .filter_map(Value::as_str)
                            .map(str::to_string)
                            .collect(),
                    ),
                    ..Desired::default()
                };
                self.check_profiles(&d)?;
            }
        }
        let path = self.instance_path("");
        self.log.push(format!("update: PUT {path}"));
        let (line, t0) = (self.log.len() - 1, Instant::now());
        if !self.check {
            self.lxd
                .call(
                    Method::PUT,
                    &path,
                    Some(&u.body),
                    self.timeout() + Duration::from_secs(30),
                )
                .map_err(|e| {
                    Fail::new(format!(
                        "cannot change instance {name} ({}): {e}",
                        u.changes.join(", ")
                    ))
                })?;
        }
        if !self.check {
            self.took(line, t0);
        }
        self.actions.push("apply_instance_configs".into());
        Ok(())
    }

    fn state_action(&mut self, action: Action, force: bool) -> Result<()> {
        let name = self.p.name.clone();
        let path = self.instance_path("/state");
        self.log.push(format!("{action}: PUT {path}"));
        let (line, t0) = (self.log.len() - 1, Instant::now());
        if !self.check {
            let clean_shutdown = matches!(action, Action::Stop | Action::Restart) && !force;
            let result = if clean_shutdown {
                self.clean_shutdown(action, &path)
            } else {
                let mut body = json!({"action": action.as_str(), "timeout": self.p.timeout});
                if force {
                    body["force"] = json!(true);
                }
                let wait = self.timeout() + Duration::from_secs(30);
                self.lxd
                    .call(Method::PUT, &path, Some(&body), wait)
                    .map(|_| ())
            };
            self.took(line, t0);
            if let Err(e) = result {
                let hint = if clean_shutdown {
                    format!(
                        " (no clean shutdown within {} s; force_stop: true stops it without waiting)",
                        self.p.timeout
                    )
                } else {
                    String::new()
                };
                return Err(
                    Fail::new(format!("cannot {action} instance {name}: {e}{hint}")).into(),
                );
            }
        }
        self.actions.push(action.as_str().to_string());
        Ok(())
    }

    /// A clean stop or restart within `timeout`. An instance still booting
    /// misses the shutdown signal (systemd installs its handler late), so the
    /// request is repeated with growing waits until the time is used up.
    fn clean_shutdown(&mut self, action: Action, path: &str) -> lxd_api::Result<()> {
        let deadline = Instant::now() + self.timeout();
        let mut attempt = Duration::from_secs(5);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let this = attempt.min(left).max(Duration::from_secs(1));
            let body = json!({"action": action.as_str(), "timeout": this.as_secs()});
            let wait = this + Duration::from_secs(30);
            match self.lxd.call(Method::PUT, path, Some(&body), wait) {
                Ok(_) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    // Only a shutdown that did not happen is worth repeating.
                    let status = self
                        .lxd
                        .instance_state(&self.p.name, self.project())
                        .ok()
                        .and_then(|s| s.get("status").and_then(Value::as_str).map(str::to_string));
                    match status.as_deref() {
                        Some("Running") => {}
                        Some("Stopped") if action == Action::Stop => return Ok(()),
                        _ => return Err(e),
                    }
                    self.log.push(format!(
                        "{action}: no clean shutdown within {} s, asking again",
                        this.as_secs()
                    ));
                    attempt *= 2;
                }
            }
        }
    }

    fn delete(&mut self) -> Result<()> {
        let name = self.p.name.clone();
        let path = self.instance_path("");
        self.log.push(format!("delete: DELETE {path}"));
        let (line, t0) = (self.log.len() - 1, Instant::now());
        if !self.check {
            let deleted = self.lxd.call(
                Method::DELETE,
                &path,
                None,
                self.timeout() + Duration::from_secs(60),
            );
            self.took(line, t0);
            match deleted {
                Ok(_) => {}
                // An ephemeral instance deletes itself when stopped.
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    return Err(Fail::new(format!("cannot delete instance {name}: {e}")).into())
                }
            }
        }
        self.actions.push("delete".into());
        Ok(())
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn known_list(what: &str, names: &[String]) -> String {
    if names.is_empty() {
        return format!("{what}: none");
    }
    let shown: Vec<&str> = names.iter().take(10).map(String::as_str).collect();
    let more = if names.len() > 10 {
        format!(", and {} more", names.len() - 10)
    } else {
        String::new()
    };
    format!("{what}: {}{more}", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_urls_are_decoded() {
        assert_eq!(percent_decode("vrrp-lxd%2Fbookworm"), "vrrp-lxd/bookworm");
        assert_eq!(percent_decode(&percent_decode("a%252Fb")), "a/b");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
