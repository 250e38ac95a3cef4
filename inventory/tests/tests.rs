//! `lxd_inventory` against the real LXD: what it reports must match what
//! `lxc list` says, it must drive a real `ansible-inventory` and
//! `ansible-playbook`, and it must fail cleanly.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testbed::ansible::{path_with_venv, Runner};
use testbed::{container::lxc, venv_bin, Container, LaunchOpts};

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lxd_inventory"))
}

/// Runs the binary with a clean `LXD_INVENTORY_*` environment plus `env`.
fn run_with(bin: &Path, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args).current_dir(cwd);
    for (k, _) in std::env::vars() {
        if k.starts_with("LXD_INVENTORY_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run lxd_inventory")
}

/// `--list` as JSON; panics with stderr when it fails.
fn list(env: &[(&str, &str)]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_with(&binary(), &["--list"], env, dir.path());
    assert!(
        out.status.success(),
        "lxd_inventory --list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--list prints JSON")
}

fn hosts(inv: &Value, group: &str) -> Vec<String> {
    inv[group]["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h.as_str().map(String::from))
        .collect()
}

/// `lxc list --format json`: name -> (status, first global IPv4 of eth0).
fn lxc_list() -> BTreeMap<String, (String, Option<String>)> {
    let out = lxc(&["list", "--format", "json"]);
    assert!(
        out.status.success(),
        "lxc list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).expect("lxc list prints JSON");
    all.as_array()
        .expect("a list")
        .iter()
        .map(|i| {
            let ip = i["state"]["network"]["eth0"]["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["family"] == "inet" && a["scope"] == "global")
                .and_then(|a| a["address"].as_str())
                .map(String::from);
            let name = i["name"].as_str().unwrap_or_default().to_owned();
            let status = i["status"].as_str().unwrap_or_default().to_owned();
            (name, (status, ip))
        })
        .collect()
}

fn launch(groups: &str, extra: &[(&str, &str)]) -> Container {
    let mut config = vec![("user.ansible.groups".to_owned(), groups.to_owned())];
    config.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    Container::launch_with(
        "t-inv",
        LaunchOpts {
            config,
            ..LaunchOpts::default()
        },
    )
}

#[test]
fn hosts_and_ipv4s_agree_with_lxc_list_and_groups_come_from_user_ansible_groups() {
    let a = launch("lb,web", &[("user.tier", "gold")]);
    let b = launch("web", &[]);

    // Other suites create and delete instances meanwhile: compare only what two
    // `lxc list` runs around ours agree on.
    let before = lxc_list();
    let inv = list(&[]);
    let after = lxc_list();
    let hostvars = inv["_meta"]["hostvars"]
        .as_object()
        .expect("_meta.hostvars");
    let mut compared = 0;
    for (name, seen) in &before {
        if after.get(name) != Some(seen) {
            continue;
        }
        let (status, ip) = seen;
        let hv = hostvars.get(name).unwrap_or_else(|| {
            panic!("{name} ({status}) is in `lxc list` but not in the inventory")
        });
        assert_eq!(hv["lxd_status"], status.to_lowercase(), "{name}");
        if status == "Running" {
            assert_eq!(
                hv["ansible_host"].as_str(),
                ip.as_deref(),
                "{name}: ansible_host"
            );
            assert!(hosts(&inv, "status_running").contains(name), "{name}");
            compared += 1;
        } else {
            assert!(
                hv.get("ansible_host").is_none(),
                "{name}: not running, no ansible_host"
            );
            assert!(hosts(&inv, "stopped").contains(name), "{name}");
        }
    }
    for name in hostvars.keys() {
        assert!(
            before.contains_key(name) || after.contains_key(name),
            "{name} is in the inventory but in neither `lxc list`"
        );
    }
    assert!(compared >= 2, "our two running containers were compared");
    for c in [&a, &b] {
        assert_eq!(
            hostvars[&c.name]["ansible_host"],
            c.ipv4.to_string(),
            "{}",
            c.name
        );
        assert_eq!(hostvars[&c.name]["ansible_lxd_host"], c.name.as_str());
        assert_eq!(
            hostvars[&c.name]["lxd_profiles"],
            serde_json::json!(["vrrp-lxd"])
        );
        assert_eq!(hostvars[&c.name]["lxd_type"], "container");
        assert!(hosts(&inv, "web").contains(&c.name));
        assert!(hosts(&inv, "lxd").contains(&c.name));
        assert!(hosts(&inv, "profile_vrrp_lxd").contains(&c.name));
    }
    assert!(hosts(&inv, "lb").contains(&a.name));
    assert!(!hosts(&inv, "lb").contains(&b.name));
    assert_eq!(hostvars[&a.name]["lxd_user_ansible_groups"], "lb,web");
    assert_eq!(hostvars[&a.name]["lxd_user_tier"], "gold");
    assert_eq!(
        inv["lxd"]["vars"]["ansible_connection"],
        "community.general.lxd"
    );

    // `--host` answers the same variables.
    let dir = tempfile::tempdir().expect("tempdir");
    let out = run_with(&binary(), &["--host", &a.name], &[], dir.path());
    assert!(out.status.success());
    let host: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(host["ansible_host"], a.ipv4.to_string());
    assert_eq!(host["lxd_user_ansible_groups"], "lb,web");

    // Group rules from the environment: keyed groups, no automatic ones.
    let inv = list(&[
        ("LXD_INVENTORY_GROUP_BY", ""),
        ("LXD_INVENTORY_CONFIG", ""),
        ("LXD_INVENTORY_CONNECTION", "ssh"),
    ]);
    assert!(inv.get("profile_vrrp_lxd").is_none());
    assert_eq!(inv["lxd"]["vars"]["ansible_connection"], "ssh");
    assert!(hosts(&inv, "lb").contains(&a.name));

    // The real thing: ansible-inventory reads the groups, ansible-playbook
    // reaches both containers through the variables it gave.
    let graph = Command::new(venv_bin("ansible-inventory"))
        .args(["-i"])
        .arg(binary())
        .args(["--graph", "lb"])
        .env("PATH", path_with_venv())
        .output()
        .expect("run ansible-inventory");
    let text = String::from_utf8_lossy(&graph.stdout);
    assert!(
        graph.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&graph.stderr)
    );
    assert!(text.contains(&a.name) && !text.contains(&b.name), "{text}");

    // The connection variables are the inventory's group variables: a user's
    // group_vars beside the playbook override them.
    let pd = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(pd.path().join("group_vars")).expect("mkdir");
    std::fs::write(
        pd.path().join("group_vars/lb.yml"),
        "ansible_connection: ansible.builtin.ssh\n",
    )
    .expect("write group_vars");
    let host_vars = |name: &str| -> Value {
        let out = Command::new(venv_bin("ansible-inventory"))
            .arg("-i")
            .arg(binary())
            .arg("--playbook-dir")
            .arg(pd.path())
            .args(["--host", name])
            .env("PATH", path_with_venv())
            .output()
            .expect("run ansible-inventory");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    };
    assert_eq!(
        host_vars(&a.name)["ansible_connection"],
        "ansible.builtin.ssh"
    );
    assert_eq!(
        host_vars(&b.name)["ansible_connection"],
        "community.general.lxd"
    );

    let run = Runner::with_inventory(String::new())
        .arg("-i")
        .arg(&binary().display().to_string())
        .arg("--limit")
        .arg(&format!("{},{}", a.name, b.name))
        .extra_var("ansible_python_interpreter", "/usr/bin/python3")
        .run(
            "- hosts: web\n  gather_facts: false\n  tasks:\n\
             \x20   - name: hostname\n      ansible.builtin.command: cat /etc/hostname\n      changed_when: false\n\
             \x20   - name: where\n      ansible.builtin.debug:\n        msg: \"{{ group_names | join(',') }} {{ ansible_host }}\"\n",
        );
    run.assert_ok();
    for c in [&a, &b] {
        assert_eq!(run.task("hostname", &c.name)["stdout"], c.name.as_str());
        let msg = run.task("where", &c.name)["msg"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(msg.ends_with(&format!(" {}", c.ipv4)), "{msg}");
    }
    let msg_a = run.task("where", &a.name)["msg"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(msg_a.contains("lb,") && msg_a.contains("web"), "{msg_a}");
}

/// The addresses come from the bridge's DHCP leases (`address_source:
/// leases`, the default) where they can, and are the ones the instances'
/// state gives; where the leases cannot tell, the state is read.
#[test]
fn addresses_from_the_leases_agree_with_the_state_which_is_read_where_they_cannot_tell() {
    let a = launch("web", &[]);
    let b = launch("web", &[]);
    let state = [("LXD_INVENTORY_ADDRESS_SOURCE", "state")];
    let from_leases = list(&[]);
    let from_state = list(&state);
    for c in [&a, &b] {
        let ours = &from_leases["_meta"]["hostvars"][&c.name];
        let theirs = &from_state["_meta"]["hostvars"][&c.name];
        assert_eq!(ours["ansible_host"], c.ipv4.to_string(), "{}", c.name);
        // Every variable the same but lxd_addresses: the leased address only
        // (the state also lists the link-local IPv6 address), which shows
        // that the leases gave it.
        let without = |v: &Value| {
            let mut v = v.clone();
            v.as_object_mut().map(|m| m.remove("lxd_addresses"));
            v
        };
        assert_eq!(without(ours), without(theirs), "{}", c.name);
        assert_eq!(
            ours["lxd_addresses"],
            serde_json::json!({"eth0": [format!("{}/24", c.ipv4)]}),
            "{}",
            c.name
        );
        let state_eth0 = theirs["lxd_addresses"]["eth0"].as_array().expect("eth0");
        assert!(state_eth0.len() > 1, "{theirs:#}");
    }

    // A lease counts only with the instance's MAC: with another MAC in a's
    // config (what LXD would give eth0 at its next start), a's lease no longer
    // matches and its state is read; b's still comes from its lease.
    let key = "volatile.eth0.hwaddr";
    let mac = String::from_utf8_lossy(&lxc(&["config", "get", &a.name, key]).stdout)
        .trim()
        .to_owned();
    assert!(lxc(&["config", "set", &a.name, key, "00:16:3e:00:00:01"])
        .status
        .success());
    let inv = list(&[]);
    // Put it back before anything else, so that deleting `a` releases its lease.
    assert!(lxc(&["config", "set", &a.name, key, &mac]).status.success());
    let hv = &inv["_meta"]["hostvars"];
    assert_eq!(hv[&a.name]["ansible_host"], a.ipv4.to_string());
    assert_eq!(
        hv[&a.name]["lxd_addresses"], from_state["_meta"]["hostvars"][&a.name]["lxd_addresses"],
        "a: from its state"
    );
    assert_eq!(
        hv[&b.name]["lxd_addresses"],
        serde_json::json!({"eth0": [format!("{}/24", b.ipv4)]}),
        "b: from its lease"
    );

    // An interface made inside the instance, first in `interface`: no LXD NIC,
    // no lease, so only the state can say whether an instance has it.
    a.sh("ip link add v0 type veth peer name v1 && ip addr add 192.0.2.10/24 dev v0 && ip link set v0 up");
    let inv = list(&[("LXD_INVENTORY_INTERFACE", "v0,eth0")]);
    let hv = &inv["_meta"]["hostvars"];
    assert_eq!(
        hv[&a.name]["ansible_host"], "192.0.2.10",
        "{:#}",
        hv[&a.name]
    );
    assert_eq!(hv[&a.name]["lxd_addresses"]["v0"][0], "192.0.2.10/24");
    assert_eq!(hv[&b.name]["ansible_host"], b.ipv4.to_string());
    // IPv6 is not leased here: the state is read (and there is no global one).
    let inv = list(&[("LXD_INVENTORY_FAMILY", "inet6")]);
    assert!(inv["_meta"]["hostvars"][&a.name]
        .get("ansible_host")
        .is_none());
    assert!(inv["_meta"]["hostvars"][&a.name]["lxd_addresses"]["v0"].is_array());
}

#[test]
fn stopped_instance_is_listed_without_address_in_the_stopped_group() {
    let c = launch("web", &[]);
    c.stop_force();

    let inv = list(&[]);
    let hv = &inv["_meta"]["hostvars"][&c.name];
    assert_eq!(hv["lxd_status"], "stopped", "{inv:#}");
    assert!(hv.get("ansible_host").is_none(), "{hv:#}");
    assert!(hv.get("lxd_ip").is_none(), "{hv:#}");
    assert!(hosts(&inv, "stopped").contains(&c.name));
    assert!(hosts(&inv, "status_stopped").contains(&c.name));
    assert!(hosts(&inv, "lxd").contains(&c.name));
    assert!(
        !hosts(&inv, "web").contains(&c.name),
        "not running: kept out of role groups"
    );

    // Group name from a config file beside the binary.
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("lxd_inventory");
    std::fs::copy(binary(), &bin).expect("copy binary");
    std::fs::write(
        dir.path().join("lxd_inventory.yml"),
        "groups:\n  stopped: powered-off\n  include_stopped: true\n",
    )
    .expect("write config");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let out = run_with(&bin, &["--list"], &[], elsewhere.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inv: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(hosts(&inv, "powered_off").contains(&c.name), "{inv:#}");
    assert!(hosts(&inv, "web").contains(&c.name));

    // State filter: only running instances.
    let inv = list(&[("LXD_INVENTORY_STATE", "running")]);
    assert!(inv["_meta"]["hostvars"].get(&c.name).is_none());
    assert!(inv.get("stopped").is_none());

    c.start();
    c.wait_ipv4(std::time::Duration::from_secs(60));
    let inv = list(&[]);
    assert!(inv["_meta"]["hostvars"][&c.name]["ansible_host"].is_string());
    assert!(!hosts(&inv, "stopped").contains(&c.name));
    assert!(hosts(&inv, "web").contains(&c.name));
}

/// One line on stderr, nothing on stdout, non-zero exit.
fn assert_clean_failure(out: &Output, expect: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail: {stderr}");
    assert!(
        out.stdout.is_empty(),
        "no partial output: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(stderr.starts_with("lxd_inventory: "), "{stderr}");
    assert!(stderr.contains(expect), "expected {expect:?} in: {stderr}");
}

#[test]
fn lxd_down_bad_config_and_bad_certificate_are_one_clear_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cwd = dir.path();
    let sock = cwd.join("no-lxd-here/unix.socket");
    let url = format!("unix:{}", sock.display());
    for args in [&["--list"][..], &["--host", "x"][..]] {
        let out = run_with(&binary(), args, &[("LXD_INVENTORY_URL", &url)], cwd);
        assert_clean_failure(&out, &format!("cannot reach LXD at {url}"));
    }

    // The same through a config file (and LXD_DIR is not consulted then).
    let cfg = cwd.join("down.yml");
    std::fs::write(&cfg, format!("url: {url}\n")).expect("write");
    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_CONFIG", &cfg.display().to_string())],
        cwd,
    );
    assert_clean_failure(&out, "cannot reach LXD at unix:");

    let bad = cwd.join("bad.yml");
    std::fs::write(&bad, "projcet: web\n").expect("write");
    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_CONFIG", &bad.display().to_string())],
        cwd,
    );
    assert_clean_failure(&out, "unknown field `projcet`");

    let missing = cwd.join("missing.toml");
    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_CONFIG", &missing.display().to_string())],
        cwd,
    );
    assert_clean_failure(&out, "cannot read config file");

    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_FAMILY", "ipx")],
        cwd,
    );
    assert_clean_failure(&out, "$LXD_INVENTORY_FAMILY");

    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_PROJECT", "t-inv-no-such-project")],
        cwd,
    );
    assert_clean_failure(&out, "no project \"t-inv-no-such-project\"");

    // A pinned server certificate that is not a certificate.
    let pem = cwd.join("server.crt");
    std::fs::write(&pem, "not a certificate\n").expect("write");
    let out = run_with(
        &binary(),
        &["--list"],
        &[
            ("LXD_INVENTORY_URL", "https://127.0.0.1:1"),
            ("LXD_INVENTORY_SERVER_CERT", &pem.display().to_string()),
        ],
        cwd,
    );
    assert_clean_failure(&out, "server.crt");
}

/// Kills the child it holds when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args([
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl req: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (crt, key)
}

#[test]
fn https_server_with_another_certificate_than_the_pinned_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server_crt, server_key) = self_signed(dir.path(), "server");
    let (other_crt, _) = self_signed(dir.path(), "other");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let _server = Child(
        Command::new("openssl")
            .args([
                "s_server",
                "-quiet",
                "-www",
                "-accept",
                &format!("127.0.0.1:{port}"),
            ])
            .arg("-cert")
            .arg(&server_crt)
            .arg("-key")
            .arg(&server_key)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start openssl s_server"),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let url = format!("https://127.0.0.1:{port}");
    let other = other_crt.display().to_string();
    let out = run_with(
        &binary(),
        &["--list"],
        &[
            ("LXD_INVENTORY_URL", &url),
            ("LXD_INVENTORY_SERVER_CERT", &other),
        ],
        dir.path(),
    );
    assert_clean_failure(&out, "does not match the pinned certificate");

    // Unpinned, a self-signed certificate is refused too, with the way out.
    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_URL", &url)],
        dir.path(),
    );
    assert_clean_failure(&out, "pin it with server_cert");
}

#[test]
fn lxd_that_never_answers_times_out() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("hung.socket");
    // Accepts connections (the kernel's backlog) but never answers.
    let _listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
    let url = format!("unix:{}", sock.display());
    let start = std::time::Instant::now();
    let out = run_with(
        &binary(),
        &["--list"],
        &[("LXD_INVENTORY_URL", &url), ("LXD_INVENTORY_TIMEOUT", "1")],
        dir.path(),
    );
    assert_clean_failure(&out, "did not answer within 1 s");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
}
