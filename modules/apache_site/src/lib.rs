//! `apache_site`: one site on Debian's Apache, with the real client address in
//! its access log and the load balancer's health checks left out of it.
//!
//! The module writes `sites-available/<name>.conf` and links it into
//! `sites-enabled` (as `a2ensite` does), enables the Apache modules the site
//! needs (as `a2enmod` does, dependencies included), opens the port in
//! `ports.conf`, writes the document root's index page, checks the whole
//! configuration with `apachectl configtest` and reloads Apache gracefully. A
//! configuration that fails the check, or that the reload does not take, is
//! rolled back file by file, byte for byte, so the running site keeps serving
//! the old one.

pub mod conf;
pub mod layout;
pub mod params;
pub mod ports;
pub mod render;
pub mod sockets;
pub mod tx;

use std::time::{Duration, Instant};

use ansible_module::config_file::ConfigError;
use ansible_module::{service, units, ConfigFile, Fail, Module, ModuleSpec};

use layout::Layout;
use params::{DefaultSite, Params, Site, State, LOG_DIR};
use tx::Tx;

pub const APACHE_ROOT: &str = "/etc/apache2";
/// Where Debian's `a2enmod` and `a2ensite` keep their markers.
pub const APACHE_STATE: &str = "/var/lib/apache2";
pub const SERVICE: &str = "apache2";
const DISABLE_DEFAULT: &str = "disable site 000-default";
/// How long `systemctl reload|start apache2` may take.
const SERVICE_TIMEOUT: Duration = Duration::from_secs(120);

pub fn spec() -> ModuleSpec {
    ModuleSpec::from_json(params::SPEC)
}

/// Debian's `apachectl` (the same script as `apache2ctl`); by absolute path so
/// a connection with a short PATH (no /usr/sbin) still finds it.
fn apachectl() -> &'static str {
    ["/usr/sbin/apachectl", "/usr/sbin/apache2ctl"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("apachectl")
}

/// `apachectl configtest`, in the shape `ConfigFile::check_in_place` takes.
pub fn configtest() -> Result<(), (String, String)> {
    ansible_module::config_file::run_check(&[apachectl(), "configtest"])
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The module body.
pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let params: Params = m.parse()?;
    let unneeded = unneeded_services(&params.unneeded_services)?;
    let services_only_run = params.services_only;
    let site = params.into_site().map_err(|e| Fail::new(e.0))?;
    let layout = Layout::new(APACHE_ROOT, APACHE_STATE);
    layout.check_installed().map_err(|e| Fail::new(e.0))?;
    if services_only_run {
        // The files as a check-mode run sees them: one call both keeps the
        // services right and tells whether the site is due a change.
        let site_changed = converge(&site, &layout, true, &configtest)?.tx.changed;
        return services_only(m, &site.name, &unneeded, site_changed);
    }
    if let Some(port) = port_to_open(&site, &layout)? {
        if let Some((pid, program)) = sockets::foreign_listener(port) {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            return Err(Fail::new(format!(
                "port {port} is already in use by {program}{pid}: Apache could not listen on it, and a reload would stop Apache altogether; nothing was changed"
            ))
            .into());
        }
    }
    let outcome = converge(&site, &layout, m.check_mode(), &configtest)?;
    report(m, &site, &layout, outcome, &unneeded)
}

/// `unneeded_services`, each a checked unit name, Apache itself refused.
pub fn unneeded_services(given: &[String]) -> Result<Vec<String>, Fail> {
    for (i, unit) in given.iter().enumerate() {
        units::unit_name(&format!("unneeded_services[{i}]"), unit)?;
        if units::service_unit(unit) == units::service_unit(SERVICE) {
            return Err(Fail::new(format!(
                "unneeded_services lists {unit}, the service this module keeps running"
            )));
        }
    }
    Ok(given.to_vec())
}

/// How an action on a unit reads in `actions`: what was done, or in check
/// mode what would be.
fn unit_action(check_mode: bool, verb: &str, unit: &str) -> String {
    let done = match verb {
        _ if check_mode => verb,
        "stop" => "stopped",
        "start" => "started",
        "enable" => "enabled",
        _ => "disabled",
    };
    format!("{done} {unit}")
}

/// Reports what `units::stop_others` did (or would do) in the result and
/// `actions`.
fn report_others(m: &mut Module, done: &units::Done, actions: &mut Vec<String>) {
    for (verb, list, key) in [
        ("stop", &done.stopped, "stopped_services"),
        ("disable", &done.disabled, "disabled_services"),
    ] {
        for unit in list {
            actions.push(unit_action(m.check_mode(), verb, unit));
        }
        if !list.is_empty() {
            m.set(key, list);
        }
    }
}

/// Enables Apache at boot unless it is (in check mode only reports).
fn enable_at_boot(m: &mut Module, actions: &mut Vec<String>) -> Result<bool, Fail> {
    let enabled = units::enable_own(SERVICE, m.check_mode())?;
    if enabled {
        actions.push(format!(
            "{} at boot",
            unit_action(m.check_mode(), "enable", SERVICE)
        ));
        m.set("service_enabled", true);
    }
    Ok(enabled)
}

/// `services_only`: `unneeded_services` stopped and disabled, then Apache
/// started when it does not run and enabled at boot. The site's files are
/// not touched; `site_changed` reports whether a run without
/// `services_only` would change them, so a play can decide how to change a
/// site (drained or not) and keep the services right in one call.
fn services_only(
    m: &mut Module,
    name: &str,
    unneeded: &[String],
    site_changed: bool,
) -> anyhow::Result<()> {
    let mut actions = vec![];
    let done = units::stop_others(unneeded, m.check_mode())?;
    report_others(m, &done, &mut actions);
    let mut changed = done.changed();
    let mut action = "none";
    if !service::is_active(SERVICE) {
        if !m.check_mode() {
            Systemd.start()?;
        }
        actions.push(unit_action(m.check_mode(), "start", SERVICE));
        changed = true;
        action = "started";
    }
    changed |= enable_at_boot(m, &mut actions)?;
    m.set_changed(changed);
    m.set("name", name);
    m.set("site_changed", site_changed);
    m.set("service", action);
    m.set("actions", &actions);
    Ok(())
}

/// What a converge did, before the service step.
#[derive(Debug)]
pub struct Outcome {
    pub tx: Tx,
    pub modules_enabled: Vec<String>,
    pub default_site_disabled: bool,
    /// A port this run opened in ports.conf (Apache must start listening on it).
    pub new_port: Option<u16>,
}

/// `ports.conf` now and as this site wants it, as bytes. It is read without
/// following a link another user controls; a file that is not UTF-8 is read
/// byte for byte as Latin-1, so every byte the module does not change comes
/// back as it was (a read error is an error, never an empty file).
fn ports_files(site: &Site, layout: &Layout) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let active = site.state == State::Present && site.enabled;
    let before = ConfigFile::new(layout.ports_conf())
        .read_current()?
        .unwrap_or_default();
    let after = match std::str::from_utf8(&before) {
        Ok(text) => ports::update(text, &site.name, active.then_some(&site.listen)).into_bytes(),
        Err(_) => {
            let text: String = before.iter().map(|b| char::from(*b)).collect();
            ports::update(&text, &site.name, active.then_some(&site.listen))
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
                .collect()
        }
    };
    Ok((before, after))
}

/// The port a run would add a `Listen` line for, if any.
pub fn port_to_open(site: &Site, layout: &Layout) -> anyhow::Result<Option<u16>> {
    let (before, after) = ports_files(site, layout)?;
    Ok(
        (site.state == State::Present && site.enabled && before != after)
            .then_some(site.listen.port),
    )
}

/// Brings the files to the wanted state and checks the result; rolls every
/// change back when the check fails. Nothing here touches the service.
pub fn converge(
    site: &Site,
    layout: &Layout,
    check_mode: bool,
    check: &dyn Fn() -> Result<(), (String, String)>,
) -> anyhow::Result<Outcome> {
    let present = site.state == State::Present;
    let active = present && site.enabled;

    // Everything that can be refused is decided before the first change.
    let mut wanted_modules: Vec<String> = Vec::new();
    if present {
        if !site.health_check.log {
            wanted_modules.push("setenvif".into());
        }
        if !site.trusted_proxies.is_empty() {
            wanted_modules.push("remoteip".into());
        }
        for m in &site.modules {
            if !wanted_modules.contains(m) {
                wanted_modules.push(m.clone());
            }
        }
    }
    let mod_links = layout
        .module_links(&wanted_modules)
        .map_err(|e| Fail::new(e.0))?;
    let disable_default = active
        && site.name != "000-default"
        && match site.default_site {
            DefaultSite::Keep => false,
            DefaultSite::Disable => true,
            DefaultSite::Auto => {
                site.listen.address.is_none()
                    && layout.default_site_ports().contains(&site.listen.port)
            }
        };
    let (ports_before, ports_after) = ports_files(site, layout)?;
    let new_port = (active && ports_after != ports_before).then_some(site.listen.port);
    let vhost = if present {
        Some(render::vhost(site).map_err(|e| Fail::new(e.0))?)
    } else {
        None
    };

    let mut tx = Tx::new(check_mode);
    let result = apply(
        site,
        layout,
        &mut tx,
        &mod_links,
        disable_default,
        (ports_after != ports_before).then_some(ports_after.as_slice()),
        vhost.as_deref(),
        check,
    );
    if let Err(e) = result {
        let leftovers = tx.rollback();
        let e = match e.downcast::<ConfigError>() {
            Ok(ConfigError::Rejected {
                checker, output, ..
            }) => rejected(&checker, &output),
            Ok(other) => other.into(),
            Err(e) => e,
        };
        if leftovers.is_empty() {
            return Err(e);
        }
        return Err(e.context(format!(
            "rolling back left these behind: {}",
            leftovers.join("; ")
        )));
    }
    let mut modules_enabled: Vec<String> = mod_links.iter().map(|l| l.module.clone()).collect();
    modules_enabled.dedup();
    let default_site_disabled = tx.actions.iter().any(|a| a == DISABLE_DEFAULT);
    Ok(Outcome {
        tx,
        modules_enabled,
        default_site_disabled,
        new_port,
    })
}

#[allow(clippy::too_many_arguments)]
fn apply(
    site: &Site,
    layout: &Layout,
    tx: &mut Tx,
    mod_links: &[layout::ModLink],
    disable_default: bool,
    ports_after: Option<&[u8]>,
    vhost: Option<&str>,
    check: &dyn Fn() -> Result<(), (String, String)>,
) -> anyhow::Result<()> {
    let present = site.state == State::Present;
    let site_file = layout.site_file(&site.name);
    let site_link = layout.site_link(&site.name);

    for l in mod_links {
        let linked = tx.link(&l.link, &l.target, &format!("enable module {}", l.module))?;
        if linked && l.link.extension().is_some_and(|e| e == "load") {
            tx.switch_marker(&layout.module_markers(), true, &l.module)?;
        }
    }
    if let Some(bytes) = ports_after {
        tx.write_bytes(&layout.ports_conf(), bytes, true, "update ports.conf", None)?;
    }

    let sites = layout.site_markers();
    let Some(vhost) = vhost.filter(|_| present) else {
        if tx.unlink(&site_link, "disable site")? {
            tx.switch_marker(&sites, false, &site.name)?;
        }
        tx.remove_file(&site_file, "remove site file")?;
        return final_check(tx, check);
    };

    tx.mkdir(&site.document_root, "create document root")?;
    if site.manage_index {
        let index = match &site.index_content {
            Some(text) => text.clone(),
            None => render::default_index(&host_name()),
        };
        tx.write(
            &site.document_root.join("index.html"),
            &index,
            false,
            "write index.html",
            None,
        )?;
    }
    if disable_default && tx.unlink(&layout.site_link("000-default"), DISABLE_DEFAULT)? {
        tx.switch_marker(&sites, false, "000-default")?;
    }
    let relinked = if site.enabled {
        tx.link(
            &site_link,
            &Layout::site_link_target(&site.name),
            "enable site",
        )?
    } else {
        tx.unlink(&site_link, "disable site")?
    };
    if relinked {
        tx.switch_marker(&sites, site.enabled, &site.name)?;
    }
    let before = tx.config_changed;
    let wrote_vhost = tx.write(&site_file, vhost, true, "write site file", Some(check))?;
    // The vhost write ran the check itself; anything else still needs one.
    if before && !wrote_vhost {
        return final_check(tx, check);
    }
    Ok(())
}

fn final_check(tx: &Tx, check: &dyn Fn() -> Result<(), (String, String)>) -> anyhow::Result<()> {
    if !tx.config_changed || tx.check_mode() {
        return Ok(());
    }
    check().map_err(|(checker, output)| rejected(&checker, &output))
}

/// The failure for a configuration the checker refused (after the rollback).
fn rejected(checker: &str, output: &str) -> anyhow::Error {
    let checker = checker.split(" exited with").next().unwrap_or(checker);
    Fail::new(format!(
        "the new Apache configuration failed `{checker}`; every change was rolled back and Apache keeps its running configuration:\n{output}"
    ))
    .with("checker_output", output)
    .into()
}

/// What the module asks of the service manager; behind a trait so the
/// rollback after a failed reload is tested without systemd.
pub trait Service {
    fn is_active(&self) -> bool;
    fn reload(&self) -> Result<(), Fail>;
    fn start(&self) -> Result<(), Fail>;
    /// Whether anything listens on `port` (Apache, after a reload that opened it).
    fn listening(&self, port: u16) -> bool;
    /// Whether Apache answers `check`'s request with an HTTP status line.
    fn answers(&self, check: &ServeCheck) -> bool;
    /// The last lines of Apache's error log, for a failure message.
    fn log_tail(&self) -> String;
}

/// `systemctl` on the target, every call bounded in time.
pub struct Systemd;

impl Service for Systemd {
    fn is_active(&self) -> bool {
        service::is_active(SERVICE)
    }

    fn reload(&self) -> Result<(), Fail> {
        service::run_bounded("systemctl", &["reload", SERVICE], SERVICE_TIMEOUT).map(|_| ())
    }

    fn start(&self) -> Result<(), Fail> {
        service::run_bounded("systemctl", &["start", SERVICE], SERVICE_TIMEOUT).map(|_| ())
    }

    fn listening(&self, port: u16) -> bool {
        sockets::port_listening(port)
    }

    fn answers(&self, check: &ServeCheck) -> bool {
        sockets::answers_http(check.addr, &check.request, SERVE_ATTEMPT)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read(format!("{LOG_DIR}/error.log")).unwrap_or_default();
        let log = String::from_utf8_lossy(&log);
        let mut tail: Vec<&str> = log.lines().rev().take(5).collect();
        tail.reverse();
        tail.join("\n")
    }
}

/// One attempt of the serving check: a new Apache generation that has not
/// accepted within this is asked again.
const SERVE_ATTEMPT: Duration = Duration::from_secs(1);

/// The request that shows Apache serves the site: the load balancers' health
/// check (so it is not logged either), sent to where the site listens.
#[derive(Debug, Clone)]
pub struct ServeCheck {
    pub addr: std::net::SocketAddr,
    pub request: String,
}

impl ServeCheck {
    pub fn for_site(site: &Site) -> ServeCheck {
        let ip = site
            .listen
            .address
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST));
        let host = site.server_name.as_deref().unwrap_or("localhost");
        ServeCheck {
            addr: std::net::SocketAddr::new(ip, site.listen.port),
            request: format!(
                "{} {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: apache_site\r\n\r\n",
                site.health_check.method, site.health_check.path
            ),
        }
    }
}

/// What the service step did: the action for the result, and warnings.
#[derive(Debug, Default)]
pub struct ServiceOutcome {
    pub action: &'static str,
    pub warnings: Vec<String>,
}

/// Tells Apache about the files `converge` left (not in check mode): a
/// graceful reload when it runs, a start when it does not. When Apache does
/// not take them (the reload or start fails, or Apache stops after a reload
/// that opened a port), every change is rolled back and Apache is reloaded
/// (or started again) on the restored files; an Apache that was stopped before
/// stays stopped. How long to wait for a new port is `port_wait`.
pub fn service_step(
    tx: &mut Tx,
    present: bool,
    new_port: Option<u16>,
    serve: Option<&ServeCheck>,
    svc: &dyn Service,
    port_wait: Duration,
) -> anyhow::Result<ServiceOutcome> {
    let mut out = ServiceOutcome {
        action: "none",
        warnings: Vec::new(),
    };
    let was_active = svc.is_active();
    let (verb, done) = if present && !was_active {
        ("start", "started")
    } else if tx.config_changed && was_active {
        ("reload", "reloaded")
    } else {
        return Ok(out);
    };
    let run = if was_active {
        svc.reload()
    } else {
        svc.start()
    };
    if let Err(e) = run {
        return Err(undo_after_service(
            tx,
            svc,
            was_active,
            format!("`systemctl {verb} {SERVICE}` failed: {}", e.msg),
        ));
    }
    tx.actions.push(format!("{done} {SERVICE}"));
    tx.changed = true;
    out.action = done;
    if let Some(port) = new_port {
        let deadline = Instant::now() + port_wait;
        while !svc.listening(port) && Instant::now() < deadline {
            if !svc.is_active() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !svc.is_active() {
            let tail = svc.log_tail();
            return Err(undo_after_service(
                tx,
                svc,
                was_active,
                format!(
                    "Apache stopped after the {verb} that opened port {port} (the configuration passed apachectl configtest; {LOG_DIR}/error.log ends with:\n{tail}\n)"
                ),
            ));
        }
        if !svc.listening(port) {
            out.warnings.push(format!(
                "Apache was {done} but nothing listens on port {port} yet: see {LOG_DIR}/error.log"
            ));
        }
    }
    // A graceful reload returns before the new generation of workers
    // accepts: until then connections queue. The task returns once Apache
    // answers, so a node put back in rotation right after it serves at once.
    if let (true, Some(check)) = (present, serve) {
        let deadline = Instant::now() + port_wait;
        while !svc.answers(check) {
            if Instant::now() >= deadline || !svc.is_active() {
                out.warnings.push(format!(
                    "Apache was {done} but did not answer on {} within {} s: see {LOG_DIR}/error.log",
                    check.addr,
                    port_wait.as_secs()
                ));
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(out)
}

/// Rolls every change back after Apache refused it, and brings Apache back on
/// the restored files: reloaded when it runs, started when `restart` says it
/// ran before. The error says what happened.
fn undo_after_service(
    tx: &mut Tx,
    svc: &dyn Service,
    restart: bool,
    what: String,
) -> anyhow::Error {
    let had_changes = tx.changed;
    let leftovers = tx.rollback();
    let mut msg = what;
    if !had_changes {
        msg.push_str("; no file had changed");
    } else if leftovers.is_empty() {
        msg.push_str("; every change was rolled back");
    } else {
        msg.push_str(&format!(
            "; rolling back left these behind: {}",
            leftovers.join("; ")
        ));
    }
    let recovered = if svc.is_active() {
        svc.reload()
            .map(|_| "Apache was reloaded with its previous configuration")
    } else if restart {
        svc.start()
            .map(|_| "Apache was started again with its previous configuration")
    } else {
        Ok("Apache stays stopped, as it was")
    };
    match recovered {
        Ok(how) => msg.push_str(&format!(" and {how}")),
        Err(e) => msg.push_str(&format!(
            ", but bringing Apache back on the restored files failed too: {}",
            e.msg
        )),
    }
    tx.actions.push("rolled back every change".into());
    Fail::new(msg).with("actions", &tx.actions).into()
}

fn report(
    m: &mut Module,
    site: &Site,
    layout: &Layout,
    outcome: Outcome,
    unneeded: &[String],
) -> anyhow::Result<()> {
    let Outcome {
        mut tx,
        modules_enabled,
        default_site_disabled,
        new_port,
    } = outcome;
    let present = site.state == State::Present;
    let diffs: Vec<ansible_module::Diff> = tx.diffs.drain(..).collect();
    // After the check passed, before Apache (re)binds its ports; a failure
    // puts the site's files back, as a refused reload does.
    if present {
        match units::stop_others(unneeded, m.check_mode()) {
            Ok(done) => {
                // Not in tx.changed: that says whether files changed, for
                // the rollback's message.
                m.set_changed(done.changed());
                let mut actions = std::mem::take(&mut tx.actions);
                report_others(m, &done, &mut actions);
                tx.actions = actions;
            }
            Err(e) => {
                let leftovers = tx.rollback();
                m.set_changed(tx.changed);
                let then = if leftovers.is_empty() {
                    "every change to the site was rolled back".to_string()
                } else {
                    format!("rolling back left these behind: {}", leftovers.join("; "))
                };
                return Err(Fail {
                    msg: format!("{}; {then}", e.msg),
                    extra: e.extra,
                }
                .into());
            }
        }
    }
    // What a play drains a node for: the files, not a start or an enable.
    let site_changed = tx.changed;
    let mut service_action = "none";
    if m.check_mode() {
        let active = service::is_active(SERVICE);
        if present && !active {
            tx.actions.push(format!("start {SERVICE}"));
            tx.changed = true;
            service_action = "started";
        } else if tx.config_changed && active {
            tx.actions.push(format!("reload {SERVICE}"));
            service_action = "reloaded";
        }
    } else {
        match service_step(
            &mut tx,
            present,
            new_port,
            Some(&ServeCheck::for_site(site)),
            &Systemd,
            Duration::from_secs(10),
        ) {
            Ok(out) => {
                service_action = out.action;
                for w in out.warnings {
                    m.warn(w);
                }
            }
            Err(e) => {
                // Rolled back: changed only when something could not be put back.
                m.set_changed(tx.changed);
                return Err(e);
            }
        }
    }
    if present {
        let mut actions = std::mem::take(&mut tx.actions);
        let enabled = enable_at_boot(m, &mut actions)?;
        m.set_changed(enabled);
        tx.actions = actions;
    }
    for d in diffs {
        m.add_diff(d);
    }

    m.set_changed(tx.changed);
    m.set("name", &site.name);
    m.set("state", if present { "present" } else { "absent" });
    m.set("site_file", layout.site_file(&site.name));
    m.set("enabled", present && site.enabled);
    m.set("document_root", &site.document_root);
    m.set("listen", site.listen.vhost_arg());
    m.set("access_log", params::log_path(&site.access_log, LOG_DIR));
    m.set("modules_enabled", modules_enabled);
    m.set("default_site_disabled", default_site_disabled);
    m.set("service", service_action);
    m.set("site_changed", site_changed);
    m.set("actions", &tx.actions);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::fixture::{empty_tree, enable_default_site};
    use std::cell::Cell;
    use std::fs;
    use std::path::PathBuf;

    const PORTS: &str = "Listen 80\n";

    fn tree() -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().expect("tempdir");
        let l = empty_tree(&dir.path().join("apache2"));
        for m in ["setenvif", "remoteip", "headers"] {
            fs::write(l.mods_available().join(format!("{m}.load")), "\n").expect("write");
        }
        fs::write(l.mods_available().join("setenvif.conf"), "\n").expect("write");
        fs::write(l.ports_conf(), PORTS).expect("write");
        enable_default_site(&l, 80);
        (dir, l)
    }

    fn site(root: &std::path::Path, extra: serde_json::Value) -> Site {
        let mut p = serde_json::json!({
            "name": "web", "state": "present", "port": 80, "listen_address": null,
            "server_name": null, "server_aliases": [],
            "document_root": root.join("www/web").display().to_string(),
            "allowed_roots": [root.join("www").display().to_string()], "index_content": "hello\n",
            "manage_index": true, "trusted_proxies": ["10.231.0.11"], "proxy_trust": "internal",
            "health_check": null, "enabled": true, "modules": [], "default_site": "auto",
            "access_log": "${APACHE_LOG_DIR}/access.log",
            "error_log": "${APACHE_LOG_DIR}/error.log", "extra_config": null
        });
        if let (Some(b), Some(e)) = (p.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        serde_json::from_value::<Params>(p)
            .expect("params")
            .into_site()
            .expect("site")
    }

    fn snapshot(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
        fn walk(p: &std::path::Path, out: &mut Vec<(PathBuf, String)>) {
            let mut entries: Vec<_> = fs::read_dir(p)
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            entries.sort();
            for e in entries {
                let meta = fs::symlink_metadata(&e).expect("meta");
                if meta.file_type().is_symlink() {
                    let t = fs::read_link(&e).expect("link");
                    out.push((e, format!("-> {}", t.display())));
                } else if meta.is_dir() {
                    out.push((e.clone(), "dir".into()));
                    walk(&e, out);
                } else {
                    let bytes = fs::read(&e).unwrap_or_default();
                    let text = String::from_utf8(bytes)
                        .unwrap_or_else(|b| format!("{:?}", b.into_bytes()));
                    out.push((e.clone(), text));
                }
            }
        }
        let mut out = Vec::new();
        walk(dir, &mut out);
        out
    }

    #[test]
    fn spec_parses() {
        assert!(ModuleSpec::try_from_json(params::SPEC).is_ok());
    }

    /// A bool for an int option is an int to Ansible (Python's `True` is 1):
    /// `port: true` is port 1 and `port: false` port 0, not "internal error:
    /// parameters do not match the module's types". Both runs stop at the
    /// option checks, before the host is read.
    #[test]
    fn a_bool_for_an_int_option_is_a_number() {
        let module = |args: serde_json::Value| {
            let args = args.as_object().cloned().unwrap_or_default();
            ansible_module::execute("apache_site", &spec(), args, run)
        };
        let (out, failed) = module(serde_json::json!({"name": "web", "port": false}));
        assert!(failed);
        assert_eq!(
            out["msg"],
            serde_json::json!("port must be between 1 and 65535, got: 0")
        );
        assert_eq!(
            out["invocation"]["module_args"]["port"],
            serde_json::json!(false)
        );
        // Port 1 passes; the next check, on listen_address, answers.
        let (out, failed) =
            module(serde_json::json!({"name": "web", "port": true, "listen_address": "nowhere"}));
        assert!(failed);
        assert_eq!(
            out["msg"],
            serde_json::json!(
                "listen_address must be an IPv4 or IPv6 address or '*', got: \"nowhere\""
            )
        );
    }

    #[test]
    fn converge_then_nothing_to_do() {
        let (dir, l) = tree();
        let checks = Cell::new(0);
        let ok = || {
            checks.set(checks.get() + 1);
            Ok(())
        };
        let s = site(
            dir.path(),
            serde_json::json!({"port": 8080, "default_site": "auto"}),
        );
        let first = converge(&s, &l, false, &ok).expect("converge");
        assert!(first.tx.changed && first.tx.config_changed);
        assert_eq!(checks.get(), 1, "one configtest per run");
        assert_eq!(first.modules_enabled, ["setenvif", "remoteip"]);
        assert!(
            !first.default_site_disabled,
            "000-default is on 80, we are on 8080"
        );
        assert_eq!(first.new_port, Some(8080));
        assert_eq!(
            fs::read_link(l.site_link("web")).expect("link"),
            PathBuf::from("../sites-available/web.conf")
        );
        assert_eq!(
            fs::read_link(l.mods_enabled().join("setenvif.conf")).expect("link"),
            PathBuf::from("../mods-available/setenvif.conf")
        );
        assert!(fs::read_to_string(l.ports_conf())
            .expect("ports")
            .ends_with("# apache_site: web\nListen 8080\n"));
        assert_eq!(
            fs::read_to_string(dir.path().join("www/web/index.html")).expect("index"),
            "hello\n"
        );
        let before = snapshot(dir.path());
        let second = converge(&s, &l, false, &ok).expect("converge");
        assert!(!second.tx.changed, "{:?}", second.tx.actions);
        assert_eq!(checks.get(), 1, "no configtest when nothing changed");
        assert_eq!(snapshot(dir.path()), before);

        // Moving to port 80 takes the default site's port: it is disabled.
        let s80 = site(dir.path(), serde_json::json!({}));
        let third = converge(&s80, &l, false, &ok).expect("converge");
        assert!(third.default_site_disabled);
        assert_eq!(fs::read_to_string(l.ports_conf()).expect("ports"), PORTS);

        let gone = site(dir.path(), serde_json::json!({"state": "absent"}));
        let out = converge(&gone, &l, false, &ok).expect("absent");
        assert!(out.tx.changed);
        assert!(!l.site_file("web").exists());
        assert!(fs::symlink_metadata(l.site_link("web")).is_err());
        assert!(!converge(&gone, &l, false, &ok).expect("absent").tx.changed);
    }

    /// The markers under `dir` (`module/enabled_by_admin/headers`, ...).
    fn markers(dir: &std::path::Path) -> Vec<String> {
        let mut out: Vec<String> = ["module", "site"]
            .iter()
            .flat_map(|kind| fs::read_dir(dir.join(kind)).into_iter().flatten().flatten())
            .flat_map(|by| fs::read_dir(by.path()).into_iter().flatten().flatten())
            .filter_map(|m| {
                m.path()
                    .strip_prefix(dir)
                    .ok()
                    .map(|p| p.display().to_string())
            })
            .collect();
        out.sort();
        out
    }

    /// What `a2enmod`/`a2ensite`/`a2dissite` leave in /var/lib/apache2 (read
    /// from Debian 12's a2enmod): one marker per module or site, flipped
    /// between `enabled_by_admin` and `disabled_by_admin`, any other
    /// (`enabled_by_maint`) removed; only when a link changes.
    #[test]
    fn markers_are_kept_as_a2enmod_and_a2ensite_keep_them() {
        let (dir, l) = tree();
        let ok = || Ok(());
        let seed = |m: &str| {
            let p = l.state.join(m);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, "").expect("marker");
        };
        // As Debian 12's image has them, plus a module the admin disabled once
        // and a maintainer's marker of a module that is not enabled.
        seed("site/enabled_by_admin/000-default");
        seed("module/enabled_by_maint/mpm_event");
        seed("module/disabled_by_admin/remoteip");
        seed("module/enabled_by_maint/headers");
        let s = site(dir.path(), serde_json::json!({"modules": ["headers"]}));
        let out = converge(&s, &l, false, &ok).expect("converge");
        assert!(out.default_site_disabled);
        assert_eq!(
            markers(&l.state),
            [
                "module/enabled_by_admin/headers",
                "module/enabled_by_admin/remoteip",
                "module/enabled_by_admin/setenvif",
                "module/enabled_by_maint/mpm_event",
                "site/disabled_by_admin/000-default",
                "site/enabled_by_admin/web",
            ]
        );
        let converged = snapshot(dir.path());
        assert!(!converge(&s, &l, false, &ok).expect("again").tx.changed);
        assert_eq!(snapshot(dir.path()), converged);

        // Disabling flips the site's marker; a refused change flips nothing.
        let off = site(
            dir.path(),
            serde_json::json!({"modules": ["headers"], "enabled": false}),
        );
        let reject = || Err(("apachectl configtest exited with 1".into(), "bad".into()));
        converge(&off, &l, false, &reject).expect_err("rejected");
        assert_eq!(snapshot(dir.path()), converged);
        converge(&off, &l, true, &ok).expect("check mode");
        assert_eq!(snapshot(dir.path()), converged);
        converge(&off, &l, false, &ok).expect("disable");
        let now = markers(&l.state);
        assert!(
            now.contains(&"site/disabled_by_admin/web".to_string()),
            "{now:?}"
        );
        assert!(
            !now.contains(&"site/enabled_by_admin/web".to_string()),
            "{now:?}"
        );
        converge(&s, &l, false, &ok).expect("enable again");
        assert_eq!(snapshot(dir.path()), converged);

        // Removed: disabled as a2dissite leaves it (no --purge).
        let gone = site(dir.path(), serde_json::json!({"state": "absent"}));
        converge(&gone, &l, false, &ok).expect("absent");
        let now = markers(&l.state);
        assert!(
            now.contains(&"site/disabled_by_admin/web".to_string()),
            "{now:?}"
        );
        assert!(
            !now.contains(&"site/enabled_by_admin/web".to_string()),
            "{now:?}"
        );
    }

    #[test]
    fn unneeded_services_are_unit_names_other_than_apache() {
        let given = ["haproxy".to_string(), "keepalived.service".into()];
        assert_eq!(unneeded_services(&given).expect("names"), given);
        for (bad, want) in [
            ("apache2", "unneeded_services lists apache2, the service"),
            ("apache2.service", "unneeded_services lists apache2.service"),
            ("-x", "unneeded_services[0] entry \"-x\" is not a unit name"),
            ("a b", "unneeded_services[0] must not contain a space"),
            ("a\nb", "unneeded_services[0] must not contain U+000A"),
        ] {
            let e = unneeded_services(&[bad.to_string()]).expect_err(bad);
            assert!(e.msg.starts_with(want), "{bad:?}: {}", e.msg);
        }
        assert_eq!(unit_action(true, "stop", "haproxy"), "stop haproxy");
        assert_eq!(unit_action(false, "stop", "haproxy"), "stopped haproxy");
        assert_eq!(unit_action(false, "disable", "x"), "disabled x");
    }

    #[test]
    fn a_refused_first_run_leaves_no_marker_or_marker_directory() {
        let (dir, l) = tree();
        let before = snapshot(dir.path());
        let reject = || Err(("apachectl configtest exited with 1".into(), "bad".into()));
        let s = site(dir.path(), serde_json::json!({"modules": ["headers"]}));
        converge(&s, &l, false, &reject).expect_err("rejected");
        assert_eq!(snapshot(dir.path()), before);
        assert!(!l.state.exists());
    }

    #[test]
    fn disabled_site_keeps_its_file_but_not_its_link_or_port() {
        let (dir, l) = tree();
        let ok = || Ok(());
        let s = site(dir.path(), serde_json::json!({"port": 8080}));
        converge(&s, &l, false, &ok).expect("converge");
        let off = site(
            dir.path(),
            serde_json::json!({"port": 8080, "enabled": false}),
        );
        let out = converge(&off, &l, false, &ok).expect("disable");
        assert_eq!(out.tx.actions, ["update ports.conf", "disable site"]);
        assert!(l.site_file("web").exists());
        assert!(fs::symlink_metadata(l.site_link("web")).is_err());
        assert_eq!(fs::read_to_string(l.ports_conf()).expect("ports"), PORTS);
        assert!(
            l.site_link("000-default").exists(),
            "a disabled site does not take the default site's place"
        );
        assert!(!converge(&off, &l, false, &ok).expect("again").tx.changed);
    }

    #[test]
    fn failed_check_rolls_everything_back() {
        let (dir, l) = tree();
        let ok = || Ok(());
        let s = site(dir.path(), serde_json::json!({}));
        converge(&s, &l, false, &ok).expect("converge");
        let before = snapshot(dir.path());
        let broken = site(
            dir.path(),
            serde_json::json!({"port": 8081, "modules": ["headers"], "index_content": "new\n",
                               "extra_config": "NoSuchDirective on"}),
        );
        let reject = || {
            Err((
                "apachectl configtest exited with 1".to_string(),
                "Invalid command 'NoSuchDirective'".to_string(),
            ))
        };
        let err = converge(&broken, &l, false, &reject).expect_err("rejected");
        let msg = format!("{err:#}");
        assert!(msg.contains("NoSuchDirective"), "{msg}");
        assert!(
            msg.starts_with("the new Apache configuration failed `apachectl configtest`; every change was rolled back"),
            "{msg}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn failed_check_without_vhost_change_rolls_back_too() {
        let (dir, l) = tree();
        converge(&site(dir.path(), serde_json::json!({})), &l, false, &|| {
            Ok(())
        })
        .expect("converge");
        let before = snapshot(dir.path());
        let with_module = site(dir.path(), serde_json::json!({"modules": ["headers"]}));
        let reject = || {
            Err((
                "apachectl configtest exited with 1".to_string(),
                "bad".to_string(),
            ))
        };
        let err = converge(&with_module, &l, false, &reject).expect_err("rejected");
        assert!(
            err.to_string().contains("every change was rolled back"),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn check_mode_reports_and_changes_nothing() {
        let (dir, l) = tree();
        let before = snapshot(dir.path());
        let never = || -> Result<(), (String, String)> { panic!("no check in check mode") };
        let s = site(dir.path(), serde_json::json!({"modules": ["headers"]}));
        let out = converge(&s, &l, true, &never).expect("check");
        assert!(out.tx.changed);
        assert!(out.default_site_disabled);
        assert_eq!(out.modules_enabled, ["setenvif", "remoteip", "headers"]);
        assert!(out
            .tx
            .diffs
            .iter()
            .any(|d| d.after.contains("RemoteIPInternalProxy 10.231.0.11")));
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn unknown_module_changes_nothing() {
        let (dir, l) = tree();
        let before = snapshot(dir.path());
        let s = site(dir.path(), serde_json::json!({"modules": ["nonesuch"]}));
        let err = converge(&s, &l, false, &|| Ok(())).expect_err("unknown");
        assert!(
            err.to_string()
                .starts_with("unknown Apache module nonesuch"),
            "{err}"
        );
        assert_eq!(snapshot(dir.path()), before);
    }

    /// A service manager that fails the reloads or starts it is told to, and
    /// can stop Apache after a reload (a port it cannot bind).
    #[derive(Default)]
    struct FakeService {
        active: Cell<bool>,
        fail_reloads: Cell<u32>,
        fail_starts: Cell<u32>,
        stop_after_reload: Cell<bool>,
        calls: std::cell::RefCell<Vec<&'static str>>,
    }

    impl Service for FakeService {
        fn is_active(&self) -> bool {
            self.active.get()
        }
        fn reload(&self) -> Result<(), Fail> {
            self.calls.borrow_mut().push("reload");
            if self.fail_reloads.get() > 0 {
                self.fail_reloads.set(self.fail_reloads.get() - 1);
                return Err(Fail::new("Job for apache2.service failed"));
            }
            if self.stop_after_reload.replace(false) {
                self.active.set(false);
            }
            Ok(())
        }
        fn start(&self) -> Result<(), Fail> {
            self.calls.borrow_mut().push("start");
            if self.fail_starts.get() > 0 {
                self.fail_starts.set(self.fail_starts.get() - 1);
                return Err(Fail::new("Job for apache2.service failed"));
            }
            self.active.set(true);
            Ok(())
        }
        fn listening(&self, _port: u16) -> bool {
            self.active.get()
        }
        fn answers(&self, _check: &ServeCheck) -> bool {
            self.active.get()
        }
        fn log_tail(&self) -> String {
            "AH00072: make_sock: could not bind to address [::]:8080".into()
        }
    }

    #[test]
    fn a_failed_reload_rolls_back_and_reloads_the_old_files() {
        let (dir, l) = tree();
        let ok = || Ok(());
        converge(&site(dir.path(), serde_json::json!({})), &l, false, &ok).expect("converge");
        // A vhost with a Latin-1 byte the module must put back exactly.
        let mut old_vhost = fs::read(l.site_file("web")).expect("read");
        old_vhost.extend_from_slice(b"# caf\xe9\n");
        fs::write(l.site_file("web"), &old_vhost).expect("write");
        let before = snapshot(dir.path());
        let changed = site(
            dir.path(),
            serde_json::json!({"port": 8080, "modules": ["headers"], "index_content": "new\n"}),
        );
        let mut out = converge(&changed, &l, false, &ok).expect("converge");
        assert!(out.tx.config_changed);
        let svc = FakeService::default();
        svc.active.set(true);
        svc.fail_reloads.set(1);
        let e = service_step(
            &mut out.tx,
            true,
            out.new_port,
            None,
            &svc,
            Duration::from_millis(100),
        )
        .expect_err("reload fails");
        let msg = e.to_string();
        assert!(
            msg.starts_with("`systemctl reload apache2` failed: Job for apache2.service failed; every change was rolled back and Apache was reloaded with its previous configuration"),
            "{msg}"
        );
        assert_eq!(*svc.calls.borrow(), ["reload", "reload"]);
        assert_eq!(snapshot(dir.path()), before);
        assert_eq!(fs::read(l.site_file("web")).expect("read"), old_vhost);
        assert!(!out.tx.changed, "nothing is left changed");
    }

    #[test]
    fn apache_stopping_after_the_reload_rolls_back_and_starts_it_again() {
        let (dir, l) = tree();
        let ok = || Ok(());
        converge(&site(dir.path(), serde_json::json!({})), &l, false, &ok).expect("converge");
        let before = snapshot(dir.path());
        let moved = site(dir.path(), serde_json::json!({"port": 8080}));
        let mut out = converge(&moved, &l, false, &ok).expect("converge");
        assert_eq!(out.new_port, Some(8080));
        let svc = FakeService::default();
        svc.active.set(true);
        svc.stop_after_reload.set(true);
        let e = service_step(
            &mut out.tx,
            true,
            out.new_port,
            None,
            &svc,
            Duration::from_millis(100),
        )
        .expect_err("stopped");
        let msg = e.to_string();
        assert!(
            msg.starts_with("Apache stopped after the reload that opened port 8080"),
            "{msg}"
        );
        assert!(msg.contains("could not bind"), "{msg}");
        assert!(
            msg.ends_with("every change was rolled back and Apache was started again with its previous configuration"),
            "{msg}"
        );
        assert_eq!(*svc.calls.borrow(), ["reload", "start"]);
        assert!(svc.active.get());
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn a_failed_start_rolls_back_and_leaves_apache_stopped() {
        let (dir, l) = tree();
        let before = snapshot(dir.path());
        let mut out = converge(&site(dir.path(), serde_json::json!({})), &l, false, &|| {
            Ok(())
        })
        .expect("converge");
        let svc = FakeService::default();
        svc.fail_starts.set(1);
        let e = service_step(
            &mut out.tx,
            true,
            None,
            None,
            &svc,
            Duration::from_millis(100),
        )
        .expect_err("start fails");
        assert!(
            e.to_string()
                .ends_with("every change was rolled back and Apache stays stopped, as it was"),
            "{e}"
        );
        assert_eq!(*svc.calls.borrow(), ["start"]);
        assert_eq!(snapshot(dir.path()), before);

        // Nothing to do and Apache running: no call at all.
        let svc = FakeService::default();
        svc.active.set(true);
        let mut tx = Tx::new(false);
        let out = service_step(&mut tx, true, None, None, &svc, Duration::from_millis(100))
            .expect("none");
        assert_eq!(out.action, "none");
        assert!(svc.calls.borrow().is_empty());
    }

    #[test]
    fn ports_conf_that_is_not_utf8_keeps_every_byte() {
        let (dir, l) = tree();
        let latin1: &[u8] = b"# Ports (r\xe9seau)\nListen 80\n";
        fs::write(l.ports_conf(), latin1).expect("write");
        let ok = || Ok(());
        let s = site(dir.path(), serde_json::json!({"port": 8080}));
        converge(&s, &l, false, &ok).expect("converge");
        let mut want = latin1.to_vec();
        want.extend_from_slice(b"# apache_site: web\nListen 8080\n");
        assert_eq!(fs::read(l.ports_conf()).expect("read"), want);
        converge(&site(dir.path(), serde_json::json!({})), &l, false, &ok).expect("back to 80");
        assert_eq!(fs::read(l.ports_conf()).expect("read"), latin1);
        // A refused change puts the Latin-1 file back byte for byte.
        let reject = || {
            Err((
                "apachectl configtest exited with 1".to_string(),
                "bad".to_string(),
            ))
        };
        converge(&s, &l, false, &reject).expect_err("rejected");
        assert_eq!(fs::read(l.ports_conf()).expect("read"), latin1);
    }

    #[test]
    fn removing_a_site_whose_file_is_not_utf8_rolls_back_exactly() {
        let (dir, l) = tree();
        converge(&site(dir.path(), serde_json::json!({})), &l, false, &|| {
            Ok(())
        })
        .expect("converge");
        let mut old_vhost = fs::read(l.site_file("web")).expect("read");
        old_vhost.extend_from_slice(b"# caf\xe9\n");
        fs::write(l.site_file("web"), &old_vhost).expect("write");
        let reject = || {
            Err((
                "apachectl configtest exited with 1".to_string(),
                "bad".to_string(),
            ))
        };
        let gone = site(dir.path(), serde_json::json!({"state": "absent"}));
        converge(&gone, &l, false, &reject).expect_err("rejected");
        assert_eq!(fs::read(l.site_file("web")).expect("read"), old_vhost);
    }
}
