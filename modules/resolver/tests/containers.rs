//! `resolver` on a real container through `ansible-playbook`: files the dns
//! role's earlier copy and blockinfile tasks wrote are reported unchanged (and
//! those tasks find ours unchanged); check mode writes nothing; a change is
//! made once; the hosts block is taken out leaving the rest of the file; a
//! link at /etc/resolv.conf is replaced, never written through; bad input
//! fails with the option's name and leaves every file as it was.

use serde_json::Value;
use testbed::ansible::{module_task, play, Run, Runner};
use testbed::Container;

const HOOK: &str = "/etc/dhcp/dhclient-enter-hooks.d/vrrp-lxd-resolver";

/// What the role's "Keep dhclient from rewriting /etc/resolv.conf" task wrote.
const OLD_HOOK: &str = "\
# Managed by Ansible (vrrp-lxd dns role): /etc/resolv.conf names the
# topology's name servers; dhclient leaves it as it is (dhclient-script(8)).
make_resolv_conf() { :; }
";

/// What "Resolve through the zone's servers" wrote for these servers.
const OLD_RESOLV: &str = "\
# Managed by Ansible (vrrp-lxd dns role): the servers of t-resolv.internal.
search t-resolv.internal
nameserver 10.231.0.41
nameserver 10.231.0.42
options timeout:1 attempts:2
";

/// What "Every name in /etc/hosts as well" appended for these hosts.
const OLD_BLOCK: &str = "\
# BEGIN vrrp-lxd managed hosts
10.231.0.42 lb-01.t-resolv.internal lb-01
10.231.0.43 web-01.t-resolv.internal web-01
10.231.0.41 www.t-resolv.internal www
# END vrrp-lxd managed hosts
";

fn args(nameservers: &str, state: &str) -> String {
    format!(
        "search: t-resolv.internal\n\
         nameservers: [{nameservers}]\n\
         keep_dhclient: true\n\
         hosts_state: {state}\n\
         hosts:\n\
         \x20 - {{address: 10.231.0.42, name: lb-01.t-resolv.internal, aliases: [lb-01]}}\n\
         \x20 - {{address: 10.231.0.43, name: web-01.t-resolv.internal, aliases: [web-01]}}\n\
         \x20 - {{address: 10.231.0.41, name: www.t-resolv.internal, aliases: [www]}}"
    )
}

const SERVERS: &str = "10.231.0.41, 10.231.0.42";

/// One run of the module on `c`: the run and the task's result.
fn once(runner: &Runner, c: &Container, args: &str) -> (Run, Value) {
    let run = runner.run(&play("resolver", &[module_task("resolver", "R", args)]));
    let r = run.task("R", &c.name);
    (run, r)
}

/// The three files as the test reads them.
fn files(c: &Container) -> (String, String, String) {
    (
        c.read_file(HOOK),
        c.read_file("/etc/resolv.conf"),
        c.read_file("/etc/hosts"),
    )
}

#[test]
fn converges_with_the_old_tasks_and_changes_only_what_differs() {
    testbed::module_binary("resolver");
    let c = Container::launch("t-resolv");
    let runner =
        Runner::for_containers(&[&c]).env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini");

    // The files as the old tasks left them, written by hand.
    let base_hosts = c.read_file("/etc/hosts");
    assert!(!base_hosts.contains("vrrp-lxd managed"), "{base_hosts}");
    c.sh("rm -f /etc/resolv.conf");
    c.write_file(HOOK, OLD_HOOK);
    c.write_file("/etc/resolv.conf", OLD_RESOLV);
    c.write_file("/etc/hosts", &format!("{base_hosts}{OLD_BLOCK}"));
    c.sh(&format!("chown root:root {HOOK} /etc/resolv.conf /etc/hosts && chmod 0644 {HOOK} /etc/resolv.conf /etc/hosts"));
    let before = files(&c);

    let (run, r) = once(&runner.clone().diff(), &c, &args(SERVERS, "present"));
    run.assert_ok();
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(r["changed_files"], serde_json::json!([]), "{r}");
    assert_eq!(files(&c), before);

    // And the old tasks find what the module keeps unchanged.
    let old = runner.scenario("resolver_old_tasks.yml");
    old.assert_ok();
    assert_eq!(old.changed_total(), 0, "{}", old.stdout);

    // Check mode: reported, nothing written.
    let (run, r) = once(
        &runner.clone().check().diff(),
        &c,
        &args("10.231.0.51", "present"),
    );
    run.assert_ok();
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        r["changed_files"],
        serde_json::json!(["/etc/resolv.conf"]),
        "{r}"
    );
    // One file's diff comes as an object, several as a list.
    let diffs: Vec<Value> = match &r["diff"] {
        Value::Array(list) => list.clone(),
        one => vec![one.clone()],
    };
    assert_eq!(diffs.len(), 1, "{r}");
    let after = diffs[0]["after"].as_str().unwrap_or_default();
    assert!(after.contains("nameserver 10.231.0.51\n"), "{r}");
    assert_eq!(files(&c), before);

    // The change, once.
    let (run, r) = once(&runner, &c, &args("10.231.0.51", "present"));
    run.assert_ok();
    assert_eq!(r["changed"], true, "{r}");
    let resolv = c.read_file("/etc/resolv.conf");
    assert!(
        resolv.contains("nameserver 10.231.0.51\noptions") && !resolv.contains("0.41"),
        "{resolv}"
    );
    let (_, r) = once(&runner, &c, &args("10.231.0.51", "present"));
    assert_eq!(r["changed"], false, "{r}");

    // The block out, the rest of /etc/hosts as it was; then unchanged.
    let (run, r) = once(&runner, &c, &args(SERVERS, "absent"));
    run.assert_ok();
    assert_eq!(r["hosts_block"], "absent", "{r}");
    assert_eq!(c.read_file("/etc/hosts"), base_hosts);
    let (_, r) = once(&runner, &c, &args(SERVERS, "absent"));
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(c.read_file("/etc/resolv.conf"), OLD_RESOLV);

    // A link at /etc/resolv.conf is replaced; what it pointed at is untouched.
    c.sh("printf 'nameserver 127.0.0.53\\n' > /run/stub-resolv.conf && ln -sf /run/stub-resolv.conf /etc/resolv.conf");
    let (run, r) = once(&runner, &c, &args(SERVERS, "absent"));
    run.assert_ok();
    assert_eq!(
        r["changed_files"],
        serde_json::json!(["/etc/resolv.conf"]),
        "{r}"
    );
    assert!(c
        .exec("test -f /etc/resolv.conf && test ! -L /etc/resolv.conf")
        .status
        .success());
    assert_eq!(c.read_file("/etc/resolv.conf"), OLD_RESOLV);
    assert_eq!(
        c.read_file("/run/stub-resolv.conf"),
        "nameserver 127.0.0.53\n"
    );
    assert_eq!(
        c.sh("stat -c '%a %U %G' /etc/resolv.conf").trim(),
        "644 root root"
    );

    // Bad input: refused with the option's name, nothing touched.
    let now = files(&c);
    for (bad, msg) in [
        (
            args(SERVERS, "present").replace("aliases: [web-01]", "aliases: ['web 01;reboot']"),
            "hosts[1].aliases[0]: \"web 01;reboot\" is not a valid DNS name",
        ),
        (
            args("\"10.231.0.41\\nnameserver 6.6.6.6\"", "present"),
            "nameservers[0]: \"10.231.0.41\\nnameserver 6.6.6.6\" is not an IP address",
        ),
        (
            args(SERVERS, "present").replace("search: t-resolv.internal", "search: '$(reboot)'"),
            "search: \"$(reboot)\" is not a valid DNS name",
        ),
        (
            format!("{}\nx: 1", args(SERVERS, "present")),
            "Unsupported parameters for (ansible.legacy.resolver) module: x",
        ),
        (
            "nameservers: [10.0.0.1]".to_string(),
            "missing parameter(s) required by 'nameservers': search",
        ),
        (
            "hosts_state: present\nhosts: [{name: a}]".to_string(),
            "missing required arguments: address",
        ),
    ] {
        let (_, r) = once(&runner, &c, &bad);
        assert_eq!(r["failed"], true, "{bad}: {r}");
        assert!(
            r["msg"].as_str().is_some_and(|m| m.starts_with(msg)),
            "{bad}: {r}"
        );
    }
    assert_eq!(files(&c), now);
}
