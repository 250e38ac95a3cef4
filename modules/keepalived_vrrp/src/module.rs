//! The module's work, in order: check the options (every service to track
//! installed), write keepalived.conf (checked by `keepalived -t`), set up
//! the tracking of HAProxy and `track_services` and remove what tracked
//! services no longer listed, reload or start keepalived, report the facts.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::net::IpAddr;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use ansible_module::{service, ConfigFile, Diff, Fail, Module};

use crate::params::Params;
use crate::track::Service;
use crate::{checks, conf, facts, net, track};

const UNIT: &str = "keepalived.service";

/// How long one `systemctl` call (reload, start, enable, daemon-reload) may
/// take; `systemctl is-active` has the protocol crate's 30 s.
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

fn systemctl(args: &[&str]) -> Result<String, Fail> {
    service::run_bounded("systemctl", args, SYSTEMCTL_TIMEOUT)
}

/// Reloads keepalived when it runs (never restarts it), else starts it.
fn reload_or_start(running: bool) -> Result<&'static str, Fail> {
    if running {
        systemctl(&["reload", UNIT])?;
        Ok("reloaded")
    } else {
        systemctl(&["start", UNIT])?;
        Ok("started")
    }
}

pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    checks::common(&p).map_err(Fail::new)?;
    let host = net::host_addrs().map_err(Fail::new)?;
    let current = read_current(m, &p)?;
    let instance = if p.present() {
        Some(checked_instance(&p, &host, &current.parsed)?)
    } else {
        None
    };

    // The config file, checked by keepalived before anything else changes.
    let blocks = conf::with_block(
        current.parsed.blocks.clone(),
        &p.name,
        instance.as_ref().map(conf::Instance::render),
    );
    let global_lines = checks::global_defs(&p)
        .map_err(Fail::new)?
        .unwrap_or_else(|| current.parsed.global_defs.clone());
    let text = conf::render_file(&blocks, &global_lines);
    let file = config_file(&p, &text);
    let written = write_config(m, &p, &current, &file, &text)?;
    m.set_changed(written);

    // Tracking: after the config passed keepalived's check, before
    // keepalived (re)reads it, so it starts with the right values.
    apply_tracking(m, &p, instance.as_ref(), &blocks)?;

    let action = ensure_service(m, &p, &file, &current, written)?;
    ensure_enabled(m, &p)?;
    let just_changed = action.is_some() && !m.check_mode();
    report_facts(m, &p, instance.as_ref(), &blocks, just_changed);
    Ok(())
}

/// The config file as it is before this task.
struct Current {
    /// Its bytes, for a rollback; `None` when there is no file.
    bytes: Option<Vec<u8>>,
    text: Option<String>,
    parsed: conf::Parsed,
}

/// Reads the config file (as ConfigFile writes: never through a link
/// another user controls) and hides every password in it.
fn read_current(m: &mut Module, p: &Params) -> Result<Current, Fail> {
    let bytes = ConfigFile::new(&p.config_path)
        .read_current()
        .map_err(|e| Fail::new(e.to_string()))?;
    let text = bytes
        .as_deref()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    // Other instances' passwords (blocks of other tasks, hand-written text)
    // are secrets like ours: masked in the diff, messages and warnings.
    for secret in conf::auth_passes(text.as_deref().unwrap_or("")) {
        m.hide(secret);
    }
    let parsed = conf::parse(text.as_deref().unwrap_or(""));
    Ok(Current {
        bytes,
        text,
        parsed,
    })
}

/// The instance from the options, checked against the other instances in
/// the file and against what tracking it needs from the host.
fn checked_instance(
    p: &Params,
    host: &[net::IfAddr],
    parsed: &conf::Parsed,
) -> Result<conf::Instance, Fail> {
    let mut inst = checks::instance(p, host).map_err(Fail::new)?;
    if p.keep_unicast_peers {
        keep_current_peers(&mut inst, host, parsed);
    }
    for other in parsed.blocks.iter().filter(|b| b.name != inst.name) {
        if other.vrid_and_interface() == (Some(inst.vrid), Some(inst.interface.clone())) {
            return Err(Fail::new(format!(
                "virtual_router_id {} on {} is already used by vrrp_instance {} in {}: each \
                 instance on one network needs its own id",
                inst.vrid, inst.interface, other.name, p.config_path
            )));
        }
    }
    check_tracking(p, &inst)?;
    Ok(inst)
}

/// Adds the peers the instance's block in the file lists that the options
/// do not (never this host's own addresses nor a virtual one).
fn keep_current_peers(inst: &mut conf::Instance, host: &[net::IfAddr], parsed: &conf::Parsed) {
    let Some(block) = parsed.blocks.iter().find(|b| b.name == inst.name) else {
        return;
    };
    for peer in block.unicast_peers() {
        let own = host.iter().any(|a| a.addr == peer);
        let virtual_address = inst.vips.iter().any(|v| v.addr == peer);
        if !own && !virtual_address && !inst.unicast_peer.contains(&peer) {
            inst.unicast_peer.push(peer);
        }
    }
}

/// How the config file is written: checked by `keepalived -t`; a file that
/// holds a password is 0640 whatever mode it had.
fn config_file(p: &Params, text: &str) -> ConfigFile<'static> {
    let file = ConfigFile::new(&p.config_path)
        .validate_with("keepalived -t -f %s")
        .backup(p.backup);
    if conf::auth_passes(text).is_empty() {
        file.mode(0o640)
    } else {
        file.private(0o640)
    }
}

/// Writes the config file (check mode: only says what would change);
/// returns whether it changed.
fn write_config(
    m: &mut Module,
    p: &Params,
    current: &Current,
    file: &ConfigFile,
    text: &str,
) -> Result<bool, Fail> {
    if !p.present() && !current.parsed.blocks.iter().any(|b| b.name == p.name) {
        // Nothing of ours to remove: leave the file (and anything else in it) alone.
        return Ok(false);
    }
    if current.parsed.foreign && current.text.as_deref() != Some(text) {
        m.warn(format!(
            "{} held configuration not written by this module; it was replaced{}",
            p.config_path,
            if p.backup {
                " (see backup_file)"
            } else {
                " (set backup: true to keep a copy)"
            }
        ));
    }
    let out = file
        .write(text, m.check_mode())
        .map_err(|e| Fail::new(e.to_string()))?;
    if let Some(b) = &out.backup_file {
        m.set("backup_file", b.display().to_string());
    }
    if out.changed {
        m.add_diff(out.diff);
    }
    Ok(out.changed)
}

/// This instance's tracking set up, that of services no instance in the file
/// tracks any more removed (their drop-in goes), systemd told.
fn apply_tracking(
    m: &mut Module,
    p: &Params,
    instance: Option<&conf::Instance>,
    blocks: &[conf::Block],
) -> Result<(), Fail> {
    let mut dropins_changed = match instance {
        Some(inst) => set_up_tracking(m, p, inst, blocks)?,
        None => false,
    };
    dropins_changed |= remove_stale_tracking(m, blocks)?;
    if dropins_changed && !m.check_mode() {
        systemctl(&["daemon-reload"])?;
    }
    Ok(())
}

/// The service: reloaded on a change (never restarted: a restart drops the
/// VIP and makes every peer re-elect), started when it does not run.
/// Returns what was (or, in check mode, would be) done.
fn ensure_service(
    m: &mut Module,
    p: &Params,
    file: &ConfigFile,
    current: &Current,
    written: bool,
) -> Result<Option<&'static str>, Fail> {
    let running = service::is_active(UNIT);
    let mut action = None;
    if p.present() && !running {
        action = Some("started");
    } else if written && running {
        action = Some("reloaded");
    }
    if action.is_none() {
        return Ok(None);
    }
    m.set_changed(true);
    if !m.check_mode() {
        let done = match reload_or_start(running) {
            Ok(done) => done,
            // keepalived -t passed, yet the service would not take the
            // file: put the old one back so the next reload or boot
            // does not trip over it.
            Err(cause) if written => {
                return Err(roll_back(file, current.bytes.as_deref(), running, cause))
            }
            Err(cause) => return Err(cause),
        };
        action = Some(done);
    }
    m.set("service", action);
    Ok(action)
}

/// keepalived enabled at boot whenever an instance is present, so that a
/// play needs no separate `systemd_service` task (a second module run per
/// load balancer) for it. `systemctl is-enabled` exits non-zero for
/// anything but enabled, which reads as "not enabled".
fn ensure_enabled(m: &mut Module, p: &Params) -> Result<(), Fail> {
    if !p.present() {
        return Ok(());
    }
    let enabled = systemctl(&["is-enabled", UNIT]).unwrap_or_default();
    if enabled.trim() == "enabled" {
        return Ok(());
    }
    m.set_changed(true);
    m.set("enabled", true);
    if !m.check_mode() {
        systemctl(&["enable", UNIT])?;
    }
    Ok(())
}

/// Puts `old` back after keepalived refused the new file, reloads it with
/// the old one if it ran before, and says what happened.
fn roll_back(file: &ConfigFile, old: Option<&[u8]>, was_running: bool, cause: Fail) -> Fail {
    let path = file.path.display().to_string();
    let what = if was_running { "reload" } else { "start" };
    let head = format!(
        "keepalived did not {what} with the new {path} (it passed keepalived -t): {}",
        cause.msg
    );
    let tail = match file.restore(old) {
        Err(e) => format!("putting the previous file back failed too: {e}"),
        Ok(()) if !was_running => {
            "the previous file was put back; keepalived was not running and stays stopped".into()
        }
        Ok(()) => match reload_or_start(service::is_active(UNIT)) {
            Ok(done) => format!("the previous file was put back and keepalived {done} with it"),
            Err(e) => format!(
                "the previous file was put back, but keepalived failed with it too: {}",
                e.msg
            ),
        },
    };
    let mut fail = Fail::new(format!("{head}; {tail}"));
    fail.extra = cause.extra;
    fail
}

/// A tracked file is written as root, by this module and by the drop-in's
/// shell on every start and stop of its service: it must be a regular file holding
/// a number (or nothing yet), in a directory no other user can change, so
/// that no value of track_file makes root overwrite a file that is not ours.
fn check_track_file(option: &str, file: &str) -> Result<(), Fail> {
    let refuse = |why: String| {
        Fail::new(format!(
            "{option} {file}: {why}; point track_file at a file of its own (default {})",
            crate::params::DEFAULT_TRACK_FILE
        ))
    };
    let mut dir = Path::new(file).parent();
    while let Some(d) = dir {
        match fs::metadata(d) {
            Ok(meta) => {
                let others = meta.uid() != 0
                    || meta.mode() & 0o002 != 0
                    || (meta.mode() & 0o020 != 0 && meta.gid() != 0);
                if others {
                    return Err(refuse(format!(
                        "{} can be changed by users other than root (mode {:o}, owner {})",
                        d.display(),
                        meta.mode() & 0o7777,
                        meta.uid()
                    )));
                }
                break;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => dir = d.parent(),
            Err(e) => return Err(refuse(format!("{}: {e}", d.display()))),
        }
    }
    match fs::symlink_metadata(file) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(refuse(e.to_string())),
        Ok(meta) if !meta.is_file() => Err(refuse("it exists and is not a regular file".into())),
        Ok(meta) if meta.len() > 32 => Err(refuse("it holds something other than a number".into())),
        Ok(_) => {
            let text = fs::read_to_string(file).unwrap_or_else(|_| "x".into());
            let t = text.trim();
            if t.is_empty() || t.parse::<i64>().is_ok() {
                Ok(())
            } else {
                Err(refuse("it holds something other than a number".into()))
            }
        }
    }
}

/// Writes the tracked file in place (keepalived watches it with inotify),
/// never through a link.
fn write_track_file(file: &str, value: &str) -> Result<(), Fail> {
    let dir = Path::new(file).parent().unwrap_or(Path::new("/"));
    fs::create_dir_all(dir)
        .and_then(|()| {
            fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .custom_flags(libc::O_NOFOLLOW)
                .open(file)
        })
        .and_then(|mut f| f.write_all(format!("{value}\n").as_bytes()))
        .map_err(|e| Fail::new(format!("writing {file}: {e}")))
}

/// A service this instance tracks, and the file keepalived reads for it.
struct TrackedFile<'a> {
    service: Service,
    file: &'a str,
}

/// The services this instance tracks, each with its file: HAProxy (with
/// `track_haproxy`), then `track_services`.
fn tracked<'a>(p: &Params, inst: &'a conf::Instance) -> Vec<TrackedFile<'a>> {
    let mut out = vec![];
    if let Some(file) = inst.track_file.as_deref().filter(|_| p.track_haproxy) {
        out.push(TrackedFile {
            service: Service::haproxy(),
            file,
        });
    }
    out.extend(inst.track_services.iter().map(|t| TrackedFile {
        service: t.service.clone(),
        file: t.file.as_str(),
    }));
    out
}

/// Before anything is written: every tracked file is one root may write,
/// and every service in `track_services` is installed (one that is not
/// would keep the node in FAULT for good).
fn check_tracking(p: &Params, inst: &conf::Instance) -> Result<(), Fail> {
    for TrackedFile { service, file } in tracked(p, inst) {
        if service.is_haproxy() {
            check_track_file("track_file", file)?;
            continue;
        }
        check_track_file(&format!("track_services {}:", service.unit()), file)?;
        let state = service.load_state();
        if state != "loaded" {
            return Err(Fail::new(format!(
                "track_services: {} is not installed (systemd LoadState: {state}); this node \
                 would stay in FAULT (never hold the VIP): install it first, or remove it from \
                 track_services",
                service.unit()
            )));
        }
    }
    Ok(())
}

/// Every tracked service's drop-in, tmpfiles.d entry and file, and the
/// directory of a file the user feeds; reports whether each service runs.
/// Returns whether a drop-in changed (systemd must re-read it).
fn set_up_tracking(
    m: &mut Module,
    p: &Params,
    inst: &conf::Instance,
    blocks: &[conf::Block],
) -> Result<bool, Fail> {
    if let Some(file) = inst.track_file.as_deref().filter(|_| !p.track_haproxy) {
        // A file the user feeds: its directory must exist or keepalived
        // drops the tracker.
        ensure_dir_of(m, file)?;
    }
    let mut dropins_changed = false;
    let mut services = BTreeMap::new();
    for TrackedFile { service, file } in tracked(p, inst) {
        let shared = sharers(blocks, file, inst.advert_int);
        let setup = Tracking {
            service: &service,
            file,
            vips: &shared.vips,
            stop_delay: p
                .track_haproxy_stop_delay
                .unwrap_or_else(|| track::default_stop_delay(shared.advert_int)),
            advert_int: shared.advert_int,
        };
        let state = ensure_tracking(m, &setup)?;
        dropins_changed |= state.dropin_changed;
        if service.is_haproxy() {
            m.set("haproxy_running", state.running);
        } else {
            services.insert(
                service.unit().to_string(),
                serde_json::json!({"file": file, "running": state.running}),
            );
        }
    }
    if !services.is_empty() {
        m.set("tracked_services", services);
    }
    Ok(dropins_changed)
}

/// The directory of a tracked file the user feeds, made when missing.
fn ensure_dir_of(m: &mut Module, file: &str) -> Result<(), Fail> {
    let dir = Path::new(file).parent().unwrap_or(Path::new("/"));
    if !dir.is_dir() {
        m.set_changed(true);
        if !m.check_mode() {
            fs::create_dir_all(dir)
                .map_err(|e| Fail::new(format!("creating {}: {e}", dir.display())))?;
        }
    }
    Ok(())
}

/// What the instances that track one file have in common: one drop-in
/// serves them all, so it waits until all their VIPs left, bounded for the
/// slowest.
struct Sharers {
    /// Every VIP of theirs, sorted.
    vips: Vec<IpAddr>,
    /// The longest advertisement interval.
    advert_int: f64,
}

/// The instances that track `file` (`own_advert_int` is this task's).
fn sharers(blocks: &[conf::Block], file: &str, own_advert_int: f64) -> Sharers {
    let tracking: Vec<&conf::Block> = blocks.iter().filter(|b| b.tracks(file)).collect();
    let advert_int = tracking
        .iter()
        .filter_map(|b| b.advert_int())
        .fold(own_advert_int, f64::max);
    let mut vips: Vec<IpAddr> = tracking.iter().flat_map(|b| b.vips()).collect();
    vips.sort();
    vips.dedup();
    Sharers { vips, advert_int }
}

/// What one tracked service's drop-in is made of.
struct Tracking<'a> {
    service: &'a Service,
    file: &'a str,
    vips: &'a [IpAddr],
    stop_delay: f64,
    advert_int: f64,
}

/// What `ensure_tracking` found and did.
struct TrackingState {
    /// The service runs (its tracked file says up).
    running: bool,
    /// The drop-in changed: systemd must re-read it.
    dropin_changed: bool,
}

/// The service's drop-in, tmpfiles.d entry and tracked file as they must be.
fn ensure_tracking(m: &mut Module, t: &Tracking) -> Result<TrackingState, Fail> {
    let check = m.check_mode();
    let (service, file) = (t.service, t.file);
    let tmpfiles_text = service.tmpfiles(file).map_err(Fail::new)?;
    if service.is_haproxy() {
        if !service.installed() {
            m.warn(
                "track_haproxy: haproxy.service is not installed; this node stays in FAULT \
                 (never holds the VIP) until HAProxy runs",
            );
        }
        if t.stop_delay < 3.5 * t.advert_int {
            m.warn(format!(
                "track_haproxy_stop_delay {}s is shorter than a handover (about 3.5 x \
                 advert_int {}s): a planned HAProxy stop may drop requests",
                t.stop_delay, t.advert_int
            ));
        }
    } else {
        if t.stop_delay < 3.5 * t.advert_int {
            m.warn(format!(
                "track_haproxy_stop_delay {}s is shorter than a handover (about 3.5 x \
                 advert_int {}s): a planned stop of {} may drop requests",
                t.stop_delay,
                t.advert_int,
                service.unit()
            ));
        }
        if service.own_exec_stop(file) {
            m.warn(format!(
                "track_services: {0} has ExecStop commands of its own, which systemd runs \
                 before the tracking drop-in's: on a planned stop, {0} stops serving before \
                 the VIP left this node",
                service.unit()
            ));
        }
    }
    let dropin = ConfigFile::new(service.dropin_path())
        .write(&service.dropin(file, t.vips, t.stop_delay), check)
        .map_err(|e| Fail::new(e.to_string()))?;
    if dropin.changed {
        m.set_changed(true);
        m.add_diff(dropin.diff);
    }
    let tmpfiles = ConfigFile::new(service.tmpfiles_path())
        .write(&tmpfiles_text, check)
        .map_err(|e| Fail::new(e.to_string()))?;
    if tmpfiles.changed {
        m.set_changed(true);
        m.add_diff(tmpfiles.diff);
    }
    // The file must match the service now: ExecStartPost ran (or not)
    // before the drop-in existed.
    let wanted = service.wanted_value();
    let current = fs::read_to_string(file).ok();
    if current.as_deref().map(str::trim) != Some(wanted) {
        m.set_changed(true);
        m.add_diff(Diff::new(
            file,
            current.clone().unwrap_or_default(),
            format!("{wanted}\n"),
        ));
        if !check {
            write_track_file(file, wanted)?;
        }
    }
    Ok(TrackingState {
        running: wanted == track::UP,
        dropin_changed: dropin.changed,
    })
}

/// The services whose tracking drop-in (written by this module) is in
/// `systemd_dir` although no block tracks them. haproxy.service's stays
/// (`checks::service` refuses its name; without a tracking instance it only
/// writes a file nobody reads).
fn stale_services(systemd_dir: &Path, blocks: &[conf::Block]) -> Vec<Service> {
    let Ok(entries) = fs::read_dir(systemd_dir) else {
        return vec![];
    };
    let mut out: Vec<Service> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let unit = name.strip_suffix(".d")?;
            // Only names this module could have written.
            let service = checks::service(unit).ok()?;
            (service.unit() == unit).then_some(service)
        })
        .filter(|s| !blocks.iter().any(|b| b.tracks_service(s)))
        .filter(|s| {
            let dropin = systemd_dir
                .join(format!("{}.d", s.unit()))
                .join(track::DROPIN_NAME);
            read_text(&dropin).is_some_and(|text| text.starts_with(track::MANAGED))
        })
        .collect();
    out.sort();
    out
}

/// A file's text, never read through a link.
fn read_text(path: &Path) -> Option<String> {
    ConfigFile::new(path)
        .read_current()
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Removes the drop-in and tmpfiles.d entry of every service no instance
/// tracks any more; returns whether a drop-in went (systemd must re-read).
/// The tracked file in /run stays until the next boot: keepalived may still
/// watch it until it reloads.
fn remove_stale_tracking(m: &mut Module, blocks: &[conf::Block]) -> Result<bool, Fail> {
    let check = m.check_mode();
    let mut removed = false;
    for service in stale_services(Path::new(track::SYSTEMD_DIR), blocks) {
        for path in [service.dropin_path(), service.tmpfiles_path()] {
            let out = ConfigFile::new(&path)
                .remove(check)
                .map_err(|e| Fail::new(e.to_string()))?;
            if out.changed {
                m.set_changed(true);
                m.add_diff(out.diff);
                removed = true;
            }
        }
        if !check {
            // Only when empty: the directory may hold others' drop-ins.
            let _ = fs::remove_dir(format!("{}/{}.d", track::SYSTEMD_DIR, service.unit()));
        }
    }
    Ok(removed)
}

fn report_facts(
    m: &mut Module,
    p: &Params,
    instance: Option<&conf::Instance>,
    blocks: &[conf::Block],
    just_changed: bool,
) {
    let local: Vec<IpAddr> = net::host_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|a| a.addr)
        .collect();
    if just_changed {
        // keepalived re-reads its config asynchronously after SIGHUP.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut instances: BTreeMap<String, facts::InstanceFacts> =
        facts::running_instances().unwrap_or_default();
    // Instances in the file that keepalived does not report (not running, not
    // reloaded yet in check mode).
    let running = facts::keepalived_pid().is_some();
    for b in blocks {
        instances.entry(b.name.clone()).or_insert_with(|| {
            let (vrid, iface) = b.vrid_and_interface();
            facts::InstanceFacts {
                state: if running { "UNKNOWN" } else { "STOPPED" }.into(),
                virtual_router_id: vrid.map(u64::from),
                priority: None,
                effective_priority: None,
                interface: iface,
                virtual_ipaddress: vips_of_block(&b.text),
                vip_holder: false,
            }
        });
    }
    facts::mark_holders(&mut instances, &local);
    let holder = match instance {
        Some(inst) => inst.vips.iter().all(|v| local.contains(&v.addr)),
        None => false,
    };
    if let Some(inst) = instance {
        m.set("interface", &inst.interface);
        m.set(
            "virtual_ipaddress",
            inst.vips
                .iter()
                .map(|v| format!("{}/{}", v.addr, v.prefix))
                .collect::<Vec<_>>(),
        );
        m.set("track_file", &inst.track_file);
    }
    m.set("name", &p.name);
    m.set("state", p.state.as_str());
    m.set("vip_holder", holder);
    m.set("instances", instances);
    m.set("config_path", &p.config_path);
}

fn vips_of_block(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut inside = false;
    for l in text.lines().map(str::trim) {
        if l.starts_with("virtual_ipaddress {") {
            inside = true;
        } else if inside && l == "}" {
            inside = false;
        } else if inside {
            if let Some(w) = l.split_whitespace().next() {
                out.push(w.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_tracked_file_must_be_ours_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().display().to_string();
        let we_are_root = fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        fs::write(dir.path().join("number"), "254\n").expect("write");
        fs::write(
            dir.path().join("passwd"),
            "root:x:0:0:root:/root:/bin/bash\n",
        )
        .expect("write");
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).expect("link");
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        if we_are_root {
            for ok in ["number", "missing", "new/dir/file"] {
                let f = format!("{root}/{ok}");
                assert!(check_track_file("track_file", &f).is_ok(), "{f}");
            }
        }
        for (bad, why) in [
            ("passwd", "holds something other than a number"),
            ("link", "is not a regular file"),
            ("open/file", "can be changed by users other than root"),
            ("open/new/file", "can be changed by users other than root"),
        ] {
            let f = format!("{root}/{bad}");
            let e = check_track_file("track_file", &f).expect_err(bad);
            assert!(
                e.msg.starts_with(&format!("track_file {f}: ")) && e.msg.contains(why),
                "{}",
                e.msg
            );
        }
        // Written in place, never through a link.
        if we_are_root {
            write_track_file(&format!("{root}/number"), "0").expect("write");
            assert_eq!(
                fs::read_to_string(dir.path().join("number")).expect("read"),
                "0\n"
            );
        }
        assert!(write_track_file(&format!("{root}/link"), "0").is_err());
    }

    /// Drop-ins this module wrote for services no block tracks are stale;
    /// HAProxy's, others' and those of tracked services are not.
    #[test]
    fn stale_tracking_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dropin = |unit: &str, text: &str| {
            let d = dir.path().join(format!("{unit}.d"));
            fs::create_dir_all(&d).expect("mkdir");
            fs::write(d.join(track::DROPIN_NAME), text).expect("write");
        };
        let ours = format!("{}: tells keepalived ...\n", track::MANAGED);
        for unit in [
            "knot.service",
            "apache2.service",
            "haproxy.service",
            r"a\x2db.service",
        ] {
            dropin(unit, &ours);
        }
        dropin("other.service", "[Service]\nExecStop=/bin/true\n");
        fs::create_dir_all(dir.path().join("empty.service.d")).expect("mkdir");
        fs::create_dir_all(dir.path().join("knot.socket.d")).expect("mkdir");
        let mut inst = crate::checks::tests::params(serde_json::json!({
            "track_services": ["knot"]}));
        inst.name = "VI_1".into();
        let i = crate::checks::instance(&inst, &crate::checks::tests::host()).expect("ok");
        let blocks = conf::with_block(vec![], "VI_1", Some(i.render()));
        let stale: Vec<String> = stale_services(dir.path(), &blocks)
            .iter()
            .map(|s| s.unit().to_string())
            .collect();
        assert_eq!(stale, [r"a\x2db.service", "apache2.service"]);
        // No instance left: every service's, still not HAProxy's.
        let stale = stale_services(dir.path(), &[]);
        assert_eq!(stale.len(), 3);
        assert!(!stale.iter().any(Service::is_haproxy));
    }
}
