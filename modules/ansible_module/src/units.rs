//! The systemd side of a module's own service besides reloads: the service
//! enabled at boot, and the units that must not run beside it stopped and
//! disabled (apache_site's `unneeded_services`, haproxy_backend's
//! `conflicting_services`), so that a play needs no `systemd_service` tasks
//! (each a Python module run per host, several times the cost of a binary
//! module's run) around the module.

use std::time::Duration;

use crate::{service, syntax, Fail};

/// How long one `systemctl` call may take: a stop waits for the service's
/// own stop timeout (90 s by default).
const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(120);

/// A unit name as a module's options may give it: it goes into
/// `systemctl` argument lists, so only systemd's characters (letters,
/// digits and `: - _ . \ @`), not starting with `-` (an option to
/// `systemctl`) or `.`, at most 255 characters.
pub fn unit_name(option: &str, value: &str) -> Result<(), Fail> {
    if value.is_empty() {
        return Err(Fail::new(format!("{option} must not hold an empty name")));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
    {
        return Err(Fail::new(format!(
            "{option} must not contain {} (a systemd unit name holds only letters, digits and : - _ . \\ @), got: {value:?}",
            syntax::show(c)
        )));
    }
    if value.starts_with(['-', '.']) || value.len() > 255 {
        return Err(Fail::new(format!(
            "{option} entry {value:?} is not a unit name: at most 255 characters, not starting with '-' or '.'"
        )));
    }
    Ok(())
}

/// `name` as systemd names the service (`haproxy` is `haproxy.service`).
pub fn service_unit(name: &str) -> String {
    if name.contains('.') {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

/// What systemd says about one unit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnitState {
    /// `loaded`, `not-found`, `masked`, ...
    pub load: String,
    /// `active`, `inactive`, `failed`, `activating`, ...
    pub active: String,
    /// `enabled`, `disabled`, `static`, `masked`, or empty for no unit file.
    pub file: String,
}

impl UnitState {
    pub fn exists(&self) -> bool {
        self.load != "not-found" && !self.load.is_empty()
    }

    /// Running, or on its way up or down: a stop is still needed.
    pub fn running(&self) -> bool {
        !matches!(self.active.as_str(), "inactive" | "failed" | "")
    }

    /// Started at boot by its own install section.
    pub fn enabled(&self) -> bool {
        matches!(self.file.as_str(), "enabled" | "enabled-runtime")
    }
}

/// `systemctl show` output for several units: one block of `Key=value`
/// lines per unit, in the order asked, blocks separated by an empty line.
pub fn parse_show(out: &str, count: usize) -> Result<Vec<UnitState>, Fail> {
    let states: Vec<UnitState> = out
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            let mut s = UnitState::default();
            for (k, v) in block.lines().filter_map(|l| l.split_once('=')) {
                match k {
                    "LoadState" => s.load = v.to_string(),
                    "ActiveState" => s.active = v.to_string(),
                    "UnitFileState" => s.file = v.to_string(),
                    _ => {}
                }
            }
            s
        })
        .collect();
    if states.len() != count {
        return Err(Fail::new(format!(
            "`systemctl show` described {} units instead of {count}: {out:?}",
            states.len()
        )));
    }
    Ok(states)
}

/// The state of each of `units` (checked names), from one `systemctl` call.
pub fn states(units: &[String]) -> Result<Vec<UnitState>, Fail> {
    if units.is_empty() {
        return Ok(vec![]);
    }
    let mut args = vec![
        "show",
        "--property=LoadState,ActiveState,UnitFileState",
        "--",
    ];
    args.extend(units.iter().map(String::as_str));
    let out = service::run_bounded("systemctl", &args, SYSTEMCTL_TIMEOUT)?;
    parse_show(&out, units.len())
}

/// What `converge` did (or, in check mode, would do).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// The own service was enabled at boot.
    pub enabled: bool,
    pub stopped: Vec<String>,
    pub disabled: Vec<String>,
}

impl Done {
    pub fn changed(&self) -> bool {
        self.enabled || !self.stopped.is_empty() || !self.disabled.is_empty()
    }
}

/// Which of `others` to stop and disable, and whether `own` needs enabling,
/// from their states (`own` first, then `others`).
pub fn plan(own: Option<&str>, others: &[String], states: &[UnitState]) -> Done {
    let mut done = Done::default();
    let mut states = states.iter();
    if own.is_some() {
        let s = states.next().cloned().unwrap_or_default();
        // A unit without an install section (static) cannot be enabled;
        // asking every run would report a change every run.
        done.enabled = !s.enabled() && s.file != "static";
    }
    for (unit, s) in others.iter().zip(states) {
        if !s.exists() {
            continue;
        }
        if s.running() {
            done.stopped.push(unit.clone());
        }
        if s.enabled() {
            done.disabled.push(unit.clone());
        }
    }
    done
}

/// Stops and disables `others` that run or are enabled (a missing one is
/// left alone: it holds no port), then, with `own`, enables it at boot.
/// In check mode only reports.
pub fn stop_others(others: &[String], check_mode: bool) -> Result<Done, Fail> {
    let done = plan(None, others, &states(others)?);
    if !check_mode {
        systemctl("stop", &done.stopped)?;
        systemctl("disable", &done.disabled)?;
    }
    Ok(done)
}

/// Enables `own` at boot unless it is; in check mode only reports.
pub fn enable_own(own: &str, check_mode: bool) -> Result<bool, Fail> {
    let units = [own.to_string()];
    // A systemd that does not answer reads as "not enabled", as
    // `systemctl is-enabled` failing does: check mode reports the enable,
    // a real run fails on it with systemd's own message.
    let known = states(&units).unwrap_or_else(|_| vec![UnitState::default()]);
    let enabled = plan(Some(own), &[], &known).enabled;
    if enabled && !check_mode {
        systemctl("enable", &units)?;
    }
    Ok(enabled)
}

fn systemctl(verb: &str, units: &[String]) -> Result<(), Fail> {
    if units.is_empty() {
        return Ok(());
    }
    let mut args = vec![verb, "--quiet", "--"];
    args.extend(units.iter().map(String::as_str));
    service::run_bounded("systemctl", &args, SYSTEMCTL_TIMEOUT).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_checked() {
        for ok in ["apache2", "apache2.service", "knot@main", "a-b_c:d.socket"] {
            assert!(unit_name("o", ok).is_ok(), "{ok}");
        }
        for (bad, want) in [
            ("", "o must not hold an empty name"),
            ("a b", "o must not contain a space"),
            ("a;b", "o must not contain ';'"),
            ("a\nb", "o must not contain U+000A"),
            ("a/b", "o must not contain '/'"),
            ("$(x)", "o must not contain '$'"),
            ("--now", "o entry \"--now\" is not a unit name"),
            (".x", "o entry \".x\" is not a unit name"),
        ] {
            let e = unit_name("o", bad).expect_err(bad);
            assert!(e.msg.starts_with(want), "{bad:?}: {}", e.msg);
        }
        assert!(unit_name("o", &"a".repeat(256)).is_err());
        assert_eq!(service_unit("haproxy"), "haproxy.service");
        assert_eq!(service_unit("apache2.service"), "apache2.service");
    }

    #[test]
    fn show_output_is_read_block_by_block() {
        let out = "LoadState=loaded\nActiveState=active\nUnitFileState=disabled\n\n\
                   LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
                   LoadState=not-found\nActiveState=inactive\nUnitFileState=\n\n\
                   LoadState=loaded\nActiveState=failed\nUnitFileState=enabled-runtime\n";
        let states = parse_show(out, 4).expect("parse");
        let others = ["apache2".to_string(), "gone".into(), "old".into()];
        let done = plan(Some("haproxy"), &others, &states);
        assert_eq!(
            done,
            Done {
                enabled: true,
                stopped: vec!["apache2".into()],
                disabled: vec!["apache2".into(), "old".into()],
            }
        );
        assert!(parse_show(out, 3).is_err());

        let converged = "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n\n\
                         LoadState=loaded\nActiveState=inactive\nUnitFileState=disabled\n";
        let done = plan(
            Some("haproxy"),
            &others[..1],
            &parse_show(converged, 2).expect("parse"),
        );
        assert!(!done.changed(), "{done:?}");
        let stat = parse_show(
            "LoadState=loaded\nActiveState=active\nUnitFileState=static\n",
            1,
        )
        .expect("parse");
        assert!(!plan(Some("x"), &[], &stat).enabled);
    }
}
