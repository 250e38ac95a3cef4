//! Backend level: the whole file from the options, then a reload, or the
//! runtime API when only servers changed.

use std::path::Path;

use ansible_module::{service, units, Fail, Module};

use crate::config::{
    self, Admin, BackendCfg, BackendInfo, FrontendCfg, FrontendTls, Layout, Server, StatsCfg,
    TlsGlobal,
};
use crate::files::{
    check_live, hide_kept_secrets, read_config, restore_config, write_config, Old, Undo,
};
use crate::ops::{runtime_can_apply, server_json, Ctx, UNIT};
use crate::params::{Balance, HealthCheck, Params, Retry, State, Stickiness};
use crate::runtime::{Info, RtServer};
use crate::secret::Kept;
use crate::tls::Cert;
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
    let one_server: Vec<&str> = [
        ("drain", p.drain),
        ("shutdown_sessions", p.shutdown_sessions),
        ("health", p.health),
        ("agent", p.agent),
        ("fail_on_not_found", p.fail_on_not_found),
    ]
    .into_iter()
    .filter_map(|(o, set)| set.then_some(o))
    .collect();
    if !one_server.is_empty() {
        return Err(Fail::new(format!(
            "{} act on one server: use them with server (or host)",
            one_server.join(", ")
        )));
    }
    if !matches!(p.state, State::Present | State::Absent) {
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
    let present = p.state == State::Present;
    let hc = &p.health_check;
    let expect_status = checks::expect_status(hc.expect_status)?;
    let balance = if p.stickiness == Stickiness::Source {
        Balance::Source
    } else {
        p.balance
    }
    .as_str()
    .to_string();
    let servers = if present {
        merge_servers(p, old)?
    } else {
        vec![]
    };
    let stats = stats_cfg(p, stats_password)?;
    let cookie = cookie_cfg(p, present, cookie_key)?;
    let default_server = default_server_line(&p.health_check);
    let retry = retry_lines(&p.retry);
    let tls = p.frontend.tls.as_ref().filter(|_| present);
    let layout = Layout {
        admin_socket: p.admin_socket.clone(),
        tls: tls.map(|t| TlsGlobal {
            ciphers: t.ciphers.clone(),
            ciphersuites: t.ciphersuites.clone(),
            min_version: t.min_version.to_string(),
        }),
        extra_global: p.extra.global.clone(),
        extra_defaults: p.extra.defaults.clone(),
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
            backend: p.backend().to_string(),
            tls: tls.map(|t| FrontendTls {
                bind: t.bind.clone(),
                certificate: t.certificate.clone(),
                redirect_http: t.redirect_http,
                hsts: u32::try_from(t.hsts).unwrap_or_default(),
            }),
            extra: p.extra.frontend.clone(),
        }),
        backend: present.then(|| BackendCfg {
            name: p.backend().to_string(),
            balance: balance.clone(),
            retry,
            check_method: hc.method.clone(),
            check_path: hc.path.clone(),
            expect_status,
            default_server: default_server.clone(),
            cookie: cookie.clone(),
            extra: p.extra.backend.clone(),
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

/// The stats listener, with its password (needed with `stats.enabled`).
fn stats_cfg(p: &Params, password: Option<&str>) -> Result<Option<StatsCfg>, Fail> {
    match (p.stats.enabled, password) {
        (false, _) => Ok(None),
        (true, Some(password)) => {
            secret::check("the stats password", password)?;
            Ok(Some(StatsCfg {
                bind: p.stats.bind.clone(),
                uri: p.stats.uri.clone(),
                user: p.stats.user.clone(),
                password: password.to_string(),
            }))
        }
        (true, None) => Err(Fail::new("internal error: no stats password")),
    }
}

/// The stickiness cookie's name and key (needed with `stickiness=cookie`).
fn cookie_cfg(
    p: &Params,
    present: bool,
    key: Option<&str>,
) -> Result<Option<(String, String)>, Fail> {
    match (p.stickiness == Stickiness::Cookie && present, key) {
        (false, _) => Ok(None),
        (true, Some(key)) => {
            secret::check("cookie.key", key)?;
            Ok(Some((p.cookie.name.clone(), key.to_string())))
        }
        (true, None) => Err(Fail::new("internal error: no cookie key")),
    }
}

/// `default-server`: the health check's timing, and what a failing server's
/// live traffic does to it (`observe`).
fn default_server_line(hc: &HealthCheck) -> String {
    let mut line = format!(
        "inter {} fastinter {} rise {} fall {}",
        hc.interval, hc.fast_interval, hc.rise, hc.fall
    );
    if hc.observe != "none" {
        line.push_str(&format!(
            " observe {} error-limit {} on-error {}",
            hc.observe, hc.error_limit, hc.on_error
        ));
    }
    line
}

/// The backend's retry lines.
fn retry_lines(r: &Retry) -> Vec<String> {
    let conditions = match r.conditions.join(" ") {
        c if c.is_empty() => "none".to_string(),
        c => c,
    };
    // A request a server may have acted on is sent again only when its
    // method is one the client may repeat itself: a POST that a server
    // dropped half-way is answered with an error, never run twice.
    let replay = match r.replay_methods.join(" ") {
        m if m.is_empty() => String::new(),
        m => format!(" unless {{ method {m} }}"),
    };
    vec![
        format!("option redispatch {}", r.redispatch),
        format!("retries {}", r.retries),
        format!("retry-on {conditions}"),
        format!("http-request disable-l7-retry{replay}"),
    ]
}

/// The backend's servers from `servers`, each checked; the admin state
/// (drain, maintenance) and a weight percentage a server has in the file are
/// kept.
fn merge_servers(p: &Params, old: Option<&BackendInfo>) -> Result<Vec<Server>, Fail> {
    let mut servers = vec![];
    for s in p.servers.as_deref().unwrap_or_default() {
        let (admin, percent) = old
            .and_then(|i| i.servers.iter().find(|o| o.name == s.name))
            .map_or((Admin::Ready, None), |o| (o.admin, o.percent));
        servers.push(Server {
            name: s.name.clone(),
            address: s.address.clone(),
            port: checks::port("servers.port", s.port)?,
            weight: checks::weight("servers.weight", s.weight)?,
            percent,
            check: s.check,
            backup: s.backup,
            admin,
        });
    }
    Ok(servers)
}

/// The secrets a backend-level run uses: read (or made up) and checked
/// before the file renders, written only once it does.
struct Secrets {
    /// The stats password, kept in `stats.password_file` (with `stats.enabled`).
    stats_password: Option<Kept>,
    /// The dynamic-cookie key (with `stickiness=cookie`).
    cookie_key: Option<String>,
    /// Where the cookie key is kept when `cookie.key` does not give it.
    kept_cookie_key: Option<Kept>,
}

impl Secrets {
    /// Reads (or makes up) and checks the secrets; nothing is written. The
    /// dynamic-cookie key is `cookie.key`, else the one kept in
    /// `cookie.key_file`, made from the key haproxy.cfg has already (cookies
    /// handed out stay valid) or at random. It is not hidden when it is the
    /// backend's name (the old default, no secret): that would hide the name.
    fn load(m: &mut Module, p: &Params, old_info: Option<&BackendInfo>) -> Result<Secrets, Fail> {
        let stats_password = if p.stats.enabled {
            let kept = match &p.stats.password {
                Some(given) => secret::given(&p.stats.password_file, "stats.password", given)?,
                None => secret::load(&p.stats.password_file, "stats password", None)?,
            };
            m.hide(kept.value.clone());
            Some(kept)
        } else {
            None
        };
        let cookie = p.stickiness == Stickiness::Cookie && p.state == State::Present;
        let (cookie_key, kept_cookie_key) = match (cookie, &p.cookie.key) {
            (false, _) => (None, None),
            (true, Some(key)) => (Some(key.clone()), None),
            (true, None) => {
                let seed = old_info
                    .and_then(|i| i.cookie_key.as_deref())
                    .filter(|k| secret::check("key", k).is_ok());
                let kept = secret::load(&p.cookie.key_file, "cookie key", seed)?;
                (Some(kept.value.clone()), Some(kept))
            }
        };
        if let Some(key) = cookie_key.as_ref().filter(|k| **k != p.backend()) {
            m.hide(key.clone());
        }
        Ok(Secrets {
            stats_password,
            cookie_key,
            kept_cookie_key,
        })
    }

    /// Writes the secret files (nothing in check mode) and reports them.
    fn save(&self, m: &mut Module, p: &Params) -> Result<(), Fail> {
        if let Some(kept) = &self.stats_password {
            m.set_changed(kept.save(m.check_mode())?);
            m.set("stats_password_file", &p.stats.password_file);
            m.set("stats_user", &p.stats.user);
        }
        if let Some(kept) = &self.kept_cookie_key {
            m.set_changed(kept.save(m.check_mode())?);
            m.set("cookie_key_file", &p.cookie.key_file);
        }
        Ok(())
    }
}

/// The running HAProxy as a backend-level run finds it.
struct Live {
    active: bool,
    /// The backend's servers in the running HAProxy; `None` when it does
    /// not run or does not have the backend.
    servers: Option<Vec<RtServer>>,
    worker: Option<Info>,
    /// Whether the running worker has the file as it is before this run.
    loaded: bool,
}

impl Live {
    fn read(ctx: &Ctx, old_text: Option<&str>, state_file: &Path) -> Live {
        let active = service::is_active(UNIT);
        let (servers, worker) = if active {
            (
                ctx.sock.servers(ctx.backend()).ok().flatten(),
                ctx.sock.info().ok().flatten(),
            )
        } else {
            (None, None)
        };
        let loaded = match (old_text, worker) {
            (Some(old_text), Some(w)) => {
                applied::in_sync(&ctx.p.config_path, old_text, w, state_file)
            }
            _ => false,
        };
        Live {
            active,
            servers,
            worker,
            loaded,
        }
    }

    /// Whether `wanted` takes a reload: HAProxy or the backend not running,
    /// the worker on another file, or a change besides the servers the
    /// runtime API can make.
    fn needs_reload(
        &self,
        p: &Params,
        wanted: &Wanted,
        old_text: Option<&str>,
        old_info: Option<&BackendInfo>,
    ) -> bool {
        let config_changed = old_text != Some(wanted.text.as_str());
        let runtime_only = match (old_text, old_info, &self.servers) {
            (Some(old_text), Some(old_info), Some(_)) if p.state == State::Present => {
                config::without_servers(old_text, p.backend())
                    == config::without_servers(&wanted.text, p.backend())
                    && runtime_can_apply(&old_info.servers, &wanted.servers, &wanted.info)
            }
            _ => false,
        };
        !self.active || self.servers.is_none() || !self.loaded || (config_changed && !runtime_only)
    }
}

pub(crate) fn backend_level(m: &mut Module, mut ctx: Ctx) -> anyhow::Result<()> {
    let p = ctx.p;
    check(p)?;
    hide_kept_secrets(m, p);
    let old = read_config(m, &p.config_path)?;
    let old_info = old
        .as_ref()
        .and_then(|o| config::parse_backend(&o.text, p.backend()));

    // The secrets are read and checked (or made up) first, written only
    // once the whole file renders.
    let secrets = Secrets::load(m, p, old_info.as_ref())?;
    let cert = match (&p.frontend.tls, p.state) {
        (Some(tls), State::Present) => Some(Cert::load(m, tls)?),
        _ => None,
    };
    let wanted = render(
        p,
        old_info.as_ref(),
        secrets.stats_password.as_ref().map(|k| k.value.as_str()),
        secrets.cookie_key.as_deref(),
    )?;
    secrets.save(m, p)?;
    m.set(
        "servers",
        wanted.servers.iter().map(server_json).collect::<Vec<_>>(),
    );
    if let Some(c) = &cert {
        m.set("tls_certificate", &c.path);
    }

    if p.state != State::Present && old_info.is_none() {
        return Ok(()); // Nothing of this backend in the file.
    }
    apply(
        m,
        &mut ctx,
        &wanted,
        old.as_ref(),
        old_info.as_ref(),
        cert.as_ref(),
    )?;
    m.set("actions", &ctx.actions);
    Ok(())
}

/// Writes the certificate (with `certificate_content`), then the config:
/// `haproxy -c` checks the config with the new certificate in place. When
/// the config does not change but the certificate does, the live config is
/// checked again with it. A refusal puts the certificate back. Returns
/// whether the config and the certificate's content changed, and how to
/// undo the certificate (empty when it was not written).
fn write_files(
    m: &mut Module,
    p: &Params,
    text: &str,
    cert: Option<&Cert>,
) -> Result<(bool, bool, Vec<Undo>), Fail> {
    let cert_changed = match cert {
        Some(c) => c.write(m)?,
        None => false,
    };
    let undo: Vec<Undo> = cert
        .filter(|_| cert_changed && !m.check_mode())
        .map(Cert::undo)
        .into_iter()
        .collect();
    let put_back = |e: Fail| -> Fail {
        if undo.is_empty() {
            return e;
        }
        let paths: Vec<&str> = undo.iter().map(|u| u.path.as_str()).collect();
        let then = match undo.iter().try_for_each(Undo::restore) {
            Ok(()) => format!("{} is back as it was", paths.join(", ")),
            Err(r) => format!("putting {} back failed too: {}", paths.join(", "), r.msg),
        };
        Fail {
            msg: format!("{}\n{then}", e.msg),
            extra: e.extra,
        }
    };
    let wrote = write_config(m, p, text).map_err(put_back)?;
    if !undo.is_empty() && !wrote {
        check_live(p).map_err(put_back)?;
    }
    Ok((wrote, cert_changed, undo))
}

/// Writes the file, then reloads HAProxy or, when only servers changed and
/// the running worker has the file, changes them through the runtime API.
fn apply(
    m: &mut Module,
    ctx: &mut Ctx,
    wanted: &Wanted,
    old: Option<&Old>,
    old_info: Option<&BackendInfo>,
    cert: Option<&Cert>,
) -> anyhow::Result<()> {
    let p = ctx.p;
    let old_text = old.map(|o| o.text.as_str());
    let state_file = applied::state_path(&p.admin_socket);
    let live = Live::read(ctx, old_text, &state_file);
    let mut needs_reload = live.needs_reload(p, wanted, old_text, old_info);
    let (wrote, cert_changed, cert_undo) = write_files(m, p, &wanted.text, cert)?;
    m.set_changed(wrote);
    // A new certificate is loaded by a reload only.
    needs_reload |= cert_changed;
    if needs_reload && !wrote && cert_undo.is_empty() && cert.is_some() && !m.check_mode() {
        // The certificate may have changed on disk since HAProxy loaded
        // it: check what a reload would load, for a clear message.
        check_live(p)?;
    }

    let present = p.state == State::Present;
    if present {
        // Only now that the file passed `haproxy -c`: a refused config
        // leaves the other services as they were. When systemd fails here,
        // the files go back, so the next run finds what HAProxy runs.
        if let Err(e) = stop_conflicting(m, ctx) {
            let written = wrote && !m.check_mode();
            return Err(put_back(p, e, written.then_some(old), &cert_undo).into());
        }
    }
    if !present && !live.active {
        // Removing a backend does not start a stopped HAProxy.
    } else if needs_reload {
        reload(
            m,
            ctx,
            wanted,
            &state_file,
            live.active,
            wrote.then_some(old),
            &cert_undo,
        )?;
    } else if let Some(running) = &live.servers {
        runtime(m, ctx, wanted, running, live.worker, &state_file)?;
    }
    if present {
        let enabled = units::enable_own(UNIT, m.check_mode())?;
        if enabled {
            m.set_changed(true);
            m.set("enabled", true);
            ctx.actions.push(format!("systemctl enable {UNIT}"));
        }
    }
    Ok(())
}

/// `e` with what putting the config (`old`, when this run wrote it) and the
/// files in `also` back gave.
fn put_back(p: &Params, e: Fail, old: Option<Option<&Old>>, also: &[Undo]) -> Fail {
    let mut notes = vec![];
    let mut note = |path: &str, r: Result<(), Fail>| match r {
        Ok(()) => notes.push(format!("{path} is back as it was")),
        Err(r) => notes.push(format!("putting {path} back failed too: {}", r.msg)),
    };
    if let Some(old) = old {
        note(&p.config_path, restore_config(p, old));
    }
    for u in also {
        note(&u.path, u.restore());
    }
    if notes.is_empty() {
        return e;
    }
    Fail {
        msg: format!("{}\n{}", e.msg, notes.join("; ")),
        extra: e.extra,
    }
}

/// Stops and disables `conflicting_services` that run or are enabled, before
/// HAProxy (re)starts and binds its ports; reports them.
fn stop_conflicting(m: &mut Module, ctx: &mut Ctx) -> Result<(), Fail> {
    let done = units::stop_others(&ctx.p.conflicting_services, m.check_mode())?;
    m.set_changed(done.changed());
    for (verb, list, key) in [
        ("stop", &done.stopped, "stopped_services"),
        ("disable", &done.disabled, "disabled_services"),
    ] {
        if !list.is_empty() {
            ctx.actions
                .push(format!("systemctl {verb} {}", list.join(" ")));
            m.set(key, list);
        }
    }
    Ok(())
}

/// Reloads (or starts) HAProxy with the new file, putting `undo` (and the
/// files in `also`) back when it does not take; waits for the servers when
/// asked.
fn reload(
    m: &mut Module,
    ctx: &mut Ctx,
    wanted: &Wanted,
    state_file: &Path,
    active: bool,
    undo: Option<Option<&Old>>,
    also: &[Undo],
) -> anyhow::Result<()> {
    let p = ctx.p;
    m.set_changed(true);
    let action = if m.check_mode() {
        if active {
            "reloaded"
        } else {
            "started"
        }
    } else {
        ctx.reload_or_restore(state_file, &wanted.text, undo, also)?
    };
    m.set("service", action);
    if p.state == State::Present && p.wait && !m.check_mode() {
        ctx.wait_for(&wanted.servers)?;
    }
    Ok(())
}

/// Brings the running servers to the wanted ones through the runtime API;
/// waits for the servers it changed when asked.
fn runtime(
    m: &mut Module,
    ctx: &mut Ctx,
    wanted: &Wanted,
    running: &[RtServer],
    worker: Option<Info>,
    state_file: &Path,
) -> anyhow::Result<()> {
    let p = ctx.p;
    let steps = ctx.converge_runtime(
        m,
        format!("runtime: backend {}", p.backend()),
        &wanted.servers,
        running,
        &wanted.info,
    )?;
    if let (false, Some(w)) = (m.check_mode(), worker) {
        applied::record(state_file, w.pid, &wanted.text);
    }
    if p.wait && !m.check_mode() {
        let touched: Vec<Server> = wanted
            .servers
            .iter()
            .filter(|s| steps.iter().any(|st| st.server() == s.name))
            .cloned()
            .collect();
        ctx.wait_for(&touched)?;
    }
    Ok(())
}
