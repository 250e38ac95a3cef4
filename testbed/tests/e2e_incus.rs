//! End to end against Incus instead of LXD, on the same host: the
//! `lxd_instance` module's lifecycle, the inventory binary listing what it
//! made with the DHCP addresses, and one `site.yml` 2+2 with the VIP answering
//! through the bounded probe, then converged (a re-run changes nothing). Incus runs beside LXD on its own bridge
//! (`vrrpin0`, 10.234.0.0/24); `scripts/setup-incus.sh` prepares it and
//! `scripts/test.sh` runs this test after it (`--ignored`: the workspace run
//! has no Incus to assume).

use std::net::IpAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testbed::ansible::Runner;
use testbed::container::lxc;
use testbed::probe::check_route;
use testbed::topology::Topology;
use testbed::Probe;

const INCUS_URL: &str = "unix:/var/lib/incus/unix.socket";
const VIP: &str = "10.234.0.30";
const VRID: &str = "134";

fn incus_bridge() -> String {
    std::env::var("VRRP_INCUS_BRIDGE")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| "vrrpin0".into())
}

/// Instances made by the module part, deleted whatever the test did.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !testbed::keep() {
            for name in &self.0 {
                let _ = lxc(&["delete", "-f", name]);
            }
        }
    }
}

fn module_play(name: &str, args: Value) -> testbed::ansible::Run {
    let playbook = json!([{
        "name": "lxd_instance on Incus",
        "hosts": "localhost",
        "gather_facts": false,
        "tasks": [{"name": name, "ansible.legacy.lxd_instance": args, "ignore_errors": true}],
    }]);
    Runner::localhost().run(&playbook.to_string())
}

/// `lxd_inventory --list` with `env`, as JSON; panics with stderr on failure.
fn inventory(env: &[(&str, &str)]) -> Value {
    let mut cmd = Command::new("timeout");
    cmd.arg("60").arg(testbed::dist_binary("lxd_inventory"));
    cmd.arg("--list");
    for (k, _) in std::env::vars() {
        if k.starts_with("LXD_INVENTORY_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run lxd_inventory");
    assert!(
        out.status.success(),
        "lxd_inventory --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--list prints JSON")
}

/// A variable of `host` as Ansible sees it: its own, else a group's that
/// lists it (the inventory puts a host's connection variables on its group).
fn host_var(inv: &Value, host: &str, var: &str) -> Option<Value> {
    if let Some(v) = inv["_meta"]["hostvars"][host].get(var) {
        return Some(v.clone());
    }
    inv.as_object()?.values().find_map(|g| {
        let listed = g["hosts"]
            .as_array()
            .is_some_and(|h| h.iter().any(|x| x == host));
        listed.then(|| g["vars"].get(var).cloned()).flatten()
    })
}

fn incus_ipv4(name: &str) -> Option<String> {
    let out = lxc(&["query", &format!("/1.0/instances/{name}/state")]);
    let state: Value = serde_json::from_slice(&out.stdout).ok()?;
    state["network"]["eth0"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["family"] == "inet" && a["scope"] == "global")
        .and_then(|a| a["address"].as_str())
        .map(str::to_string)
}

#[test]
#[ignore = "needs Incus (scripts/setup-incus.sh); scripts/test.sh runs it"]
fn incus_module_inventory_and_site() {
    // Everything below (our binaries, the connection plugin, the testbed's
    // CLI calls) picks Incus by this; one test in this binary, so no other
    // thread reads the environment meanwhile.
    std::env::set_var("VRRP_BACKEND", "incus");
    assert!(
        std::path::Path::new("/var/lib/incus/unix.socket").exists(),
        "Incus is not running here: run scripts/setup-incus.sh"
    );
    let bridge = incus_bridge();
    let vip: IpAddr = VIP.parse().expect("VIP");
    check_route(vip, &bridge).expect("the VIP routes through the Incus bridge");
    let started = Instant::now();

    // ---- the module: create, re-run, a missing image named as Incus's, delete.
    let name = testbed::unique_name("t-incus-mod");
    let _cleanup = Cleanup(vec![name.clone()]);
    let create = json!({
        "name": name, "state": "started", "url": INCUS_URL,
        "source": {"type": "image", "alias": testbed::image()},
        "profiles": [testbed::profile()],
        "wait_for_ipv4_addresses": true, "timeout": 90,
    });
    let run = module_play("create", create.clone());
    let r = run.task("create", "localhost");
    assert_eq!(r["changed"], json!(true), "create: {r}");
    assert_eq!(r["actions"], json!(["create", "start"]), "create: {r}");
    let ip = r["ipv4_address"].as_str().unwrap_or_default().to_string();
    assert!(ip.starts_with("10.234.0."), "not on the Incus bridge: {r}");
    assert_eq!(incus_ipv4(&name).as_deref(), Some(ip.as_str()));

    let again = module_play("again", create.clone());
    let r = again.task("again", "localhost");
    assert_eq!(r["changed"], json!(false), "re-run changed: {r}");
    assert_ne!(r["failed"], json!(true), "{r}");

    // Found without a url: LXD's socket is there too, VRRP_BACKEND picks Incus.
    let missing = module_play(
        "missing image",
        json!({"name": format!("{name}-x"), "state": "started",
               "source": {"type": "image", "alias": "t-incus-no-such-image"}}),
    );
    let r = missing.task("missing image", "localhost");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        r["failed"] == json!(true) && msg.contains("not found on this Incus"),
        "{r}"
    );

    // ---- the inventory: auto-detected (VRRP_BACKEND) and with an explicit url.
    let inv = inventory(&[]);
    let hv = &inv["_meta"]["hostvars"][&name];
    assert_eq!(hv["ansible_host"], json!(ip), "inventory: {inv}");
    assert_eq!(host_var(&inv, &name, "ansible_lxd_socket"), None);
    let inv = inventory(&[("LXD_INVENTORY_URL", INCUS_URL), ("VRRP_BACKEND", "lxd")]);
    let hv = &inv["_meta"]["hostvars"][&name];
    assert_eq!(hv["ansible_host"], json!(ip), "inventory: {inv}");
    assert_eq!(
        host_var(&inv, &name, "ansible_lxd_socket"),
        Some(json!("/var/lib/incus/unix.socket")),
        "{inv}"
    );
    // The LXD socket lists LXD's instances only: the two are separate.
    let lxd_inv = inventory(&[("VRRP_BACKEND", "lxd")]);
    assert!(lxd_inv["_meta"]["hostvars"].get(&name).is_none());

    let delete = json!({"name": name, "state": "absent", "url": INCUS_URL});
    let r = module_play("delete", delete.clone());
    assert_eq!(r.task("delete", "localhost")["changed"], json!(true));
    assert!(!lxc(&["query", &format!("/1.0/instances/{name}")])
        .status
        .success());
    let r = module_play("delete again", delete);
    assert_eq!(r.task("delete again", "localhost")["changed"], json!(false));
    eprintln!(
        "module and inventory on Incus: {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // ---- site.yml 2+2: the playbooks as a user runs them, VIP answering.
    let started = Instant::now();
    let topo = Topology::new("incus", VIP, VRID);
    topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")])
        .assert_ok();
    let webs = [topo.name("web-01"), topo.name("web-02")];
    let probe = Probe::via(&format!("http://{VIP}/"), &bridge)
        .expect("the VIP routes through the Incus bridge");
    let report = probe.settle(
        "both web nodes through the VIP",
        Duration::from_secs(30),
        |r| {
            r.failed == 0
                && webs
                    .iter()
                    .all(|w| r.backends.keys().any(|b| b.contains(w.as_str())))
        },
    );
    assert_eq!(report.failed, 0, "{report:?}");
    let holder = topo.holder();
    assert!(holder.starts_with(&topo.name("lb-")), "{holder}");
    // cloud-init read its user data through the guest API, as under LXD
    // (setup-incus.sh gives it the socket where it looks, /dev/lxd).
    let ci = topo.sh(&webs[0], "cloud-init status --long");
    assert!(
        ci.contains("status: done") && ci.contains("DataSourceLXD"),
        "{ci}"
    );
    let rerun = topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")]);
    rerun.assert_unchanged();
    eprintln!(
        "site.yml 2+2 on Incus, VIP answering: {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
