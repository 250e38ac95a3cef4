//! The module's work, in order: check the options, write keepalived.conf
//! (checked by `keepalived -t`), set up HAProxy tracking, reload or start
//! keepalived, report the facts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ansible_module::{service, ConfigFile, Diff, Fail, Module};

use crate::params::Params;
use crate::{checks, conf, facts, net, track};

const UNIT: &str = "keepalived.service";

pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    let check = m.check_mode();
    let host = net::host_addrs().map_err(Fail::new)?;

    let existing = match std::fs::read_to_string(&p.config_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Fail::new(format!("reading {}: {e}", p.config_path)).into()),
    };
    let parsed = conf::parse(existing.as_deref().unwrap_or(""));

    let instance = if p.present() {
        let inst = checks::instance(&p, &host).map_err(Fail::new)?;
        for other in parsed.blocks.iter().filter(|b| b.name != inst.name) {
            if other.vrid_and_interface() == (Some(inst.vrid), Some(inst.interface.clone())) {
                return Err(Fail::new(format!(
                    "virtual_router_id {} on {} is already used by vrrp_instance {} in {}: each \
                     instance on one network needs its own id",
                    inst.vrid, inst.interface, other.name, p.config_path
                ))
                .into());
            }
        }
        Some(inst)
    } else {
        None
    };

    // The config file, checked by keepalived before anything else changes.
    let blocks = conf::with_block(
        parsed.blocks.clone(),
        &p.name,
        instance.as_ref().map(conf::Instance::render),
    );
    let absent_already = !p.present() && !parsed.blocks.iter().any(|b| b.name == p.name);
    let written = if absent_already {
        false // nothing of ours to remove: leave the file (and anything else in it) alone
    } else {
        let text = conf::render_file(&blocks);
        if parsed.foreign && existing.as_deref() != Some(text.as_str()) {
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
        let out = ConfigFile::new(&p.config_path)
            .validate_with("keepalived -t -f %s")
            .mode(0o640)
            .backup(p.backup)
            .write(&text, check)
            .map_err(|e| Fail::new(e.to_string()))?;
        if let Some(b) = &out.backup_file {
            m.set("backup_file", b.display().to_string());
        }
        if out.changed {
            m.add_diff(out.diff);
        }
        out.changed
    };
    m.set_changed(written);

    // HAProxy tracking: after the config passed keepalived's check, before
    // keepalived (re)reads it, so it starts with the right value.
    if let Some(inst) = instance.as_ref().filter(|_| p.track_haproxy) {
        if let Some(file) = &inst.track_file {
            // One drop-in serves every instance tracking this file: it waits
            // until all their VIPs left, bounded for the slowest of them.
            let tracking: Vec<&conf::Block> = blocks.iter().filter(|b| b.tracks(file)).collect();
            let advert_int = tracking
                .iter()
                .filter_map(|b| b.advert_int())
                .fold(inst.advert_int, f64::max);
            let mut vips: Vec<std::net::IpAddr> = tracking.iter().flat_map(|b| b.vips()).collect();
            vips.sort();
            vips.dedup();
            let delay = p
                .track_haproxy_stop_delay
                .unwrap_or_else(|| track::default_stop_delay(advert_int));
            ensure_haproxy_tracking(m, file, &vips, delay, advert_int)?;
        }
    } else if let Some(file) = instance.as_ref().and_then(|i| i.track_file.as_deref()) {
        // A file the user feeds: its directory must exist or keepalived drops the tracker.
        let dir = std::path::Path::new(file)
            .parent()
            .unwrap_or(std::path::Path::new("/"));
        if !dir.is_dir() {
            m.set_changed(true);
            if !check {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Fail::new(format!("creating {}: {e}", dir.display())))?;
            }
        }
    }

    // The service: reloaded on a change (never restarted: a restart drops the
    // VIP and makes every peer re-elect), started when it does not run.
    let running = service::is_active(UNIT);
    let mut action = None;
    if p.present() && !running {
        action = Some("started");
    } else if written && running {
        action = Some("reloaded");
    }
    if let Some(a) = action {
        m.set_changed(true);
        if !check {
            let done = service::reload_or_start(UNIT)?;
            action = Some(done);
            if a == "started" {
                let enabled = service::run("systemctl", &["is-enabled", UNIT]).unwrap_or_default();
                if enabled.trim() != "enabled" {
                    let _ = service::run("systemctl", &["enable", UNIT]);
                }
            }
        }
        m.set("service", action);
    }

    report_facts(
        m,
        &p,
        instance.as_ref(),
        &blocks,
        action.is_some() && !check,
    );
    Ok(())
}

fn ensure_haproxy_tracking(
    m: &mut Module,
    file: &str,
    vips: &[std::net::IpAddr],
    stop_delay: f64,
    advert_int: f64,
) -> anyhow::Result<()> {
    let check = m.check_mode();
    if !track::haproxy_installed() {
        m.warn(
            "track_haproxy: haproxy.service is not installed; this node stays in FAULT \
             (never holds the VIP) until HAProxy runs",
        );
    }
    if stop_delay < 3.5 * advert_int {
        m.warn(format!(
            "track_haproxy_stop_delay {stop_delay}s is shorter than a handover (about 3.5 x \
             advert_int {advert_int}s): a planned HAProxy stop may drop requests"
        ));
    }
    let dropin = ConfigFile::new(track::DROPIN_PATH)
        .write(&track::dropin(file, vips, stop_delay), check)
        .map_err(|e| Fail::new(e.to_string()))?;
    if dropin.changed {
        m.set_changed(true);
        m.add_diff(dropin.diff);
        if !check {
            service::run("systemctl", &["daemon-reload"])?;
        }
    }
    let tmpfiles = ConfigFile::new(track::TMPFILES_PATH)
        .write(&track::tmpfiles(file), check)
        .map_err(|e| Fail::new(e.to_string()))?;
    if tmpfiles.changed {
        m.set_changed(true);
        m.add_diff(tmpfiles.diff);
    }
    // The file must match HAProxy now: ExecStartPost ran (or not) before the
    // drop-in existed.
    let wanted = track::wanted_value();
    let current = std::fs::read_to_string(file).ok();
    if current.as_deref().map(str::trim) != Some(wanted) {
        m.set_changed(true);
        m.add_diff(Diff::new(
            file,
            current.clone().unwrap_or_default(),
            format!("{wanted}\n"),
        ));
        if !check {
            let dir = std::path::Path::new(file)
                .parent()
                .unwrap_or(std::path::Path::new("/"));
            std::fs::create_dir_all(dir)
                .and_then(|()| std::fs::write(file, format!("{wanted}\n")))
                .map_err(|e| Fail::new(format!("writing {file}: {e}")))?;
        }
    }
    m.set("haproxy_running", wanted == "0");
    Ok(())
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
    m.set("state", &p.state);
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
