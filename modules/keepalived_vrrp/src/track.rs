//! HAProxy tracked without polling: systemd writes a file keepalived watches
//! (inotify) whenever haproxy.service starts or stops. keepalived reads the file
//! with `weight -1`: the number in it is taken off the priority, and -254 or less
//! means FAULT.
//!
//! - `ExecStartPost` writes 0 once HAProxy is up (the unit is Type=notify, so
//!   that is after it listens): full priority.
//! - `ExecStop` writes 253 (priority drops to the minimum) and waits: a backup
//!   takes the VIP while this HAProxy still answers, and this node lets go only
//!   when the new master's advertisement arrives, so the VIP is never nowhere.
//!   Then it writes 254 (FAULT), which also moves the VIP where no backup
//!   preempts (`nopreempt`).
//! - `ExecStopPost` writes 254 whatever ended the service (a crash, `kill -9`):
//!   FAULT at once.
//! - a tmpfiles.d entry makes the file say 254 at boot until HAProxy has
//!   started, and keepalived's `init_file 254` covers a file that is missing.

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

/// The wait in `ExecStop` when none is given: a backup declares the master
/// dead after 3 advertisement intervals plus its skew (under one interval), so
/// four intervals and a margin cover the handover.
pub fn default_stop_delay(advert_int: f64) -> f64 {
    ((4.0 * advert_int + 0.1) * 100.0).round() / 100.0
}

/// The haproxy.service drop-in for `file`, waiting `stop_delay` seconds on stop.
pub fn dropin(file: &str, stop_delay: f64) -> String {
    let dir = dir_of(file);
    let sleep = if stop_delay > 0.0 {
        format!("sleep {}; ", crate::conf::seconds(stop_delay))
    } else {
        String::new()
    };
    format!(
        "\
# Managed by Ansible (keepalived_vrrp): tells keepalived whether HAProxy runs,
# through the file its vrrp_instance tracks with weight -1 (0 = running,
# {DRAIN} = stopping: lowest priority, {DOWN} = down: FAULT). On stop, HAProxy
# keeps answering while a backup takes the VIP over.
[Service]
ExecStartPost=-/bin/sh -c 'mkdir -p {dir} && echo {UP} > {file}'
ExecStop=-/bin/sh -c 'echo {DRAIN} > {file}; {sleep}echo {DOWN} > {file}'
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
        let d = dropin("/run/keepalived/haproxy.down", 0.5);
        assert!(d.contains(
            "ExecStartPost=-/bin/sh -c 'mkdir -p /run/keepalived && echo 0 > /run/keepalived/haproxy.down'"
        ));
        assert!(d.contains(
            "ExecStop=-/bin/sh -c 'echo 253 > /run/keepalived/haproxy.down; sleep 0.5; echo 254 > /run/keepalived/haproxy.down'"
        ));
        assert!(d.contains(
            "ExecStopPost=-/bin/sh -c 'mkdir -p /run/keepalived; echo 254 > /run/keepalived/haproxy.down'"
        ));
        assert!(!dropin("/run/x", 0.0).contains("sleep"));
        assert!(tmpfiles("/run/keepalived/haproxy.down")
            .contains("f /run/keepalived/haproxy.down 0644 root root - 254"));
    }

    #[test]
    fn stop_delay_covers_the_handover() {
        assert_eq!(default_stop_delay(0.1), 0.5);
        assert_eq!(default_stop_delay(1.0), 4.1);
    }
}
