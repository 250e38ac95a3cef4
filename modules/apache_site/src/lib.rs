//! `apache_site`: one site on Debian's Apache, with the real client address in
//! its access log and the load balancer's health checks left out of it.
//!
//! The module writes `sites-available/<name>.conf` and links it into
//! `sites-enabled` (as `a2ensite` does), enables the Apache modules the site
//! needs (as `a2enmod` does, dependencies included), opens the port in
//! `ports.conf`, writes the document root's index page, checks the whole
//! configuration with `apachectl configtest` and reloads Apache gracefully. A
//! configuration that fails the check is rolled back file by file, so the
//! running site keeps serving the old one.

pub mod layout;
pub mod params;
pub mod ports;
pub mod render;
pub mod sockets;
pub mod tx;

use std::time::{Duration, Instant};

use ansible_module::config_file::ConfigError;
use ansible_module::{service, Fail, Module, ModuleSpec};

use layout::Layout;
use params::{DefaultSite, Params, Site, State};
use tx::Tx;

pub const APACHE_ROOT: &str = "/etc/apache2";
pub const SERVICE: &str = "apache2";
const LOG_DIR: &str = "/var/log/apache2";
const DISABLE_DEFAULT: &str = "disable site 000-default";

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
    let site = params.into_site().map_err(|e| Fail::new(e.0))?;
    let layout = Layout::new(APACHE_ROOT);
    layout.check_installed().map_err(|e| Fail::new(e.0))?;
    if let Some(port) = port_to_open(&site, &layout) {
        if let Some((pid, program)) = sockets::foreign_listener(port) {
            let pid = pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
            return Err(Fail::new(format!(
                "port {port} is already in use by {program}{pid}: Apache could not listen on it, and a reload would stop Apache altogether; nothing was changed"
            ))
            .into());
        }
    }
    let outcome = converge(&site, &layout, m.check_mode(), &configtest)?;
    report(m, &site, &layout, outcome)
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

/// `ports.conf` now and as this site wants it.
fn ports_files(site: &Site, layout: &Layout) -> (String, String) {
    let active = site.state == State::Present && site.enabled;
    let before = std::fs::read_to_string(layout.ports_conf()).unwrap_or_default();
    let after = ports::update(&before, &site.name, active.then_some(&site.listen));
    (before, after)
}

/// The port a run would add a `Listen` line for, if any.
pub fn port_to_open(site: &Site, layout: &Layout) -> Option<u16> {
    let (before, after) = ports_files(site, layout);
    (site.state == State::Present && site.enabled && before != after).then_some(site.listen.port)
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
    let (ports_before, ports_after) = ports_files(site, layout);
    let new_port = (active && ports_after != ports_before).then_some(site.listen.port);

    let mut tx = Tx::new(check_mode);
    let result = apply(
        site,
        layout,
        &mut tx,
        &mod_links,
        disable_default,
        (ports_after != ports_before).then_some(ports_after.as_str()),
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

fn apply(
    site: &Site,
    layout: &Layout,
    tx: &mut Tx,
    mod_links: &[layout::ModLink],
    disable_default: bool,
    ports_after: Option<&str>,
    check: &dyn Fn() -> Result<(), (String, String)>,
) -> anyhow::Result<()> {
    let present = site.state == State::Present;
    let site_file = layout.site_file(&site.name);
    let site_link = layout.site_link(&site.name);

    for l in mod_links {
        tx.link(&l.link, &l.target, &format!("enable module {}", l.module))?;
    }
    if let Some(text) = ports_after {
        tx.write(&layout.ports_conf(), text, true, "update ports.conf", None)?;
    }

    if !present {
        tx.unlink(&site_link, "disable site")?;
        tx.remove_file(&site_file, "remove site file")?;
        return final_check(tx, check);
    }

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
    if disable_default {
        tx.unlink(&layout.site_link("000-default"), DISABLE_DEFAULT)?;
    }
    if site.enabled {
        tx.link(
            &site_link,
            &Layout::site_link_target(&site.name),
            "enable site",
        )?;
    } else {
        tx.unlink(&site_link, "disable site")?;
    }
    let before = tx.config_changed;
    let wrote_vhost = tx.write(
        &site_file,
        &render::vhost(site),
        true,
        "write site file",
        Some(check),
    )?;
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

fn report(m: &mut Module, site: &Site, layout: &Layout, outcome: Outcome) -> anyhow::Result<()> {
    let Outcome {
        mut tx,
        modules_enabled,
        default_site_disabled,
        new_port,
    } = outcome;
    let present = site.state == State::Present;
    // The files are in place: a failing service step still reports them.
    m.set_changed(tx.changed);
    for d in tx.diffs.drain(..) {
        m.add_diff(d);
    }
    let mut service_action = "none";
    let active = service::is_active(SERVICE);
    if m.check_mode() {
        if present && !active {
            tx.actions.push(format!("start {SERVICE}"));
            tx.changed = true;
            service_action = "started";
        } else if tx.config_changed && active {
            tx.actions.push(format!("reload {SERVICE}"));
            service_action = "reloaded";
        }
    } else if present && (tx.config_changed || !active) {
        service_action = service::reload_or_start(SERVICE)?;
        tx.actions.push(format!("{service_action} {SERVICE}"));
        tx.changed = true;
    } else if tx.config_changed && active {
        service::run("systemctl", &["reload", SERVICE])?;
        service_action = "reloaded";
        tx.actions.push(format!("reloaded {SERVICE}"));
    }
    if let (Some(port), false) = (new_port, m.check_mode()) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sockets::port_listening(port) && Instant::now() < deadline {
            if !service::is_active(SERVICE) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !service::is_active(SERVICE) {
            let log = std::fs::read_to_string(format!("{LOG_DIR}/error.log")).unwrap_or_default();
            let mut tail: Vec<&str> = log.lines().rev().take(5).collect();
            tail.reverse();
            return Err(Fail::new(format!(
                "Apache stopped after the reload that opened port {port}; the configuration passed apachectl configtest, so look at {LOG_DIR}/error.log:\n{}",
                tail.join("\n")
            ))
            .with("actions", &tx.actions)
            .into());
        }
        if !sockets::port_listening(port) {
            m.warn(format!(
                "Apache was reloaded but nothing listens on port {port} yet: see {LOG_DIR}/error.log"
            ));
        }
    }

    m.set_changed(tx.changed);
    m.set("name", &site.name);
    m.set("state", if present { "present" } else { "absent" });
    m.set("site_file", layout.site_file(&site.name));
    m.set("enabled", present && site.enabled);
    m.set("document_root", &site.document_root);
    m.set("listen", site.listen.vhost_arg());
    m.set(
        "access_log",
        site.access_log.replace("${APACHE_LOG_DIR}", LOG_DIR),
    );
    m.set("modules_enabled", modules_enabled);
    m.set("default_site_disabled", default_site_disabled);
    m.set("service", service_action);
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
                    out.push((e.clone(), fs::read_to_string(&e).unwrap_or_default()));
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
}
