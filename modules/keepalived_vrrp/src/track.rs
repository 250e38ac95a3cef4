//! Services tracked without polling: systemd writes a file keepalived watches
//! (inotify) whenever the service starts or stops. HAProxy is tracked this
//! way (`track_haproxy`), and so is every service in `track_services` (a DNS
//! server on the same nodes), each through its own drop-in and file.
//! keepalived reads each file with `weight -1`: the number in it is taken off
//! the priority, and -254 or less means FAULT. keepalived adds the results of
//! all the files an instance tracks and keeps the priority within 1..254
//! (keepalived.conf(5), "Track files"), so two services stopping at once
//! give priority 1, never a wrap-around; one that is down gives FAULT.
//!
//! - `ExecStartPost` writes 0 once the service is up (for a Type=notify unit
//!   such as HAProxy or Knot DNS, that is after it listens): full priority.
//! - `ExecStop` writes 253 (priority drops to the minimum) and waits while
//!   the service still answers: a backup takes the VIP over, and this node lets
//!   go only when the new master's advertisement arrives, so the VIP is never
//!   nowhere. The wait ends as soon as this node holds none of the VIPs (at
//!   once on a backup), plus a moment for requests it accepted just before;
//!   it is bounded by the stop delay for a node no backup relieves. Then it
//!   writes 254 (FAULT), which also moves the VIP where no backup preempts
//!   (`nopreempt`). systemd runs a unit's own `ExecStop` lines before a
//!   drop-in's, so this holds for units without one (HAProxy, Knot DNS).
//! - `ExecStopPost` writes 254 whatever ended the service (a crash, `kill -9`):
//!   FAULT at once.
//! - a tmpfiles.d entry makes the file say 254 at boot until the service has
//!   started, and keepalived's `init_file 254` covers a file that is missing.
//!
//! The commands of a `track_services` drop-in carry systemd's `+` prefix: they
//! run as root outside the unit's sandbox, since such a unit may run as its
//! own user (Knot DNS: `User=knot`, `NoNewPrivileges=yes`), which could not
//! write the file. haproxy.service runs as root; its drop-in is the one
//! existing nodes already have, byte for byte.

use std::net::IpAddr;
use std::path::Path;

use ansible_module::{service, syntax};

pub const DROPIN_PATH: &str = "/etc/systemd/system/haproxy.service.d/keepalived-track.conf";
pub const TMPFILES_PATH: &str = "/etc/tmpfiles.d/keepalived-track.conf";
/// Where systemd reads administrators' unit drop-ins.
pub const SYSTEMD_DIR: &str = "/etc/systemd/system";
/// The drop-in's file name in `<unit>.d/`.
pub const DROPIN_NAME: &str = "keepalived-track.conf";
/// The first line of every drop-in and tmpfiles.d entry this module writes.
pub const MANAGED: &str = "# Managed by Ansible (keepalived_vrrp)";

/// The service runs: the full priority.
pub const UP: &str = "0";
/// The service is stopping: the lowest priority, so a backup takes over.
pub const DRAIN: &str = "253";
/// The service is down: FAULT.
pub const DOWN: &str = "254";

const HAPROXY: &str = "haproxy.service";

/// A systemd service keepalived follows through a drop-in and a file. Its
/// name was checked by `checks::service` (letters, digits and `: - _ . \ @`,
/// ending in `.service`), so it is one path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Service {
    unit: String,
}

/// `name` with every character outside letters, digits and `_ . @ -` as
/// `esc` and its two hex digits. `esc` never stands for itself, so two
/// names never give the same result.
fn escaped(name: &str, esc: char) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() || "_.@-".contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("{esc}{b:02x}"));
            }
        }
    }
    out
}

impl Service {
    pub fn haproxy() -> Service {
        Service {
            unit: HAPROXY.into(),
        }
    }

    /// The service of a checked name, `.service` added when it is missing.
    pub fn named(name: &str) -> Service {
        let unit = if name.ends_with(".service") {
            name.to_string()
        } else {
            format!("{name}.service")
        };
        Service { unit }
    }

    pub fn unit(&self) -> &str {
        &self.unit
    }

    pub fn is_haproxy(&self) -> bool {
        self.unit == HAPROXY
    }

    /// The unit name without `.service`.
    pub fn stem(&self) -> &str {
        self.unit.strip_suffix(".service").unwrap_or(&self.unit)
    }

    /// The stem as a file name that `syntax::path` accepts (`:` and `\`
    /// become `+3a` and `+5c`; a unit name holds no `+`).
    pub fn file_tag(&self) -> String {
        escaped(self.stem(), '+')
    }

    /// The stem as part of a keepalived word (`:` and `\` become `:3a`
    /// and `:5c`).
    pub fn conf_tag(&self) -> String {
        escaped(self.stem(), ':')
    }

    /// How the drop-in's comments name the service.
    fn who(&self) -> &str {
        if self.is_haproxy() {
            "HAProxy"
        } else {
            &self.unit
        }
    }

    /// The `Exec*=` prefix: failures ignored (`-`); for a tracked service also
    /// as root outside the unit's sandbox (`+`), see the module comment.
    fn exec_prefix(&self) -> &'static str {
        if self.is_haproxy() {
            "-"
        } else {
            "-+"
        }
    }

    pub fn dropin_path(&self) -> String {
        if self.is_haproxy() {
            DROPIN_PATH.into()
        } else {
            format!("{SYSTEMD_DIR}/{}.d/{DROPIN_NAME}", self.unit)
        }
    }

    pub fn tmpfiles_path(&self) -> String {
        if self.is_haproxy() {
            TMPFILES_PATH.into()
        } else {
            format!("/etc/tmpfiles.d/keepalived-track-{}.conf", self.file_tag())
        }
    }

    /// The drop-in for `file`: on stop, wait until this node holds none of
    /// `vips` (at most `stop_delay` seconds).
    ///
    /// Each script is built for `sh` (the file and its directory through
    /// `syntax::sh_quote`), then quoted as one systemd argument. `file` was
    /// checked with `syntax::path`, so for every accepted value the quoting
    /// changes nothing; it is there so that no value could ever mean more.
    pub fn dropin(&self, file: &str, vips: &[IpAddr], stop_delay: f64) -> String {
        let dir = syntax::sh_quote(dir_of(file));
        let file = syntax::sh_quote(file);
        let wait = stop_wait(vips, stop_delay);
        let who = self.who();
        let exec = |key: &str, script: &str| exec_line(key, self.exec_prefix(), script);
        // A unit name ends in `.service`: no comment line ends in a
        // backslash, which would continue it.
        format!(
            "\
{MANAGED}: tells keepalived whether {who} runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# {DRAIN} = stopping: lowest priority, {DOWN} = down: FAULT). On stop, {who}
# keeps answering until a backup took the VIP over.
[Service]
{}{}{}",
            exec(
                "ExecStartPost",
                &format!("mkdir -p {dir} && echo {UP} > {file}")
            ),
            exec(
                "ExecStop",
                &format!("echo {DRAIN} > {file}; {wait}echo {DOWN} > {file}")
            ),
            exec(
                "ExecStopPost",
                &format!("mkdir -p {dir}; echo {DOWN} > {file}")
            ),
        )
    }

    /// The tmpfiles.d entry: at boot the directory exists and the file says down.
    pub fn tmpfiles(&self, file: &str) -> Result<String, String> {
        let dir = tmpfiles_word(dir_of(file))?;
        let file = tmpfiles_word(file)?;
        Ok(format!(
            "\
{MANAGED}: until {} has started, the
# file keepalived tracks says {} is down.
d {dir} 0755 root root -
f {file} 0644 root root - {DOWN}
",
            self.unit,
            self.who()
        ))
    }

    /// What the tracked file must say now.
    pub fn wanted_value(&self) -> &'static str {
        if service::is_active(&self.unit) {
            UP
        } else {
            DOWN
        }
    }

    /// systemd's `LoadState` of the unit (`loaded` when it is installed).
    pub fn load_state(&self) -> String {
        self.show("LoadState")
            .unwrap_or_else(|| "unknown (systemctl failed)".into())
    }

    /// Whether systemd knows the unit at all.
    pub fn installed(&self) -> bool {
        self.load_state() == "loaded"
    }

    /// Whether the unit stops with commands of its own (which systemd runs
    /// before the drop-in's), besides the tracking drop-in's (the one that
    /// writes `track_file`) once it is installed.
    pub fn own_exec_stop(&self, track_file: &str) -> bool {
        self.show("ExecStop")
            .is_some_and(|v| others_than_tracking(&v, track_file))
    }

    fn show(&self, property: &str) -> Option<String> {
        service::run_bounded(
            "systemctl",
            &["show", "-p", property, "--value", &self.unit],
            std::time::Duration::from_secs(30),
        )
        .ok()
        .map(|s| s.trim().to_string())
    }
}

/// Whether `systemctl show -p ExecStop --value` lists a command (`{ path=...
/// }`) that is not the tracking drop-in's.
fn others_than_tracking(exec_stop: &str, track_file: &str) -> bool {
    exec_stop
        .split("{ path=")
        .skip(1)
        .any(|command| !command.contains(track_file))
}

pub(crate) fn dir_of(file: &str) -> &str {
    Path::new(file)
        .parent()
        .and_then(Path::to_str)
        .filter(|d| !d.is_empty())
        .unwrap_or("/")
}

/// How often `ExecStop` looks whether the VIPs left, in seconds.
const POLL: f64 = 0.05;
/// How long HAProxy keeps answering after the VIPs left: requests this node
/// accepted just before the move still get their answer.
const SETTLE: &str = "0.2";

/// The bound on the wait in `ExecStop` when none is given. A backup declares
/// the master dead after 3 advertisement intervals plus its skew (under one
/// interval), so four intervals and a margin cover the handover on a quiet
/// host; a busy one can take longer, and the wait ends when the VIPs left
/// anyway, so it is at least 2 s.
pub fn default_stop_delay(advert_int: f64) -> f64 {
    (((4.0 * advert_int + 0.1) * 100.0).round() / 100.0).max(2.0)
}

/// `script` as one single-quoted argument of a systemd `Exec*=` line (the
/// quotes are the caller's): `%`, `$` and `\\` doubled
/// (`syntax::systemd_exec_escape`), a quote or a character that could end the
/// line as a C escape, which systemd undoes inside quotes.
fn systemd_quoted(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    for c in syntax::systemd_exec_escape(script).chars() {
        match c {
            '\'' => out.push_str("\\'"),
            ' '..='~' => out.push(c),
            _ => hex_escape(&mut out, c),
        }
    }
    out
}

/// `c` as `\xNN` per UTF-8 byte: systemd turns each back into that byte.
fn hex_escape(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    for b in c.encode_utf8(&mut buf).bytes() {
        out.push_str(&format!("\\x{b:02x}"));
    }
}

/// One `Exec*=` line running `script` with `/bin/sh -c`.
fn exec_line(key: &str, prefix: &str, script: &str) -> String {
    format!("{key}={prefix}/bin/sh -c '{}'\n", systemd_quoted(script))
}

/// A path as one field of a tmpfiles.d line: bare when it holds only
/// letters, digits and `_ . / @ + -`, else in double quotes with `\\` and `"`
/// escaped by a backslash; `%` (a specifier) doubled either way. A line
/// break cannot be written in a tmpfiles.d field at all.
fn tmpfiles_word(path: &str) -> Result<String, String> {
    if let Some(c) = path.chars().find(|c| matches!(c, '\n' | '\r' | '\0')) {
        return Err(format!(
            "track_file {path:?} cannot be written into a tmpfiles.d line (it holds U+{:04X})",
            u32::from(c)
        ));
    }
    let bare = path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_./@+-%".contains(c));
    let mut out = String::with_capacity(path.len() + 2);
    if !bare {
        out.push('"');
    }
    for c in path.chars() {
        match c {
            '%' => out.push_str("%%"),
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if !bare {
        out.push('"');
    }
    Ok(out)
}

/// The wait in `ExecStop`: until this node holds none of `vips`, at most
/// `stop_delay` seconds, then a moment to settle.
fn stop_wait(vips: &[IpAddr], stop_delay: f64) -> String {
    if stop_delay <= 0.0 {
        String::new()
    } else if vips.is_empty() {
        format!("sleep {}; ", crate::conf::seconds(stop_delay))
    } else {
        // `ip` comes with keepalived (Debian: Depends iproute2). " ADDR/"
        // matches the address and nothing that merely ends or starts with
        // it; an address prints as hex digits, dots and colons only.
        let held = vips
            .iter()
            .map(|v| format!("-e \" {v}/\""))
            .collect::<Vec<_>>()
            .join(" ");
        let rounds = (stop_delay / POLL).ceil() as u64;
        format!(
            "n={rounds}; while [ $n -gt 0 ] && ip -o addr show | grep -qF {held}; \
             do sleep {POLL}; n=$((n-1)); done; sleep {SETTLE}; "
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_commands_besides_the_tracking_ones_are_the_units_own() {
        let ours = "{ path=/bin/sh ; argv[]=/bin/sh -c echo 253 > /run/keepalived/knot.down; sleep 0.2 ; ignore_errors=yes ; pid=0 ; code=(null) ; status=0/0 }";
        let theirs = "{ path=/usr/sbin/knotc ; argv[]=/usr/sbin/knotc stop ; ignore_errors=no ; pid=0 ; code=(null) ; status=0/0 }";
        let file = "/run/keepalived/knot.down";
        assert!(!others_than_tracking("", file));
        assert!(!others_than_tracking(ours, file));
        assert!(others_than_tracking(theirs, file));
        assert!(others_than_tracking(&format!("{theirs} {ours}"), file));
    }

    fn dropin(file: &str, vips: &[IpAddr], stop_delay: f64) -> String {
        Service::haproxy().dropin(file, vips, stop_delay)
    }

    fn tmpfiles(file: &str) -> Result<String, String> {
        Service::haproxy().tmpfiles(file)
    }

    /// HAProxy's drop-in and tmpfiles.d entry are what nodes set up before
    /// `track_services` existed, byte for byte: a converged node's next run
    /// changes nothing.
    #[test]
    fn haproxy_files_are_unchanged() {
        let vips: Vec<IpAddr> = vec!["10.231.0.20".parse().unwrap()];
        assert_eq!(
            dropin("/run/keepalived/haproxy.down", &vips, 2.0),
            r#"# Managed by Ansible (keepalived_vrrp): tells keepalived whether HAProxy runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# 253 = stopping: lowest priority, 254 = down: FAULT). On stop, HAProxy
# keeps answering until a backup took the VIP over.
[Service]
ExecStartPost=-/bin/sh -c 'mkdir -p /run/keepalived && echo 0 > /run/keepalived/haproxy.down'
ExecStop=-/bin/sh -c 'echo 253 > /run/keepalived/haproxy.down; n=40; while [ $$n -gt 0 ] && ip -o addr show | grep -qF -e " 10.231.0.20/"; do sleep 0.05; n=$$((n-1)); done; sleep 0.2; echo 254 > /run/keepalived/haproxy.down'
ExecStopPost=-/bin/sh -c 'mkdir -p /run/keepalived; echo 254 > /run/keepalived/haproxy.down'
"#
        );
        assert_eq!(
            tmpfiles("/run/keepalived/haproxy.down").unwrap(),
            "\
# Managed by Ansible (keepalived_vrrp): until haproxy.service has started, the
# file keepalived tracks says HAProxy is down.
d /run/keepalived 0755 root root -
f /run/keepalived/haproxy.down 0644 root root - 254
"
        );
        let h = Service::haproxy();
        assert_eq!(h.dropin_path(), DROPIN_PATH);
        assert_eq!(h.tmpfiles_path(), TMPFILES_PATH);
    }

    /// Each further service: its own drop-in and tmpfiles.d entry, the same
    /// transitions, run as root outside the unit's sandbox (`+`).
    #[test]
    fn each_service_has_its_own_files() {
        let knot = Service::named("knot");
        assert_eq!(knot, Service::named("knot.service"));
        assert_eq!(knot.unit(), "knot.service");
        assert_eq!(
            knot.dropin_path(),
            "/etc/systemd/system/knot.service.d/keepalived-track.conf"
        );
        assert_eq!(
            knot.tmpfiles_path(),
            "/etc/tmpfiles.d/keepalived-track-knot.conf"
        );
        let vips: Vec<IpAddr> = vec!["10.231.0.20".parse().unwrap()];
        let d = knot.dropin("/run/keepalived/knot.down", &vips, 2.0);
        assert_eq!(
            d,
            r#"# Managed by Ansible (keepalived_vrrp): tells keepalived whether knot.service runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# 253 = stopping: lowest priority, 254 = down: FAULT). On stop, knot.service
# keeps answering until a backup took the VIP over.
[Service]
ExecStartPost=-+/bin/sh -c 'mkdir -p /run/keepalived && echo 0 > /run/keepalived/knot.down'
ExecStop=-+/bin/sh -c 'echo 253 > /run/keepalived/knot.down; n=40; while [ $$n -gt 0 ] && ip -o addr show | grep -qF -e " 10.231.0.20/"; do sleep 0.05; n=$$((n-1)); done; sleep 0.2; echo 254 > /run/keepalived/knot.down'
ExecStopPost=-+/bin/sh -c 'mkdir -p /run/keepalived; echo 254 > /run/keepalived/knot.down'
"#
        );
        assert_eq!(
            knot.tmpfiles("/run/keepalived/knot.down").unwrap(),
            "\
# Managed by Ansible (keepalived_vrrp): until knot.service has started, the
# file keepalived tracks says knot.service is down.
d /run/keepalived 0755 root root -
f /run/keepalived/knot.down 0644 root root - 254
"
        );
    }

    /// `:` and `\` (systemd's escapes) become a file name and a keepalived
    /// word; distinct services keep distinct names.
    #[test]
    fn names_are_escaped_one_to_one() {
        let s = Service::named(r"dns@a:b\x2dc");
        assert_eq!(s.file_tag(), "dns@a+3ab+5cx2dc");
        assert_eq!(s.conf_tag(), "dns@a:3ab:5cx2dc");
        assert_eq!(
            s.dropin_path(),
            r"/etc/systemd/system/dns@a:b\x2dc.service.d/keepalived-track.conf"
        );
        let names = [
            "a:b", "a+3ab", "a:3ab", r"a\b", "a+5cb", "a_b", "a-b", "a.b",
        ];
        for (i, a) in names.iter().enumerate() {
            for b in &names[i + 1..] {
                let (a, b) = (Service::named(a), Service::named(b));
                assert_ne!(a.file_tag(), b.file_tag(), "{a:?} {b:?}");
                assert_ne!(a.conf_tag(), b.conf_tag(), "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn dropin_writes_the_file_on_every_transition() {
        let vips: Vec<IpAddr> = vec!["10.231.0.10".parse().unwrap(), "fd00::10".parse().unwrap()];
        let d = dropin("/run/keepalived/haproxy.down", &vips, 2.0);
        assert!(d.contains(
            "ExecStartPost=-/bin/sh -c 'mkdir -p /run/keepalived && echo 0 > /run/keepalived/haproxy.down'"
        ));
        assert!(d.contains(
            "ExecStop=-/bin/sh -c 'echo 253 > /run/keepalived/haproxy.down; n=40; \
             while [ $$n -gt 0 ] && ip -o addr show | grep -qF -e \" 10.231.0.10/\" -e \" fd00::10/\"; \
             do sleep 0.05; n=$$((n-1)); done; sleep 0.2; echo 254 > /run/keepalived/haproxy.down'"
        ), "{d}");
        assert!(d.contains(
            "ExecStopPost=-/bin/sh -c 'mkdir -p /run/keepalived; echo 254 > /run/keepalived/haproxy.down'"
        ));
        assert!(dropin("/run/x", &[], 0.5).contains("echo 253 > /run/x; sleep 0.5; echo 254"));
        assert!(!dropin("/run/x", &vips, 0.0).contains("sleep"));
        assert!(tmpfiles("/run/keepalived/haproxy.down")
            .is_ok_and(|t| t.contains("f /run/keepalived/haproxy.down 0644 root root - 254")));
    }

    /// The wait as systemd hands it to sh ends when the VIPs are gone, and
    /// at the bound when they stay.
    #[test]
    fn stop_wait_ends_when_the_vips_left() {
        let vips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("down");
        let file = file.to_str().unwrap();
        let d = dropin(file, &vips, 0.3);
        let line = d.lines().find(|l| l.starts_with("ExecStop=")).unwrap();
        let script = line
            .trim_start_matches("ExecStop=-/bin/sh -c '")
            .trim_end_matches('\'')
            .replace("$$", "$");
        let seconds_to_run = |script: &str| {
            let t = std::time::Instant::now();
            let status = std::process::Command::new("sh")
                .args(["-c", script])
                .status()
                .unwrap();
            assert!(status.success());
            t.elapsed().as_secs_f64()
        };
        // Loopback holds 127.0.0.1: the bound (0.3 s) applies.
        let held = seconds_to_run(&script);
        assert_eq!(std::fs::read_to_string(file).unwrap().trim(), "254");
        // An address nobody holds: only the settle time.
        let gone = seconds_to_run(&script.replace(" 127.0.0.1/", " 192.0.2.77/"));
        assert!(held >= 0.45 && gone < held, "held {held} s, gone {gone} s");
    }

    #[test]
    fn stop_delay_covers_the_handover() {
        assert_eq!(default_stop_delay(0.1), 2.0);
        assert_eq!(default_stop_delay(1.0), 4.1);
    }
}
