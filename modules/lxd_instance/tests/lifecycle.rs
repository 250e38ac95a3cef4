//! `lxd_instance` through real `ansible-playbook` runs against the local LXD
//! (unix socket): lifecycle, idempotence, check mode, diff, cloud-init, the
//! IPv4 wait, and failures that leave nothing behind.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

#[test]
fn lifecycle_is_idempotent_with_check_mode_and_diff() {
    let (name, _cleanup) = instance("t-lxd-life");
    let create = with(
        base_args(&name),
        json!({"wait_for_ipv4_addresses": true, "timeout": 90, "groups": ["web", "t"]}),
    );

    // create + start: changed, addresses as LXD reports them.
    let run = play(vec![
        task("create", create.clone(), json!({})),
        task("again", create.clone(), json!({})),
    ]);
    run.assert_ok();
    let r = result(&run, "create");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["create", "start"]));
    assert_eq!(r["old_state"], json!("absent"));
    // The address `lxc list` shows, on the interface it names.
    let listed = lxc_list_ipv4(&name);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let (lxc_ip, iface) = &listed[0];
    assert_eq!(r["addresses"][iface.as_str()], json!([lxc_ip]), "{r}");
    assert_eq!(r["ipv4_address"], json!(lxc_ip));
    assert_eq!(
        lxd_instance(&name).expect("exists")["config"]["user.ansible.groups"],
        json!("web,t")
    );

    // The same task again: nothing to do.
    let r = result(&run, "again");
    assert_eq!(r["changed"], json!(false), "{r}");
    assert_eq!(r["actions"], json!([]));
    assert_eq!(r["old_state"], json!("started"));

    // Check-mode stop: reports the change, the instance keeps running.
    let stop = with(base_args(&name), json!({"state": "stopped"}));
    let run = play(vec![task(
        "stop (check)",
        stop,
        json!({"check_mode": true, "diff": true}),
    )]);
    run.assert_ok();
    let r = result(&run, "stop (check)");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["stop"]));
    assert!(
        r["diff"]["after"]
            .as_str()
            .is_some_and(|a| a.contains("state: stopped")),
        "{r}"
    );
    assert_eq!(status(&name).as_deref(), Some("Running"));

    // Config change: changed, with a diff naming the key; then stable.
    let changed = with(
        create.clone(),
        json!({"config": {"limits.memory": "256MiB", "boot.autostart": false}}),
    );
    let run = play(vec![
        task("config", changed.clone(), json!({"diff": true})),
        task("config again", changed, json!({})),
    ]);
    run.assert_ok();
    let r = result(&run, "config");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["apply_instance_configs"]));
    let before = r["diff"]["before"].as_str().unwrap_or_default();
    let after = r["diff"]["after"].as_str().unwrap_or_default();
    assert!(
        !before.contains("limits.memory") && after.contains("limits.memory: 256MiB"),
        "{r}"
    );
    assert!(
        !after.contains("volatile."),
        "volatile keys are not shown: {after}"
    );
    let cfg = &lxd_instance(&name).expect("exists")["config"];
    assert_eq!(cfg["limits.memory"], json!("256MiB"));
    assert_eq!(cfg["boot.autostart"], json!("false"));
    assert_eq!(result(&run, "config again")["changed"], json!(false));
    assert_eq!(
        status(&name).as_deref(),
        Some("Running"),
        "applied without a restart"
    );

    // replace removes the keys no longer given (but not LXD's own).
    let replace = with(
        create.clone(),
        json!({"config": {"limits.memory": "256MiB"}, "config_mode": "replace"}),
    );
    let run = play(vec![
        task("replace", replace.clone(), json!({})),
        task("replace again", replace, json!({})),
    ]);
    run.assert_ok();
    assert_eq!(result(&run, "replace")["changed"], json!(true));
    assert_eq!(result(&run, "replace again")["changed"], json!(false));
    let cfg = &lxd_instance(&name).expect("exists")["config"];
    assert!(cfg.get("boot.autostart").is_none(), "{cfg}");
    assert_eq!(cfg["user.ansible.groups"], json!("web,t"));
    assert!(cfg.get("volatile.eth0.hwaddr").is_some(), "{cfg}");

    // stop, freeze, restart: each a change, then stable.
    // Clean stops and restarts (no force_stop), also right after a start,
    // while systemd in the instance may still be booting.
    let st = |s: &str| with(base_args(&name), json!({"state": s}));
    let run = play(vec![
        task("stop", st("stopped"), json!({})),
        task("stop again", st("stopped"), json!({})),
        task("freeze", st("frozen"), json!({})),
        task("freeze again", st("frozen"), json!({})),
        task(
            "restart",
            with(
                st("restarted"),
                json!({"wait_for_ipv4_addresses": true, "timeout": 60}),
            ),
            json!({}),
        ),
    ]);
    run.assert_ok();
    assert_eq!(result(&run, "stop")["actions"], json!(["stop"]));
    assert_eq!(result(&run, "stop again")["changed"], json!(false));
    assert_eq!(
        result(&run, "freeze")["actions"],
        json!(["start", "freeze"])
    );
    assert_eq!(result(&run, "freeze again")["changed"], json!(false));
    let r = result(&run, "restart");
    assert_eq!(r["actions"], json!(["unfreeze", "restart"]), "{r}");
    assert!(r["ipv4_address"].is_string(), "{r}");

    // absent: changed, then not; the instance is gone.
    let absent = json!({"name": name, "state": "absent"});
    let run = play(vec![
        task("absent", absent.clone(), json!({"diff": true})),
        task("absent again", absent, json!({})),
    ]);
    run.assert_ok();
    let r = result(&run, "absent");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["stop", "delete"]));
    assert_eq!(r["diff"]["after"], json!(""));
    assert_eq!(result(&run, "absent again")["changed"], json!(false));
    assert!(lxd_instance(&name).is_none(), "{name} still exists");
}

/// `devices` as community.general.lxd_container sets them
/// (`devices_mode: replace`: the given devices are the whole set), next to
/// the default, which keeps devices not listed; config keys merge either way.
/// A stopped instance: created, never started, changed while stopped.
#[test]
fn devices_replace_or_merge_on_a_real_instance() {
    let (name, _cleanup) = instance("t-lxd-dev");
    let proxy = |port: u16| json!({"type": "proxy", "listen": format!("tcp:127.0.0.1:{port}"), "connect": "tcp:127.0.0.1:80"});
    let stopped = |extra: Value| with(base_args(&name), with(json!({"state": "stopped"}), extra));
    let two = stopped(json!({
        "devices": {"a": proxy(8081), "b": proxy(8082)},
        "config": {"user.note": "kept"},
    }));
    let only_a = stopped(json!({
        "devices": {"a": proxy(8081)},
        "devices_mode": "replace",
        "config": {"user.other": "x"},
    }));
    let add_c = stopped(json!({"devices": {"c": proxy(8083)}}));
    let run = play(vec![
        task("two devices", two, json!({})),
        task("replace with a", only_a.clone(), json!({"diff": true})),
        task("replace again", only_a, json!({})),
        task("merge c", add_c.clone(), json!({})),
        task("merge again", add_c, json!({})),
    ]);
    run.assert_ok();
    assert_eq!(result(&run, "two devices")["actions"], json!(["create"]));
    let r = result(&run, "replace with a");
    assert_eq!(r["actions"], json!(["apply_instance_configs"]), "{r}");
    let log = r["log_verbose"].to_string();
    assert!(log.contains("device b: removed"), "{r}");
    assert_eq!(result(&run, "replace again")["changed"], json!(false));
    assert_eq!(result(&run, "merge c")["changed"], json!(true));
    assert_eq!(result(&run, "merge again")["changed"], json!(false));
    let inst = lxd_instance(&name).expect("exists");
    let mut devices: Vec<&String> = inst["devices"]
        .as_object()
        .map(|d| d.keys().collect())
        .unwrap_or_default();
    devices.sort();
    assert_eq!(devices, ["a", "c"], "{inst}");
    assert_eq!(inst["config"]["user.note"], json!("kept"), "config merged");
    assert_eq!(inst["config"]["user.other"], json!("x"));
    assert_eq!(status(&name).as_deref(), Some("Stopped"));
}

#[test]
fn check_mode_create_creates_nothing() {
    let (name, _cleanup) = instance("t-lxd-check");
    let run = play(vec![task(
        "create (check)",
        base_args(&name),
        json!({"check_mode": true, "diff": true}),
    )]);
    run.assert_ok();
    let r = result(&run, "create (check)");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["create", "start"]));
    assert_eq!(r["diff"]["before"], json!(""));
    assert!(r["diff"]["after"]
        .as_str()
        .is_some_and(|a| a.contains("state: started")));
    assert!(lxd_instance(&name).is_none());
}

/// A bool for an int option is an int to Ansible (Python's `True` is 1):
/// `timeout: true` is one second and `timeout: false` zero, not "internal
/// error: parameters do not match the module's types".
#[test]
fn a_bool_for_an_int_option_is_a_number() {
    let (name, _cleanup) = instance("t-lxd-int");
    let run = play(vec![
        task(
            "timeout false",
            with(base_args(&name), json!({"timeout": false})),
            json!({"ignore_errors": true}),
        ),
        task(
            "timeout true (check)",
            with(base_args(&name), json!({"timeout": true})),
            json!({"check_mode": true}),
        ),
    ]);
    let r = result(&run, "timeout false");
    assert_failed_with(&r, &["timeout must be at least 1 second, got 0"]);
    assert_eq!(r["invocation"]["module_args"]["timeout"], json!(false));
    let r = result(&run, "timeout true (check)");
    assert_ne!(r["failed"], json!(true), "{r}");
    assert_eq!(r["actions"], json!(["create", "start"]), "{r}");
    assert!(lxd_instance(&name).is_none());
}

#[test]
fn cloud_init_user_data_runs_and_is_waited_for() {
    let (name, _cleanup) = instance("t-lxd-ci");
    let args = with(
        base_args(&name),
        json!({
            "cloud_init": {"user_data": {
                "write_files": [
                    {"path": "/etc/t-lxd-cloud-init", "content": "written by cloud-init\n"},
                    {"path": "/root/t-lxd-token", "content": "s3cret-in-user-data\n", "permissions": "0600"},
                ],
                "runcmd": [["sh", "-c", "hostname > /etc/t-lxd-runcmd"]],
            }},
            "config": {"environment.T_LXD_TOKEN": "s3cret-in-environment"},
            "wait_for_cloud_init": true,
            "wait_for_ipv4_addresses": true,
            "timeout": 120,
        }),
    );
    let run = play(vec![
        task("create", args.clone(), json!({"diff": true})),
        task("again", args.clone(), json!({})),
        task(
            "shown",
            with(args, json!({"show_secrets": true})),
            json!({}),
        ),
    ]);
    run.assert_ok();
    let r = result(&run, "create");
    assert_eq!(r["cloud_init_status"], json!("done"), "{r}");
    // Neither the user data nor the environment reaches the result, its
    // diff, its log or its invocation unless asked for.
    for task in ["create", "again"] {
        let text = result(&run, task).to_string();
        assert!(
            !text.contains("s3cret-in-user-data") && !text.contains("s3cret-in-environment"),
            "{task}: {text}"
        );
    }
    assert_eq!(
        r["instance"]["config"]["environment.T_LXD_TOKEN"],
        json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"),
        "{r}"
    );
    let shown = result(&run, "shown");
    assert_eq!(
        shown["instance"]["config"]["environment.T_LXD_TOKEN"],
        json!("s3cret-in-environment"),
        "{shown}"
    );
    // The second run reads cloud-init's result file instead of an exec.
    let again = result(&run, "again");
    assert_eq!(again["cloud_init_status"], json!("done"), "{again}");
    assert_eq!(again["changed"], json!(false), "{again}");
    assert!(
        again["log_verbose"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x
                .as_str()
                .is_some_and(|x| x.ends_with(": done (/run/cloud-init/result.json)")))),
        "{again}"
    );
    let cfg = &lxd_instance(&name).expect("exists")["config"];
    assert!(cfg["cloud-init.user-data"]
        .as_str()
        .is_some_and(|u| u.starts_with("#cloud-config\n")));
    // Right after the task, without waiting more: the files are there.
    let out = testbed::container::lxc(&[
        "exec",
        &name,
        "--",
        "cat",
        "/etc/t-lxd-cloud-init",
        "/etc/t-lxd-runcmd",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("written by cloud-init\n{name}\n")
    );
    assert_eq!(result(&run, "again")["changed"], json!(false));
}

#[test]
fn cloud_init_network_config_is_what_eth0_gets() {
    // An address outside the bridge's DHCP range (scripts/env.sh), so no lease
    // can hold it, and one no other test uses.
    let bridge_addr = testbed::bridge_address();
    let (net, prefix) = bridge_addr
        .split_once('/')
        .expect("VRRP_BRIDGE_ADDR is a CIDR");
    let static_ip = format!("{}.241", net.rsplit_once('.').expect("IPv4").0);
    let (name, _cleanup) = instance("t-lxd-net");
    let args = with(
        base_args(&name),
        json!({
            "cloud_init": {"network_config": {"version": 1, "config": [{
                "type": "physical", "name": "eth0",
                "subnets": [{"type": "static", "address": format!("{static_ip}/{prefix}")}],
            }]}},
            "wait_for_cloud_init": true,
            "timeout": 120,
        }),
    );
    let run = play(vec![task("create", args, json!({}))]);
    run.assert_ok();
    assert_eq!(result(&run, "create")["cloud_init_status"], json!("done"));
    // The image brings up DHCP early only when there is no network config; with
    // one, eth0 has the given address and no lease.
    let listed = lxc_list_ipv4(&name);
    assert_eq!(listed, vec![(static_ip, "eth0".to_string())]);
}

/// The root disk's pool from the project's profile (instances without a NIC
/// still need a root disk).
fn root_pool() -> String {
    let out = testbed::container::lxc(&[
        "profile",
        "device",
        "get",
        &testbed::profile(),
        "root",
        "pool",
    ]);
    let pool = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !pool.is_empty(),
        "profile {} has no root disk pool",
        testbed::profile()
    );
    pool
}

#[test]
fn ipv4_wait_without_a_nic_fails_in_time_naming_the_instance() {
    let (name, _cleanup) = instance("t-lxd-nonic");
    let args = json!({
        "name": name,
        "source": testbed::image(),
        "profiles": [],
        "devices": {"root": {"type": "disk", "path": "/", "pool": root_pool()}},
        "wait_for_ipv4_addresses": true,
        "timeout": 4,
    });
    let run = play(vec![task("no nic", args, json!({"ignore_errors": true}))]);
    let r = result(&run, "no nic");
    assert_failed_with(&r, &[&name, "no global IPv4", "within 4 s"]);
    assert_eq!(r["actions"], json!(["create", "start"]), "{r}");
    // The wait itself, as log_verbose times it: the 4 s and one poll more.
    let line = r["log_verbose"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l.as_str())
        .find(|l| l.starts_with("wait for IPv4 ("))
        .unwrap_or_else(|| panic!("no timed wait in {r}"));
    let secs: f64 = line
        .trim_start_matches("wait for IPv4 (")
        .trim_end_matches(" s)")
        .parse()
        .unwrap_or_else(|e| panic!("{line}: {e}"));
    assert!((4.0..8.0).contains(&secs), "the wait took {secs} s: {line}");
}

#[test]
fn bad_input_fails_clearly_and_leaves_nothing() {
    let (name, _cleanup) = instance("t-lxd-bad");
    let run = play(vec![
        task(
            "unknown image",
            with(base_args(&name), json!({"source": "t-lxd/no-such-image"})),
            json!({"ignore_errors": true}),
        ),
        task(
            "missing profile",
            with(
                base_args(&name),
                json!({"profiles": ["t-lxd-no-such-profile"]}),
            ),
            json!({"ignore_errors": true}),
        ),
        task(
            "bad config key",
            with(base_args(&name), json!({"config": {"t-lxd.bogus": "1"}})),
            json!({"ignore_errors": true}),
        ),
        task(
            "nic on a missing bridge",
            with(
                base_args(&name),
                json!({"devices": {"eth1": {"type": "nic", "nictype": "bridged", "parent": "t-lxd-nobr0"}}}),
            ),
            json!({"ignore_errors": true}),
        ),
        task(
            "no source",
            json!({"name": name}),
            json!({"ignore_errors": true}),
        ),
        task(
            "unreachable",
            with(
                base_args(&name),
                json!({"url": "unix:/run/t-lxd-no-such.socket"}),
            ),
            json!({"ignore_errors": true}),
        ),
        task(
            "not https",
            with(base_args(&name), json!({"url": "http://127.0.0.1:8443"})),
            json!({"ignore_errors": true}),
        ),
    ]);
    assert_failed_with(
        &result(&run, "unknown image"),
        &[
            &name,
            "image alias \"t-lxd/no-such-image\" not found",
            "vrrp-lxd/bookworm",
        ],
    );
    assert_failed_with(
        &result(&run, "missing profile"),
        &["profile \"t-lxd-no-such-profile\" does not exist"],
    );
    assert_failed_with(&result(&run, "bad config key"), &[&name, "t-lxd.bogus"]);
    let r = result(&run, "nic on a missing bridge");
    assert_failed_with(&r, &[&name]);
    assert_failed_with(&result(&run, "no source"), &[&name, "source"]);
    assert_failed_with(
        &result(&run, "unreachable"),
        &["cannot reach LXD at unix:/run/t-lxd-no-such.socket"],
    );
    assert_failed_with(
        &result(&run, "not https"),
        &["http://127.0.0.1:8443", "https://"],
    );
    for t in [
        "unknown image",
        "missing profile",
        "bad config key",
        "nic on a missing bridge",
    ] {
        assert_eq!(result(&run, t)["changed"], json!(false), "{t}");
    }
    assert!(
        lxd_instance(&name).is_none(),
        "a failed creation left {name} behind"
    );
}

/// One create -> running -> IPv4 cycle of the module binary alone (no
/// ansible-playbook around it), printed for the record.
#[test]
fn create_running_ipv4_cycle_time() {
    let (name, _cleanup) = instance("t-lxd-time");
    let bin = testbed::module_binary("lxd_instance");
    let dir = tempfile::tempdir().expect("tempdir");
    let args = dir.path().join("args.json");
    let body = with(
        base_args(&name),
        json!({"wait_for_ipv4_addresses": true, "timeout": 60}),
    );
    std::fs::write(&args, body.to_string()).expect("write args");
    let start = Instant::now();
    let out = Command::new(&bin).arg(&args).output().expect("run module");
    let elapsed = start.elapsed();
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(r["actions"], json!(["create", "start"]), "{r}");
    assert!(r["ipv4_address"].is_string(), "{r}");
    eprintln!(
        "lxd_instance create -> running -> IPv4: {:.2} s ({} bytes binary)",
        elapsed.as_secs_f64(),
        std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0)
    );
    assert!(elapsed < Duration::from_secs(60));
}

/// The image's fingerprint as LXD lists it under its alias.
fn image_fingerprint() -> String {
    let out = testbed::container::lxc(&[
        "query",
        &format!("/1.0/images/aliases/{}", testbed::image()),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("alias");
    v["target"].as_str().expect("target").to_string()
}

#[test]
fn sources_by_fingerprint_and_remote_server() {
    let (name, _cleanup) = instance("t-lxd-src");
    let fp = image_fingerprint();
    let by_fp = with(
        base_args(&name),
        json!({"source": {"type": "image", "fingerprint": &fp[..12]}, "state": "stopped"}),
    );
    let remote = with(
        base_args(&name),
        json!({"source": {"server": "https://127.0.0.1:9", "protocol": "simplestreams", "alias": "debian/12"}}),
    );
    let unknown_fp = with(
        base_args(&name),
        json!({"source": {"fingerprint": "0000000000000000"}}),
    );
    let run = play(vec![
        task("remote server down", remote, json!({"ignore_errors": true})),
        task(
            "unknown fingerprint",
            unknown_fp,
            json!({"ignore_errors": true}),
        ),
        task("by fingerprint", by_fp.clone(), json!({})),
        task("by fingerprint again", by_fp, json!({})),
    ]);
    let r = result(&run, "remote server down");
    assert_failed_with(&r, &[&format!("cannot create instance {name}")]);
    assert_eq!(r["changed"], json!(false));
    assert_failed_with(
        &result(&run, "unknown fingerprint"),
        &[&name, "no image with fingerprint \"0000000000000000\""],
    );
    let r = result(&run, "by fingerprint");
    assert_eq!(r["actions"], json!(["create"]), "{r}");
    assert!(
        r.get("addresses").is_none(),
        "a stopped instance has none: {r}"
    );
    assert_eq!(
        result(&run, "by fingerprint again")["changed"],
        json!(false)
    );
    let inst = lxd_instance(&name).expect("created");
    assert_eq!(inst["status"], json!("Stopped"));
    assert_eq!(inst["config"]["volatile.base_image"], json!(fp));
}

/// Removes the test project (and anything left in it) when dropped.
struct Project(String);

impl Drop for Project {
    fn drop(&mut self) {
        if !testbed::keep() {
            let out = testbed::container::lxc(&[
                "list",
                "--project",
                &self.0,
                "--format",
                "csv",
                "-c",
                "n",
            ]);
            for n in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = testbed::container::lxc(&["delete", "-f", "--project", &self.0, n.trim()]);
            }
            let _ = testbed::container::lxc(&["project", "delete", &self.0]);
        }
    }
}

#[test]
fn instances_in_a_project() {
    let project = Project(testbed::unique_name("t-lxd-proj"));
    let out = testbed::container::lxc(&[
        "project",
        "create",
        &project.0,
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=false",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let name = testbed::unique_name("t-lxd-inproj");
    let args = with(
        base_args(&name),
        json!({"project": project.0, "wait_for_ipv4_addresses": true, "timeout": 60, "groups": ["web"]}),
    );
    let run = play(vec![
        task("create", args.clone(), json!({})),
        task("again", args, json!({})),
        task(
            "absent",
            json!({"name": name, "project": project.0, "state": "absent"}),
            json!({}),
        ),
    ]);
    run.assert_ok();
    assert_eq!(
        result(&run, "create")["actions"],
        json!(["create", "start"])
    );
    assert!(result(&run, "create")["ipv4_address"].is_string());
    assert_eq!(result(&run, "again")["changed"], json!(false));
    assert_eq!(result(&run, "absent")["actions"], json!(["stop", "delete"]));
    assert!(lxd_instance(&name).is_none(), "not in the default project");
}

/// `instances`: two launched in one task, side by side, each with its own
/// groups over the task's options; a second run changes nothing; an entry
/// that cannot be made fails the task naming it while the others are made;
/// `name` and `instances` together are refused; one task deletes them all.
#[test]
fn instances_side_by_side_in_one_task() {
    let (a, _ca) = instance("t-lxd-many-a");
    let (b, _cb) = instance("t-lxd-many-b");
    let (c, _cc) = instance("t-lxd-many-c");
    let launch = |names: Vec<Value>| {
        json!({
            "instances": names,
            "source": testbed::image(),
            "profiles": [testbed::profile()],
            "wait_for_ipv4_addresses": true,
            "timeout": 120,
        })
    };
    let both = vec![
        json!({"name": a, "groups": ["t_many_a"]}),
        json!({"name": b, "groups": ["t_many_b"], "config": {"limits.memory": "256MiB"}}),
    ];
    let run = play(vec![
        task("launch", launch(both.clone()), json!({})),
        task("again", launch(both), json!({})),
        task(
            "one cannot be made",
            launch(vec![
                json!({"name": a}),
                json!({"name": c, "profiles": ["no-such-profile"]}),
            ]),
            json!({"ignore_errors": true}),
        ),
        task(
            "name and instances",
            json!({"name": a, "instances": [{"name": b}]}),
            json!({"ignore_errors": true}),
        ),
        task(
            "delete",
            json!({"instances": [{"name": a}, {"name": b}], "state": "absent", "force_stop": true}),
            json!({}),
        ),
    ]);
    let r = result(&run, "launch");
    assert_eq!(r["changed"], json!(true), "{r}");
    let entries = r["instances"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 2, "{r}");
    assert_eq!(entries[0]["name"], json!(a));
    assert_eq!(entries[0]["actions"], json!(["create", "start"]), "{r}");
    assert!(entries[1]["ipv4_address"].is_string(), "{r}");
    assert_eq!(
        entries[1]["instance"]["config"]["user.ansible.groups"],
        json!("t_many_b"),
        "{r}"
    );
    assert_eq!(
        entries[1]["instance"]["config"]["limits.memory"],
        json!("256MiB")
    );
    let r = result(&run, "again");
    assert_eq!(r["changed"], json!(false), "{r}");
    let r = result(&run, "one cannot be made");
    assert_failed_with(&r, &["1 of 2 instances failed", &c, "no-such-profile"]);
    assert_eq!(r["instances"][0]["changed"], json!(false), "{r}");
    assert_eq!(r["instances"][1]["failed"], json!(true), "{r}");
    assert!(lxd_instance(&c).is_none(), "{c} left behind");
    let r = result(&run, "name and instances");
    assert_failed_with(&r, &["mutually exclusive", "name", "instances"]);
    run.assert_ok();
    let r = result(&run, "delete");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert!(lxd_instance(&a).is_none() && lxd_instance(&b).is_none());
}
