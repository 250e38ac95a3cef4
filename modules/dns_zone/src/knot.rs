//! Knot DNS: its configuration file, and how a changed zone or configuration
//! goes live without a restart.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use ansible_module::{service, Fail};

use ansible_module::dns_names::Name;

pub const UNIT: &str = "knot.service";

/// How long one `knotc` or `systemctl` call may take. Zones this size load in
/// milliseconds; the bound is for a server stuck behind something else.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);

/// What knot.conf says: where it listens, where the zone files are, which
/// zones it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub listen: Vec<IpAddr>,
    pub port: u16,
    /// Checked with `syntax::path`: safe unquoted, quoted anyway.
    pub zone_dir: String,
    pub zones: Vec<Name>,
}

impl ServerConfig {
    pub fn render(&self) -> String {
        let listen = self
            .listen
            .iter()
            .map(|a| format!("\"{a}@{}\"", self.port))
            .collect::<Vec<_>>()
            .join(", ");
        let mut out = format!(
            "\
# Managed by Ansible (dns_zone). Knot DNS is an authoritative server only: it
# answers for the zones below and refuses everything else (no recursion, no
# forwarding). The zone files are the only source: the server never writes
# them back and keeps no journal of its own.
server:
    rundir: \"/run/knot\"
    user: knot:knot
    listen: [ {listen} ]

log:
  - target: syslog
    any: notice

database:
    storage: \"/var/lib/knot\"

template:
  - id: default
    storage: \"{dir}\"
    file: \"%s.zone\"
    zonefile-load: whole
    zonefile-sync: -1
    journal-content: none
    semantic-checks: on
",
            dir = self.zone_dir
        );
        if !self.zones.is_empty() {
            out.push_str("\nzone:\n");
        }
        for z in &self.zones {
            let _ = writeln!(out, "  - domain: \"{z}\"");
        }
        out
    }
}

/// Whether systemd knows knot.service (the `knot` package is installed).
/// Whether Knot starts at boot; `systemctl is-enabled` exits non-zero for
/// anything but enabled.
pub fn enabled() -> bool {
    service::run_bounded("systemctl", &["is-enabled", UNIT], CONTROL_TIMEOUT)
        .is_ok_and(|s| s.trim() == "enabled")
}

pub fn enable() -> Result<(), Fail> {
    service::run_bounded("systemctl", &["enable", UNIT], CONTROL_TIMEOUT).map(|_| ())
}

pub fn installed() -> bool {
    service::run_bounded(
        "systemctl",
        &["show", "-p", "LoadState", "--value", UNIT],
        Duration::from_secs(30),
    )
    .is_ok_and(|s| s.trim() == "loaded")
}

fn knotc(args: &[&str]) -> Result<String, Fail> {
    let mut argv = vec!["-t", "30"];
    argv.extend_from_slice(args);
    service::run_bounded("knotc", &argv, CONTROL_TIMEOUT)
}

/// Puts a written configuration and zone files live: a running server
/// re-reads its configuration (when it changed) and reloads the changed zones,
/// waiting until they are loaded, so a name is answered when the task returns;
/// a stopped one is started (it loads everything). Returns what it did.
pub fn apply(config_changed: bool, zones: &[&Name]) -> Result<&'static str, Fail> {
    if !service::is_active(UNIT) {
        service::run_bounded("systemctl", &["start", UNIT], CONTROL_TIMEOUT)?;
        return Ok("started");
    }
    if config_changed {
        knotc(&["reload"])?;
    }
    if !zones.is_empty() {
        let mut args = vec!["-b", "zone-reload"];
        args.extend(zones.iter().map(|z| z.as_str()));
        knotc(&args)?;
    }
    Ok("reloaded")
}

/// The serial the running server has loaded for `zone`, if it runs and has it.
pub fn loaded_serial(zone: &Name) -> Option<u32> {
    let out = knotc(&["zone-status", zone.as_str(), "+serial"]).ok()?;
    // "[vrrp.internal.] serial: 1764400000"
    out.split("serial:")
        .nth(1)?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ansible_module::dns_names as names;

    #[test]
    fn renders_the_server_config() {
        let cfg = ServerConfig {
            listen: vec!["0.0.0.0".parse().unwrap(), "::".parse().unwrap()],
            port: 53,
            zone_dir: "/etc/knot/zones".into(),
            zones: vec![
                names::zone("z", "vrrp.internal").unwrap(),
                names::zone("z", "0.231.10.in-addr.arpa").unwrap(),
            ],
        };
        let text = cfg.render();
        assert!(
            text.contains("    listen: [ \"0.0.0.0@53\", \"::@53\" ]\n"),
            "{text}"
        );
        assert!(
            text.contains("    storage: \"/etc/knot/zones\"\n"),
            "{text}"
        );
        assert!(text.ends_with(
            "zone:\n  - domain: \"vrrp.internal.\"\n  - domain: \"0.231.10.in-addr.arpa.\"\n"
        ));
        let empty = ServerConfig {
            zones: vec![],
            ..cfg
        }
        .render();
        assert!(!empty.contains("zone:"), "{empty}");
    }
}
