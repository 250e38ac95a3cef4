//! `dns_zone`: a zone, its reverse zones and the Knot DNS configuration that
//! serves them. Each zone file is checked by `kzonecheck` and knot.conf by
//! `knotc conf-check` before an atomic rename; a running server reloads only
//! what changed (never a restart) and the task returns once the new data is
//! answered. A zone whose records did not change keeps its file and its
//! serial; a changed one gets the later of its serial + 1 and `serial` (the
//! time of the run by default), so servers updated in one run agree.

mod knot;
mod params;
pub use params::SPEC;
mod zone;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use ansible_module::config_file::read_nofollow;
use ansible_module::{ConfigFile, Fail, Module, ModuleSpec};

use crate::params::Params;
use crate::zone::Zone;

/// The first line of every zone file the module writes: only such files are
/// removed when their zone is no longer wanted.
const MANAGED: &str = "; Managed by Ansible (dns_zone)";

pub fn spec() -> ModuleSpec {
    ModuleSpec::from_json(params::SPEC)
}

fn fail(e: impl ToString) -> Fail {
    Fail::new(e.to_string())
}

pub fn run(m: &mut Module) -> anyhow::Result<()> {
    let p: Params = m.parse()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let wanted = p.check(now).map_err(Fail::new)?;
    if !knot::installed() {
        return Err(Fail::new(
            "dns_zone serves zones with Knot DNS, and knot.service is not installed here \
             (Debian packages: knot, and knot-dnssecutils for the zone check)",
        )
        .into());
    }
    let check = m.check_mode();
    let zone_dir = PathBuf::from(&p.zone_dir);
    if !check && !zone_dir.is_dir() {
        std::fs::create_dir_all(&zone_dir)
            .map_err(|e| fail(format!("creating {}: {e}", p.zone_dir)))?;
    }

    // Zone files first: the configuration that names a new zone goes live only
    // once its file is there.
    let mut changed_zones = Vec::new();
    let mut serials = BTreeMap::new();
    for z in &wanted.zones {
        let (serial, changed) = write_zone(m, &zone_dir, z, wanted.serial_floor, check)?;
        serials.insert(z.origin.bare().to_string(), serial);
        if changed {
            changed_zones.push(&z.origin);
        }
    }
    let config = ConfigFile::new(&p.config_path)
        .mode(0o644)
        .validate_with("knotc -c %s conf-check")
        .write(&wanted.server.render(), check)
        .map_err(fail)?;
    if config.changed {
        m.add_diff(config.diff);
    }
    let stale = stale_zone_files(&zone_dir, &wanted.zones);
    let changed = config.changed || !changed_zones.is_empty() || !stale.is_empty();
    m.set_changed(changed);

    if !check && p.reload && (changed || !ansible_module::service::is_active(knot::UNIT)) {
        let did = knot::apply(config.changed, &changed_zones)?;
        m.set_changed(changed || did == "started");
        m.set("server", did);
    }
    // The server the zones are for runs at boot too: one module run instead
    // of a separate `systemd_service` task on every name server.
    if p.reload && !knot::enabled() {
        m.set_changed(true);
        m.set("enabled", true);
        if !check {
            knot::enable()?;
        }
    }
    for file in &stale {
        if !check {
            ConfigFile::new(file).remove(false).map_err(fail)?;
        }
    }
    if !check && p.reload {
        for z in &wanted.zones {
            let loaded = knot::loaded_serial(&z.origin);
            if loaded != serials.get(z.origin.bare()).copied() {
                return Err(Fail::new(format!(
                    "Knot DNS has not loaded zone {} as written (serial {:?}, loaded {:?}); see `journalctl -u knot`",
                    z.origin,
                    serials.get(z.origin.bare()),
                    loaded
                ))
                .into());
            }
        }
    }
    m.set(
        "zones",
        wanted
            .zones
            .iter()
            .map(|z| z.origin.bare().to_string())
            .collect::<Vec<_>>(),
    );
    m.set("serials", serials);
    m.set(
        "removed_files",
        stale
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>(),
    );
    Ok(())
}

/// Writes one zone file (checked by `kzonecheck`); returns its serial and
/// whether it changed. Unchanged records keep the file and its serial.
fn write_zone(
    m: &mut Module,
    dir: &Path,
    z: &Zone,
    floor: u32,
    check: bool,
) -> Result<(u32, bool), Fail> {
    let file = ConfigFile::new(dir.join(z.file_name()))
        .mode(0o644)
        .validate_with(format!("kzonecheck -o {} %s", z.origin));
    let old = file
        .read_current()
        .map_err(fail)?
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let old_serial = old.as_deref().and_then(zone::serial_of);
    let serial = match (old_serial, old.as_deref()) {
        (Some(s), Some(text)) if z.render(s) == text => s,
        _ => zone::next_serial(old_serial, floor),
    };
    let out = file.write(&z.render(serial), check).map_err(fail)?;
    if out.changed {
        m.add_diff(out.diff);
    }
    Ok((serial, out.changed))
}

/// Zone files this module wrote in `dir` for zones no longer wanted.
fn stale_zone_files(dir: &Path, wanted: &[Zone]) -> Vec<PathBuf> {
    let keep: Vec<String> = wanted.iter().map(Zone::file_name).collect();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut stale: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".zone") && !keep.iter().any(|k| k == n))
        })
        .filter(|p| {
            read_nofollow(p)
                .ok()
                .flatten()
                .is_some_and(|b| b.starts_with(MANAGED.as_bytes()))
        })
        .collect();
    stale.sort();
    stale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_parses() {
        let u = spec().usage("dns_zone");
        assert!(u.contains("records") && u.contains("nameservers"), "{u}");
    }

    #[test]
    fn zone_files_start_with_the_managed_line() {
        let p: Params = serde_json::from_value(serde_json::json!({
            "zone": "z.internal", "state": "present", "records": [],
            "nameservers": ["ns.example."], "ttl": 300,
            "soa": {"contact": "hostmaster", "refresh": 1, "retry": 1, "expire": 1, "negative_ttl": 1},
            "serial": null, "reverse": true, "listen": ["0.0.0.0"], "port": 53,
            "zone_dir": "/etc/knot/zones", "config_path": "/etc/knot/knot.conf", "reload": true
        }))
        .unwrap();
        let w = p.check(1).unwrap();
        assert!(w.zones[0].render(1).starts_with(MANAGED));
    }

    #[test]
    fn only_managed_files_of_unwanted_zones_are_stale() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        write("old.internal.zone", &format!("{MANAGED}: x\n"));
        write("hand.internal.zone", "; mine\n");
        write("notes.txt", &format!("{MANAGED}\n"));
        let stale = stale_zone_files(dir.path(), &[]);
        assert_eq!(stale, vec![dir.path().join("old.internal.zone")]);
    }
}
