//! The module on one real load balancer through `ansible-playbook`: bad input
//! fails with a clear message and leaves every file as it was; check mode
//! reports without writing; a second run changes nothing; state=absent removes
//! the instance. (Failover itself is in failover.rs.)

use testbed::ansible::Runner;
use testbed::Container;

const CONF: &str = "/etc/keepalived/keepalived.conf";

fn task(name: &str, args: &str) -> String {
    format!(
        "    - name: {name}\n      ansible.legacy.keepalived_vrrp:\n{}\n      ignore_errors: true\n",
        args.lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

fn play(tasks: &[String]) -> String {
    format!(
        "- name: keepalived_vrrp\n  hosts: targets\n  gather_facts: false\n  tasks:\n{}",
        tasks.concat()
    )
}

#[test]
fn bad_input_fails_cleanly_check_mode_writes_nothing_and_reruns_change_nothing() {
    testbed::module_binary("keepalived_vrrp");
    let lb = Container::launch("t-ka-mod");
    let out = lb.exec("timeout 120 systemctl is-system-running --wait");
    assert!(out.status.success() || String::from_utf8_lossy(&out.stdout).contains("degraded"));
    // The project's ansible.cfg enables only its inventory binary.
    let runner =
        Runner::for_containers(&[&lb]).env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini");
    let good = "name: VI_mod\nvirtual_router_id: 122\npriority: 120\nvirtual_ipaddress: [\"10.231.0.22/24\"]";

    let first = runner.run(&play(&[task("Good", good)]));
    first.assert_ok();
    let r = first.task("Good", &lb.name);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["interface"], "eth0", "{r}");
    let conf = lb.read_file(CONF);
    assert!(conf.contains("virtual_router_id 122"), "{conf}");
    let dropin = lb.read_file("/etc/systemd/system/haproxy.service.d/keepalived-track.conf");
    assert!(
        dropin.contains(
            "n=40; while [ $$n -gt 0 ] && ip -o addr show | grep -qF -e \" 10.231.0.22/\";"
        ),
        "{dropin}"
    );

    let own_ip = lb.ipv4.to_string();
    let bad: Vec<(&str, String, &str)> = vec![
        (
            "VIP not an address",
            good.replace("10.231.0.22/24", "10.231.0.322/24"),
            "is not an address",
        ),
        (
            "VIP a name",
            good.replace("10.231.0.22/24", "vip.example/24"),
            "is not an address",
        ),
        (
            "Router id out of range",
            good.replace("virtual_router_id: 122", "virtual_router_id: 256"),
            "virtual_router_id must be 1..255",
        ),
        (
            "Priority out of range",
            good.replace("priority: 120", "priority: 0"),
            "priority must be 1..255",
        ),
        (
            "Priority 255 on a backup",
            good.replace("priority: 120", "priority: 255"),
            "use 1..254",
        ),
        (
            "Peers include self",
            format!("{good}\nunicast_peer: [\"10.231.0.99\", \"{own_ip}\"]"),
            "this host's own address",
        ),
        (
            "Auth with v3",
            format!("{good}\nauth_pass: secret12"),
            "needs vrrp_version 2",
        ),
        (
            "Fractional v2 advert",
            format!("{good}\nvrrp_version: 2\nadvert_int: 0.1"),
            "whole",
        ),
        (
            "nopreempt on a master",
            format!("{good}\nnopreempt: true\ninitial_state: MASTER"),
            "initial_state BACKUP",
        ),
        (
            "Unknown interface",
            format!("{good}\ninterface: eth9"),
            "doesn't exist",
        ),
        (
            "Unknown option",
            format!("{good}\nvirtual_router: 1"),
            "Unsupported parameters for (ansible.legacy.keepalived_vrrp) module: virtual_router.",
        ),
    ];
    let tasks: Vec<String> = bad.iter().map(|(n, a, _)| task(n, a)).collect();
    let run = runner.run(&play(&tasks));
    for (name, _, msg) in &bad {
        let r = run.task(name, &lb.name);
        assert_eq!(r["failed"], true, "{name}: {r}");
        let got = r["msg"].as_str().unwrap_or_default();
        assert!(got.contains(msg), "{name}: expected {msg:?} in {got:?}");
        assert_eq!(r["changed"], false, "{name}: {r}");
    }
    assert_eq!(lb.read_file(CONF), conf, "bad input changed the config");
    // The password never shows, even in a failure.
    assert!(
        !run.stdout.contains("secret12"),
        "auth_pass leaked:\n{}",
        run.stdout
    );

    // Check mode with diff: a change is reported and shown, not written.
    let check = runner.clone().check().diff().run(&play(&[task(
        "Good",
        &good.replace("priority: 120", "priority: 130"),
    )]));
    check.assert_ok();
    let r = check.task("Good", &lb.name);
    assert_eq!(r["changed"], true, "{r}");
    assert!(r["diff"].to_string().contains("priority 130"), "{r}");
    assert_eq!(lb.read_file(CONF), conf, "check mode wrote the config");

    // Idempotent.
    let again = runner.run(&play(&[task("Good", good)]));
    again.assert_ok();
    let r = again.task("Good", &lb.name);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["vip_holder"], true, "the only node holds the VIP: {r}");
    assert_eq!(r["instances"]["VI_mod"]["state"], "MASTER", "{r}");

    // v2 with a password: written, masked in the output.
    let v2 = "name: VI_v2\nvirtual_router_id: 123\nvrrp_version: 2\nauth_pass: pw123456\ntrack_haproxy: false\nvirtual_ipaddress: [\"10.231.0.23/24\"]";
    let run = runner.clone().diff().run(&play(&[task("V2", v2)]));
    run.assert_ok();
    assert!(
        !run.stdout.contains("pw123456"),
        "auth_pass leaked:\n{}",
        run.stdout
    );
    let conf2 = lb.read_file(CONF);
    assert!(
        conf2.contains("auth_pass pw123456") && conf2.contains("virtual_router_id 122"),
        "{conf2}"
    );

    // Absent removes only that instance.
    let run = runner.run(&play(&[task("Remove", "name: VI_v2\nstate: absent")]));
    run.assert_ok();
    assert_eq!(run.task("Remove", &lb.name)["changed"], true);
    assert_eq!(lb.read_file(CONF), conf, "absent left something behind");
    let run = runner.run(&play(&[task("Remove", "name: VI_v2\nstate: absent")]));
    assert_eq!(run.task("Remove", &lb.name)["changed"], false);
}
