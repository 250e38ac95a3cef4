//! HAProxy tracked without polling: systemd writes a file keepalived watches
//! (inotify) whenever haproxy.service starts or stops. keepalived reads the file
//! with `weight -1`: the number in it is taken off the priority, and -254 or less
//! means FAULT.
//!
//! - `ExecStartPost` writes 0 once HAProxy is up (the unit is Type=notify, so
//!   that is after it listens): full priority.
//! - `ExecStop` writes 253 (priority drops to the minimum) and waits while
//!   HAProxy still answers: a backup takes the VIP over, and this node lets go
//!   only when the new master's advertisement arrives, so the VIP is never
//!   nowhere. The wait ends as soon as this node holds none of the VIPs (at
//!   once on a backup), plus a moment for requests it accepted just before;
//!   it is bounded by the stop delay for a node no backup relieves. Then it
//!   writes 254 (FAULT), which also moves the VIP where no backup preempts
//!   (`nopreempt`).
//! - `ExecStopPost` writes 254 whatever ended the service (a crash, `kill -9`):
//!   FAULT at once.
//! - a tmpfiles.d entry makes the file say 254 at boot until HAProxy has
//!   started, and keepalived's `init_file 254` covers a file that is missing.

use std::net::IpAddr;
use std::path::Path;

use ansible_module::{service, syntax};

pub const DROPIN_PATH: &str = "/etc/systemd/system/haproxy.service.d/keepalived-track.conf";
pub const TMPFILES_PATH: &str = "/etc/tmpfiles.d/keepalived-track.conf";

/// HAProxy runs: the full priority.
pub const UP: &str = "0";
/// HAProxy is stopping: the lowest priority, so a backup takes over.
pub const DRAIN: &str = "253";
/// HAProxy is down: FAULT.
pub const DOWN: &str = "254";

fn dir_of(file: &str) -> &str {
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

/// One `Exec*=` line running `script` with `/bin/sh -c`, its failure ignored.
fn exec_line(key: &str, script: &str) -> String {
    format!("{key}=-/bin/sh -c '{}'\n", systemd_quoted(script))
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

/// The haproxy.service drop-in for `file`: on stop, wait until this node holds
/// none of `vips` (at most `stop_delay` seconds).
///
/// Each script is built for `sh` (the file and its directory through
/// `syntax::sh_quote`), then quoted as one systemd argument. `file` was
/// checked with `syntax::path`, so for every accepted value the quoting
/// changes nothing; it is there so that no value could ever mean more.
pub fn dropin(file: &str, vips: &[IpAddr], stop_delay: f64) -> String {
    let dir = syntax::sh_quote(dir_of(file));
    let file = syntax::sh_quote(file);
    let wait = if stop_delay <= 0.0 {
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
    };
    format!(
        "\
# Managed by Ansible (keepalived_vrrp): tells keepalived whether HAProxy runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# {DRAIN} = stopping: lowest priority, {DOWN} = down: FAULT). On stop, HAProxy
# keeps answering until a backup took the VIP over.
[Service]
{}{}{}",
        exec_line(
            "ExecStartPost",
            &format!("mkdir -p {dir} && echo {UP} > {file}")
        ),
        exec_line(
            "ExecStop",
            &format!("echo {DRAIN} > {file}; {wait}echo {DOWN} > {file}")
        ),
        exec_line(
            "ExecStopPost",
            &format!("mkdir -p {dir}; echo {DOWN} > {file}")
        ),
    )
}

/// The tmpfiles.d entry: at boot the directory exists and the file says down.
pub fn tmpfiles(file: &str) -> Result<String, String> {
    let dir = tmpfiles_word(dir_of(file))?;
    let file = tmpfiles_word(file)?;
    Ok(format!(
        "\
# Managed by Ansible (keepalived_vrrp): until haproxy.service has started, the
# file keepalived tracks says HAProxy is down.
d {dir} 0755 root root -
f {file} 0644 root root - {DOWN}
"
    ))
}

/// What the tracked file must say now.
pub fn wanted_value() -> &'static str {
    if service::is_active("haproxy.service") {
        UP
    } else {
        DOWN
    }
}

/// Whether systemd knows haproxy.service at all.
pub fn haproxy_installed() -> bool {
    service::run_bounded(
        "systemctl",
        &["show", "-p", "LoadState", "--value", "haproxy.service"],
        std::time::Duration::from_secs(30),
    )
    .is_ok_and(|s| s.trim() == "loaded")
}

#[cfg(test)]
mod tests {
    use super::*;

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
