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

use ansible_module::service;

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

/// The haproxy.service drop-in for `file`: on stop, wait until this node holds
/// none of `vips` (at most `stop_delay` seconds).
pub fn dropin(file: &str, vips: &[IpAddr], stop_delay: f64) -> String {
    let dir = dir_of(file);
    let wait = if stop_delay <= 0.0 {
        String::new()
    } else if vips.is_empty() {
        format!("sleep {}; ", crate::conf::seconds(stop_delay))
    } else {
        // `ip` comes with keepalived (Debian: Depends iproute2). `$$` is a
        // literal `$` for systemd. " ADDR/" matches the address and nothing
        // that merely ends or starts with it.
        let held = vips
            .iter()
            .map(|v| format!("-e \" {v}/\""))
            .collect::<Vec<_>>()
            .join(" ");
        let rounds = (stop_delay / POLL).ceil() as u64;
        format!(
            "n={rounds}; while [ $$n -gt 0 ] && ip -o addr show | grep -qF {held}; \
             do sleep {POLL}; n=$$((n-1)); done; sleep {SETTLE}; "
        )
    };
    format!(
        "\
# Managed by Ansible (keepalived_vrrp): tells keepalived whether HAProxy runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# {DRAIN} = stopping: lowest priority, {DOWN} = down: FAULT). On stop, HAProxy
# keeps answering until a backup took the VIP over.
[Service]
ExecStartPost=-/bin/sh -c 'mkdir -p {dir} && echo {UP} > {file}'
ExecStop=-/bin/sh -c 'echo {DRAIN} > {file}; {wait}echo {DOWN} > {file}'
ExecStopPost=-/bin/sh -c 'mkdir -p {dir}; echo {DOWN} > {file}'
"
    )
}

/// The tmpfiles.d entry: at boot the directory exists and the file says down.
pub fn tmpfiles(file: &str) -> String {
    let dir = dir_of(file);
    format!(
        "\
# Managed by Ansible (keepalived_vrrp): until haproxy.service has started, the
# file keepalived tracks says HAProxy is down.
d {dir} 0755 root root -
f {file} 0644 root root - {DOWN}
"
    )
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
    service::run(
        "systemctl",
        &["show", "-p", "LoadState", "--value", "haproxy.service"],
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
            .contains("f /run/keepalived/haproxy.down 0644 root root - 254"));
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
