//! The module on one real load balancer through `ansible-playbook`: bad input
//! (hostile values included) fails with a clear message and leaves every file
//! as it was; check mode reports without writing; a second run changes
//! nothing; other instances' passwords never show in a diff; a reload
//! keepalived refuses puts the old file back; state=absent removes the
//! instance; a service in `track_services` gets its drop-in (whose commands
//! write its file although the unit runs as its own user) and loses it when
//! it leaves the list. (Failover itself is in failover.rs.)

use testbed::ansible::Runner;
use testbed::Container;

const CONF: &str = "/etc/keepalived/keepalived.conf";
const DROPIN: &str = "/etc/systemd/system/haproxy.service.d/keepalived-track.conf";
const TMPFILES: &str = "/etc/tmpfiles.d/keepalived-track.conf";
/// Knot DNS, which the image has (disabled): `User=knot`, `NoNewPrivileges`.
const KNOT_DROPIN: &str = "/etc/systemd/system/knot.service.d/keepalived-track.conf";
const KNOT_TMPFILES: &str = "/etc/tmpfiles.d/keepalived-track-knot.conf";
const KNOT_FILE: &str = "/run/keepalived/knot.down";
/// A link to the real config in a directory every user can write.
const SHARED_LINK: &str = "/tmp/shared/keepalived.conf";

fn task(name: &str, args: &str) -> String {
    testbed::ansible::module_task("keepalived_vrrp", name, args)
}

fn play(tasks: &[String]) -> String {
    testbed::ansible::play("keepalived_vrrp", tasks)
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
    let dropin = lb.read_file(DROPIN);
    let tmpfiles = lb.read_file(TMPFILES);
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
        // Hostile values: refused before anything is written. The first one
        // has no blank, which the old check looked for; written unquoted
        // into the drop-in, it made HAProxy's next start or stop create
        // /tmp/pwned as root.
        (
            "track_file with a redirection",
            format!("{good}\ntrack_file: \"/run/x;>/tmp/pwned\""),
            "track_file must not contain ';'",
        ),
        (
            "track_file with a command",
            format!("{good}\ntrack_file: \"/run/x;touch /tmp/pwned\""),
            "track_file must not contain ';'",
        ),
        (
            "track_file with a newline",
            format!("{good}\ntrack_file: \"/run/x\\ntouch /tmp/pwned\""),
            "track_file must not contain U+000A",
        ),
        (
            "interface with a brace",
            format!("{good}\ninterface: \"eth0}}\""),
            "interface must not contain '}'",
        ),
        (
            "notify with a substitution",
            format!("{good}\nnotify: {{master: \"/bin/true $(touch /tmp/pwned)\"}}"),
            "notify.master must not contain '$'",
        ),
        // A config_path others can redirect: refused even when there is
        // nothing to remove (the old code read through the link then).
        (
            "config_path a link others can change",
            format!("{good}\nconfig_path: {SHARED_LINK}"),
            "is a symbolic link that another user can change",
        ),
        (
            "absent through a link others can change",
            format!("name: VI_gone\nstate: absent\nconfig_path: {SHARED_LINK}"),
            "is a symbolic link that another user can change",
        ),
        (
            "track_services with a path",
            format!("{good}\ntrack_services: [\"../knot\"]"),
            "track_services must not contain '/'",
        ),
        (
            "track_services with a command",
            format!("{good}\ntrack_services: [\"knot;touch /tmp/pwned\"]"),
            "track_services must not contain ';'",
        ),
        (
            "track_services with an option",
            format!("{good}\ntrack_services: [\"--root=/tmp\"]"),
            "track_services must not contain '='",
        ),
        (
            "track_services with haproxy",
            format!("{good}\ntrack_services: [haproxy]"),
            "which track_haproxy tracks",
        ),
        (
            "track_services not installed",
            format!("{good}\ntrack_services: [knot, nosuchd]"),
            "track_services: nosuchd.service is not installed (systemd LoadState: not-found)",
        ),
        (
            "Unknown option",
            format!("{good}\nvirtual_router: 1"),
            "Unsupported parameters for (ansible.legacy.keepalived_vrrp) module: virtual_router.",
        ),
    ];
    // A world-writable directory with a link to the real file in it.
    lb.sh(&format!(
        "mkdir -m 1777 /tmp/shared && ln -s {CONF} {SHARED_LINK} && rm -f /tmp/pwned"
    ));
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
    assert_eq!(
        lb.read_file(DROPIN),
        dropin,
        "bad input changed the drop-in"
    );
    assert_eq!(
        lb.read_file(TMPFILES),
        tmpfiles,
        "bad input changed tmpfiles.d"
    );
    assert!(
        !lb.exec(&format!("test -e {KNOT_DROPIN} || test -e {KNOT_FILE}"))
            .status
            .success(),
        "bad input set up tracking"
    );
    lb.sh(&format!("test -L {SHARED_LINK}"));
    // HAProxy's stop and start run the drop-in: nothing of the values ran.
    lb.sh("systemctl stop haproxy && systemctl start haproxy");
    let pwned = lb.exec("test -e /tmp/pwned");
    assert!(
        !pwned.status.success(),
        "a track_file value ran as a command"
    );
    // keepalived back to MASTER once HAProxy runs again (inotify, at once).
    lb.sh("for i in $(seq 100); do ip -o addr show | grep -qF ' 10.231.0.22/' && exit 0; sleep 0.1; done; exit 1");
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

    track_services_come_and_go(&lb, &runner, good, &conf, &dropin);
    global_defs_come_and_go(&lb, &runner, good, &conf);
    kept_enabled_at_boot(&lb, &runner, good);

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

    // keepalived -t passes but a reload fails (a stand-in ExecReload
    // refuses files with priority 77): the old file goes back, byte for byte,
    // and keepalived is reloaded with it.
    lb.write_file(
        "/etc/systemd/system/keepalived.service.d/test-reload.conf",
        "[Service]\nExecReload=\nExecReload=/bin/sh -c 'if grep -q \"priority 77\" /etc/keepalived/keepalived.conf; \
         then echo refused >&2; exit 1; fi; kill -HUP ${MAINPID}'\n",
    );
    lb.sh("systemctl daemon-reload");
    // One run, with --diff -v: the other instance's diff shows the whole
    // file, and VI_v2's password, written by another task, is masked there
    // too; then the refused reload.
    let run = runner.clone().diff().arg("-v").run(&play(&[
        task("Other", &good.replace("priority: 120", "priority: 125")),
        task(
            "Refused reload",
            &good.replace("priority: 120", "priority: 77"),
        ),
    ]));
    assert!(
        !run.stdout.contains("pw123456"),
        "another instance's auth_pass leaked:\n{}",
        run.stdout
    );
    // -v prints a line before the JSON.
    let json = run
        .stdout
        .find("\n{")
        .map_or("", |at| &run.stdout[at + 1..]);
    let run = testbed::ansible::Run {
        json: serde_json::from_str(json).unwrap_or_default(),
        ..run
    };
    let r = run.task("Other", &lb.name);
    assert_eq!(r["changed"], true, "{r}");
    let diff = r["diff"].to_string();
    assert!(
        diff.contains(r"priority 125\n") && diff.contains(r"auth_pass ********\n"),
        "{r}"
    );
    let r = run.task("Refused reload", &lb.name);
    assert_eq!(r["failed"], true, "{r}");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("keepalived did not reload with the new /etc/keepalived/keepalived.conf")
            && msg.ends_with("the previous file was put back and keepalived reloaded with it"),
        "{msg}"
    );
    assert_eq!(
        lb.read_file(CONF),
        conf2.replace("priority 120", "priority 125"),
        "the old file was not put back"
    );
    lb.sh("systemctl is-active --quiet keepalived");
    lb.sh(
        "rm /etc/systemd/system/keepalived.service.d/test-reload.conf && systemctl daemon-reload",
    );

    // Absent removes only that instance (VI_mod keeps the priority "Other"
    // gave it).
    let run = runner.run(&play(&[task("Remove", "name: VI_v2\nstate: absent")]));
    run.assert_ok();
    assert_eq!(run.task("Remove", &lb.name)["changed"], true);
    assert_eq!(
        lb.read_file(CONF),
        conf.replace("priority 120", "priority 125"),
        "absent left something behind"
    );
    let run = runner.run(&play(&[task("Remove", "name: VI_v2\nstate: absent")]));
    assert_eq!(run.task("Remove", &lb.name)["changed"], false);
}

/// `track_services: [knot]` on the only node: the drop-in, tmpfiles.d entry
/// and file appear (the file says down while knot is stopped: FAULT, no
/// VIP); starting knot, which runs as user knot, writes 0 through the
/// drop-in (the `+` prefix) and the node is MASTER again; a re-run changes
/// nothing; taking knot off the list removes its drop-in and entry and puts
/// the config back as it was, HAProxy's drop-in untouched throughout.
fn track_services_come_and_go(
    lb: &Container,
    runner: &Runner,
    good: &str,
    conf: &str,
    dropin: &str,
) {
    let with_knot = format!("{good}\ntrack_services: [knot]");
    lb.sh("systemctl stop knot");
    let run = runner
        .clone()
        .diff()
        .run(&play(&[task("Knot", &with_knot)]));
    run.assert_ok();
    let r = run.task("Knot", &lb.name);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        r["tracked_services"]["knot.service"],
        serde_json::json!({"file": KNOT_FILE, "running": false}),
        "{r}"
    );
    let conf_knot = lb.read_file(CONF);
    assert!(
        conf_knot.contains("track_file VI_mod_track_knot {\n    file /run/keepalived/knot.down\n    init_file 254\n}")
            && conf_knot.contains("        VI_mod_track weight -1\n        VI_mod_track_knot weight -1\n"),
        "{conf_knot}"
    );
    let knot_dropin = lb.read_file(KNOT_DROPIN);
    assert!(
        knot_dropin
            .contains("ExecStop=-+/bin/sh -c 'echo 253 > /run/keepalived/knot.down; n=40; while"),
        "{knot_dropin}"
    );
    assert!(lb
        .read_file(KNOT_TMPFILES)
        .contains("f /run/keepalived/knot.down 0644 root root - 254"));
    assert_eq!(lb.read_file(KNOT_FILE).trim(), "254");
    assert_eq!(lb.read_file(DROPIN), dropin, "HAProxy's drop-in changed");
    // knot down: FAULT, the VIP leaves (inotify, at once).
    lb.sh("for i in $(seq 100); do ip -o addr show | grep -qF ' 10.231.0.22/' || exit 0; sleep 0.1; done; exit 1");
    lb.sh("systemctl start knot");
    assert_eq!(
        lb.read_file(KNOT_FILE).trim(),
        "0",
        "ExecStartPost did not write as root"
    );
    lb.sh("for i in $(seq 100); do ip -o addr show | grep -qF ' 10.231.0.22/' && exit 0; sleep 0.1; done; exit 1");

    let again = runner.run(&play(&[task("Knot", &with_knot)]));
    again.assert_ok();
    let r = again.task("Knot", &lb.name);
    assert_eq!(r["changed"], false, "{r}");
    assert_eq!(
        r["tracked_services"]["knot.service"]["running"], true,
        "{r}"
    );
    assert_eq!(r["instances"]["VI_mod"]["state"], "MASTER", "{r}");

    // Off the list: check mode shows the removal and keeps the files.
    let check = runner
        .clone()
        .check()
        .diff()
        .run(&play(&[task("Good", good)]));
    check.assert_ok();
    let r = check.task("Good", &lb.name);
    assert_eq!(r["changed"], true, "{r}");
    assert!(r["diff"].to_string().contains(KNOT_DROPIN), "{r}");
    lb.sh(&format!("test -f {KNOT_DROPIN}"));
    let run = runner.run(&play(&[task("Good", good)]));
    run.assert_ok();
    assert_eq!(run.task("Good", &lb.name)["changed"], true);
    assert!(
        !lb.exec(&format!("test -e {KNOT_DROPIN} || test -e {KNOT_TMPFILES} || test -d /etc/systemd/system/knot.service.d"))
            .status
            .success(),
        "knot's drop-in stayed"
    );
    assert_eq!(lb.read_file(CONF), conf, "the config did not go back");
    assert_eq!(lb.read_file(DROPIN), dropin, "HAProxy's drop-in changed");
    // systemd re-read the units: knot's stop no longer runs the drop-in.
    assert!(!lb
        .sh("systemctl show -p DropInPaths --value knot")
        .contains("keepalived-track"));
    lb.sh("systemctl stop knot");
    assert_eq!(lb.read_file(KNOT_FILE).trim(), "0");
    let run = runner.run(&play(&[task("Good", good)]));
    assert_eq!(run.task("Good", &lb.name)["changed"], false);
}

/// `global_defs` keys: written between markers and live after the reload;
/// a task without the option keeps them; a keyword keepalived does not know
/// fails `keepalived -t` and leaves the file as it was; `{}` takes them out
/// and the file is as before.
fn global_defs_come_and_go(lb: &Container, runner: &Runner, good: &str, conf: &str) {
    let with_defs = format!(
        "{good}\nglobal_defs:\n  router_id: t-ka-mod\n  vrrp_garp_master_refresh: 60\n  \
         vrrp_no_swap: null\n  enable_traps: false"
    );
    let run = runner.run(&play(&[task("Globals", &with_defs)]));
    run.assert_ok();
    assert_eq!(run.task("Globals", &lb.name)["changed"], true);
    let conf_defs = lb.read_file(CONF);
    assert!(
        conf_defs.contains(
            "global_defs {\n    # BEGIN keepalived_vrrp global_defs\n    router_id t-ka-mod\n    \
             vrrp_garp_master_refresh 60\n    vrrp_no_swap\n    \
             # END keepalived_vrrp global_defs\n}\n"
        ),
        "{conf_defs}"
    );
    lb.sh("systemctl is-active --quiet keepalived");
    // The instance keeps its VIP through the reload.
    lb.sh("for i in $(seq 100); do ip -o addr show | grep -qF ' 10.231.0.22/' && exit 0; sleep 0.1; done; exit 1");

    let run = runner.run(&play(&[task("Without", good)]));
    run.assert_ok();
    assert_eq!(run.task("Without", &lb.name)["changed"], false);
    assert_eq!(lb.read_file(CONF), conf_defs);

    let unknown = format!("{good}\nglobal_defs:\n  vrrp_no_such_keyword: 1");
    let run = runner.run(&play(&[task("Unknown", &unknown)]));
    let r = run.task("Unknown", &lb.name);
    assert_eq!(r["failed"], true, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("vrrp_no_such_keyword"),
        "keepalived's own complaint is not in the message: {r}"
    );
    assert_eq!(lb.read_file(CONF), conf_defs, "a refused file was written");

    let hostile = format!("{good}\nglobal_defs:\n  router_id: \"x\\n}}\\nvrrp_instance X {{\"");
    let run = runner.run(&play(&[task("Hostile", &hostile)]));
    let r = run.task("Hostile", &lb.name);
    assert_eq!(r["failed"], true, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("global_defs.router_id must not contain U+000A"),
        "{r}"
    );

    let run = runner.run(&play(&[task(
        "Cleared",
        &format!("{good}\nglobal_defs: {{}}"),
    )]));
    run.assert_ok();
    assert_eq!(run.task("Cleared", &lb.name)["changed"], true);
    assert_eq!(
        lb.read_file(CONF),
        conf,
        "clearing global_defs left something"
    );
}

/// With an instance present, keepalived stays enabled at boot: a node where
/// someone disabled it is enabled again (changed, in check mode only
/// reported), and an enabled one is left alone.
fn kept_enabled_at_boot(lb: &Container, runner: &Runner, good: &str) {
    let is_enabled = || {
        lb.sh("systemctl is-enabled keepalived || true")
            .trim()
            .to_string()
    };
    assert_eq!(is_enabled(), "enabled");
    lb.sh("systemctl disable keepalived");
    let check = runner.clone().check().run(&play(&[task("Enable", good)]));
    check.assert_ok();
    let r = check.task("Enable", &lb.name);
    assert_eq!(
        (r["changed"].clone(), r["enabled"].clone()),
        (true.into(), true.into()),
        "{r}"
    );
    assert_eq!(is_enabled(), "disabled", "check mode enabled keepalived");
    let run = runner.run(&play(&[task("Enable", good)]));
    run.assert_ok();
    assert_eq!(run.task("Enable", &lb.name)["changed"], true);
    assert_eq!(is_enabled(), "enabled");
    let again = runner.run(&play(&[task("Enable", good)]));
    let r = again.task("Enable", &lb.name);
    assert_eq!(r["changed"], false, "{r}");
    assert!(r.get("enabled").is_none(), "{r}");
}
