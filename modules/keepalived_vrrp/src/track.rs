//! HAProxy tracked without polling: systemd writes a file keepalived watches
//! (inotify) whenever haproxy.service starts or stops.
//!
//! - `ExecStartPost` writes 0 once HAProxy is up (the unit is Type=notify, so
//!   that is after it listens);
//! - `ExecStop` writes 1 and then waits a moment, so keepalived hands the VIP to
//!   another node while this HAProxy still answers: a planned stop loses nothing;
//! - `ExecStopPost` writes 1 whatever ended the service (a crash, `kill -9`);
//! - a tmpfiles.d entry makes the file say 1 at boot until HAProxy has started,
//!   and keepalived's `init_file 1` covers a file that is missing.

use std::path::Path;

use ansible_module::service;

pub const DROPIN_PATH: &str = "/etc/systemd/system/haproxy.service.d/keepalived-track.conf";
pub const TMPFILES_PATH: &str = "/etc/tmpfiles.d/keepalived-track.conf";

fn dir_of(file: &str) -> &str {
    Path::new(file)
        .parent()
        .and_then(Path::to_str)
        .filter(|d| !d.is_empty())
        .unwrap_or("/")
}

/// The haproxy.service drop-in for `file`, waiting `stop_delay` seconds on stop.
pub fn dropin(file: &str, stop_delay: f64) -> String {
    let dir = dir_of(file);
    let sleep = if stop_delay > 0.0 {
        format!("; sleep {}", crate::conf::seconds(stop_delay))
    } else {
        String::new()
    };
    format!(
        "\
# Managed by Ansible (keepalived_vrrp): tells keepalived whether HAProxy runs,
# through the file its vrrp_instance tracks (0 = running, anything else = down).
# On stop the file says down first, then HAProxy keeps answering for a moment
# while the VIP moves to another node.
[Service]
ExecStartPost=-/bin/sh -c 'mkdir -p {dir} && echo 0 > {file}'
ExecStop=-/bin/sh -c 'echo 1 > {file}{sleep}'
ExecStopPost=-/bin/sh -c 'mkdir -p {dir}; echo 1 > {file}'
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
f {file} 0644 root root - 1
"
    )
}

/// What the tracked file must say now: 0 when HAProxy runs, 1 otherwise.
pub fn wanted_value() -> &'static str {
    if service::is_active("haproxy.service") {
        "0"
    } else {
        "1"
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
        let d = dropin("/run/keepalived/haproxy.down", 0.3);
        assert!(d.contains(
            "ExecStartPost=-/bin/sh -c 'mkdir -p /run/keepalived && echo 0 > /run/keepalived/haproxy.down'"
        ));
        assert!(
            d.contains("ExecStop=-/bin/sh -c 'echo 1 > /run/keepalived/haproxy.down; sleep 0.3'")
        );
        assert!(d.contains("ExecStopPost=-/bin/sh -c 'mkdir -p /run/keepalived; echo 1 > /run/keepalived/haproxy.down'"));
        assert!(!dropin("/run/x", 0.0).contains("sleep"));
        assert!(tmpfiles("/run/keepalived/haproxy.down")
            .contains("f /run/keepalived/haproxy.down 0644 root root - 1"));
    }
}
