//! `lxd_inventory` over the two-host test bed (`make hosts-up`): both nested
//! LXD hosts read over HTTPS with the controller's client certificate and
//! their pinned server certificates, as `hosts.yml` records them.
//!
//! Ignored by plain `cargo test`; run with
//! `cargo test -p lxd_inventory -- --ignored`. Without the test bed it fails
//! and says to run `make hosts-up`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testbed::multihost::{self, LxdHost, NestedInstance};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lxd_inventory"))
}

/// `lxd_inventory --list` with `config` as its settings file and no other
/// `LXD_INVENTORY_*` variable.
fn run(config: &Path, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(binary());
    cmd.arg("--list")
        .current_dir(config.parent().expect("a directory"));
    for (k, _) in std::env::vars() {
        if k.starts_with("LXD_INVENTORY_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("LXD_INVENTORY_CONFIG", config);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lxd_inventory")
}

fn list_ok(config: &Path, extra_env: &[(&str, &str)]) -> (Value, String) {
    let out = run(config, extra_env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "lxd_inventory --list failed: {stderr}"
    );
    let inv = serde_json::from_slice(&out.stdout).expect("--list prints JSON");
    (inv, stderr)
}

/// One line on stderr, nothing on stdout, exit code 1.
fn one_line_failure(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "should fail: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "no partial inventory: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("lxd_inventory: "), "{stderr}");
    stderr
}

fn hosts(inv: &Value, group: &str) -> Vec<String> {
    inv[group]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().map(String::from))
        .collect()
}

/// The group `lxd_inventory` makes for a host (`lxdhost_` + the name made safe).
fn host_group(name: &str) -> String {
    lxd_inventory::inventory::safe_name(&format!("lxdhost_{name}"))
}

/// A settings file listing `entries` (host, url) with the test bed's
/// certificates.
fn write_config(dir: &Path, file: &str, entries: &[(&LxdHost, String)], extra: &str) -> PathBuf {
    let mut text = format!("timeout: 20\n{extra}hosts:\n");
    for (h, url) in entries {
        text.push_str(&format!(
            "  - name: {}\n    url: {url}\n    client_cert: {}\n    client_key: {}\n    server_cert_fingerprint: {}\n    project: {}\n",
            h.name, h.client_cert, h.client_key, h.server_cert_fingerprint, h.project
        ));
    }
    let path = dir.join(file);
    std::fs::write(&path, text).expect("write settings");
    path
}

fn in_lan_dhcp_range(ip: Ipv4Addr) -> bool {
    let [a, b, c, d] = ip.octets();
    (a, b, c) == (10, 232, 0) && (100..=199).contains(&d)
}

#[test]
#[ignore = "needs the two-host test bed (`make hosts-up`); run with `cargo test -p lxd_inventory -- --ignored`"]
fn two_hosts_over_https_with_host_var_groups_and_unreachable_host_handling() {
    // Panics with "run `make hosts-up`" when the test bed is not up, and
    // checks that each host's address is routed through the LAN bridge.
    let bed = multihost::hosts();
    assert!(bed.len() >= 2, "the test bed has two hosts: {bed:?}");
    let (one, two) = (&bed[0], &bed[1]);

    // One small instance per host, launched side by side; each is deleted
    // when dropped, also when an assertion below fails.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| NestedInstance::launch(one, "t-inv-mh-1"));
        let b = s.spawn(|| NestedInstance::launch(two, "t-inv-mh-2"));
        (a.join(), b.join())
    });
    let (a, b) = match (a, b) {
        (Ok(a), Ok(b)) => (a, b),
        (a, b) => panic!(
            "launching the instances failed (the one that started is deleted): {}",
            [a.err(), b.err()]
                .into_iter()
                .flatten()
                .map(|e| e
                    .downcast_ref::<String>()
                    .cloned()
                    .unwrap_or_else(|| "panic".into()))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let both = write_config(
        dir.path(),
        "both.yml",
        &[(one, one.url.clone()), (two, two.url.clone())],
        "",
    );
    let (inv, stderr) = list_ok(&both, &[]);
    assert!(stderr.is_empty(), "no warnings: {stderr}");
    assert_eq!(
        inv["all"]["vars"]["lxd_inventory_warnings"],
        serde_json::json!([])
    );
    let hostvars = &inv["_meta"]["hostvars"];
    for (inst, host) in [(&a, one), (&b, two)] {
        let hv = &hostvars[&inst.name];
        assert!(hv.is_object(), "{} missing from {inv:#}", inst.name);
        assert_eq!(hv["lxd_host"], host.name.as_str(), "{}", inst.name);
        assert_eq!(hv["lxd_status"], "running", "{}", inst.name);
        assert_eq!(hv["ansible_host"], inst.ipv4.to_string(), "{}", inst.name);
        assert!(
            in_lan_dhcp_range(inst.ipv4),
            "{}: {} is not from the LAN's DHCP range 10.232.0.100-199",
            inst.name,
            inst.ipv4
        );
        assert_eq!(hv["ansible_lxd_host"], inst.name.as_str());
        let group = host_group(&host.name);
        assert!(
            hosts(&inv, &group).contains(&inst.name),
            "{} not in {group}",
            inst.name
        );
        // What the lxd_api connection plugin needs to reach the instance.
        let vars = &inv[&group]["vars"];
        assert_eq!(vars["ansible_lxd_url"], host.url.as_str(), "{group}");
        assert_eq!(
            vars["ansible_lxd_server_cert_fingerprint"],
            host.server_cert_fingerprint.as_str(),
            "{group}"
        );
        assert_eq!(vars["ansible_lxd_client_cert"], host.client_cert.as_str());
        assert_eq!(vars["ansible_lxd_client_key"], host.client_key.as_str());
    }
    assert!(!hosts(&inv, &host_group(&one.name)).contains(&b.name));
    assert!(!hosts(&inv, &host_group(&two.name)).contains(&a.name));
    assert!(hosts(&inv, "lxd").contains(&a.name) && hosts(&inv, "lxd").contains(&b.name));

    // Host 2 not there: nothing listens on the port next to its LXD's.
    let refused_url = two.url.replace(":8443", ":8444");
    assert_ne!(refused_url, two.url, "test bed LXD listens on 8443");
    let refused = write_config(
        dir.path(),
        "refused.yml",
        &[(one, one.url.clone()), (two, refused_url.clone())],
        "",
    );
    let line = one_line_failure(&run(&refused, &[]));
    assert!(
        line.contains(&format!(
            "host {}: cannot reach LXD at {refused_url}",
            two.name
        )),
        "{line}"
    );

    // Host 2 accepts the connection but never answers: the timeout names it.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_url = format!("https://{}", hung.local_addr().expect("address"));
    let slow = write_config(
        dir.path(),
        "hung.yml",
        &[(one, one.url.clone()), (two, hung_url.clone())],
        "",
    );
    let start = std::time::Instant::now();
    let line = one_line_failure(&run(&slow, &[("LXD_INVENTORY_TIMEOUT", "3")]));
    assert!(
        line.contains(&format!(
            "host {} ({hung_url}) did not answer within 3 s",
            two.name
        )),
        "{line}"
    );
    assert!(
        start.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        start.elapsed()
    );

    // skip_unreachable: host 1's instances, one warning naming host 2.
    for (config, env, url) in [
        (&refused, vec![], &refused_url),
        (&slow, vec![("LXD_INVENTORY_TIMEOUT", "3")], &hung_url),
    ] {
        let mut env = env;
        env.push(("LXD_INVENTORY_SKIP_UNREACHABLE", "true"));
        let (inv, stderr) = list_ok(config, &env);
        assert_eq!(stderr.lines().count(), 1, "one warning: {stderr}");
        assert!(
            stderr.starts_with(&format!("lxd_inventory: warning: host {}", two.name))
                && stderr.contains(url.as_str()),
            "{stderr}"
        );
        let warnings = inv["all"]["vars"]["lxd_inventory_warnings"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(warnings.len(), 1, "{inv:#}");
        assert!(
            warnings[0]
                .as_str()
                .is_some_and(|w| w.contains(&two.name) && w.contains("skip_unreachable")),
            "{warnings:?}"
        );
        let hv = &inv["_meta"]["hostvars"];
        assert_eq!(hv[&a.name]["lxd_host"], one.name.as_str(), "{inv:#}");
        assert!(
            hv.get(&b.name).is_none(),
            "{} is on the skipped host",
            b.name
        );
        assert!(inv.get(host_group(&two.name)).is_none());
    }
    drop(hung);
    drop((a, b));
}
