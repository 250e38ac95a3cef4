//! `playbooks/vars/topology.yml` against a static inventory, no LXD: with an
//! LB on a cluster member that is not online, the others keep it as a
//! unicast peer and advertise a priority above any the topology gives
//! otherwise, so that it stays a backup when it comes back with its old
//! configuration; with every member online, neither.

use std::process::Command;

use testbed::{project_root, venv_bin};

fn run(lb_02_status: &str, lb_02_groups: &str, away: &str, base: u32) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let inventory = dir.path().join("inventory.yml");
    std::fs::write(
        &inventory,
        format!(
            "all:\n  hosts:\n    lb-02: {{lxd_location_status: {lb_02_status}}}\n  children:\n    lb:\n      hosts:\n        lb-01: {{lxd_location_status: online}}\n        lb-03: {{lxd_location_status: online}}\n{lb_02_groups}"
        ),
    )
    .expect("inventory written");
    let out = Command::new(venv_bin("ansible-playbook"))
        .current_dir(project_root())
        .env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.yaml")
        .args(["-i"])
        .arg(&inventory)
        .arg("testbed/playbooks/topology_unavailable.yml")
        .args([
            "-e",
            &format!("{{\"expect_away\": {away}, \"expect_base\": {base}}}"),
            "-e",
            "lb_count=2",
        ])
        .output()
        .expect("ansible-playbook runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn an_lb_away_is_kept_as_a_peer_below_the_others() {
    let (ok, out) = run("offline", "", "[\"lb-02\"]", 160);
    assert!(ok, "{out}");
    // The same assertions fail where they do not hold.
    let (ok, out) = run("offline", "", "[]", 150);
    assert!(!ok, "{out}");
}

#[test]
fn every_lb_online_keeps_the_configured_priorities() {
    let (ok, out) = run("online", "        lb-02: {}\n", "[]", 150);
    assert!(ok, "{out}");
}
