//! The module on a real container with Knot DNS, through `ansible-playbook`,
//! queried over the bridge: names and reverse names answer as soon as the
//! task returns; a second run changes nothing and keeps the serial; a changed
//! record bumps it; names outside the zone are refused at once; bad input
//! fails with the option's name and leaves the served zone as it was; check
//! mode writes nothing; state=absent stops serving the zone.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::Value;
use testbed::ansible::{Run, Runner};
use testbed::dns::{expect_answer, reverse_name, serial};
use testbed::Container;

const ZONE: &str = "t-knot.internal";

fn task(name: &str, args: &str) -> String {
    testbed::ansible::module_task("dns_zone", name, args)
}

fn play(tasks: &[String]) -> String {
    testbed::ansible::play("dns_zone", tasks)
}

fn args(ns_ip: IpAddr, web: &str) -> String {
    format!(
        "zone: {ZONE}\nnameservers: [ns1]\nrecords:\n  - {{name: ns1, value: \"{ns_ip}\"}}\n  - {{name: web-01, value: \"{web}\"}}\n  - {{name: www, type: CNAME, value: web-01}}\n  - {{name: \"@\", type: TXT, value: 'made by \"dns_zone\"', ptr: false}}"
    )
}

fn result(run: &Run, task: &str, host: &Container) -> Value {
    run.task(task, &host.name)
}

#[test]
fn serves_the_zone_converges_and_refuses_bad_input() {
    testbed::module_binary("dns_zone");
    let ns = Container::launch("t-knot");
    let ip = IpAddr::V4(ns.ipv4);
    let runner =
        Runner::for_containers(&[&ns]).env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini");

    // Check mode on a fresh host: nothing written, Knot not started.
    let dry = runner
        .clone()
        .check()
        .run(&play(&[task("Zone", &args(ip, "10.231.0.201"))]));
    dry.assert_ok();
    assert_eq!(result(&dry, "Zone", &ns)["changed"], true);
    assert!(!ns
        .exec(&format!("test -e /etc/knot/zones/{ZONE}.zone"))
        .status
        .success());

    let first = runner.run(&play(&[task("Zone", &args(ip, "10.231.0.201"))]));
    first.assert_ok();
    let r = result(&first, "Zone", &ns);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(
        r["zones"],
        serde_json::json!([ZONE, "0.231.10.in-addr.arpa"]),
        "{r}"
    );
    let a = expect_answer(ip, &format!("web-01.{ZONE}."), "A");
    assert_eq!(
        (a.rcode.as_str(), a.addresses.clone()),
        ("NoError", vec!["10.231.0.201".parse::<IpAddr>().unwrap()])
    );
    assert!(a.authoritative, "{a:?}");
    let cname = expect_answer(ip, &format!("www.{ZONE}."), "A");
    assert_eq!(cname.names, vec![format!("web-01.{ZONE}.")], "{cname:?}");
    let ptr = expect_answer(ip, &reverse_name("10.231.0.201".parse().unwrap()), "PTR");
    assert_eq!(ptr.names, vec![format!("web-01.{ZONE}.")], "{ptr:?}");
    let outside = expect_answer(ip, "example.com.", "A");
    assert_eq!(outside.rcode, "Refused", "{outside:?}");
    assert!(outside.elapsed < Duration::from_millis(200), "{outside:?}");
    let nx = expect_answer(ip, &format!("nothing.{ZONE}."), "A");
    assert_eq!(nx.rcode, "NXDomain", "{nx:?}");
    let serial_1 = serial(ip, ZONE);
    assert_eq!(r["serials"][ZONE], serial_1, "{r}");

    // Again: nothing changes, the serial stays.
    let again = runner.run(&play(&[task("Zone", &args(ip, "10.231.0.201"))]));
    again.assert_ok();
    assert_eq!(result(&again, "Zone", &ns)["changed"], false);
    assert_eq!(serial(ip, ZONE), serial_1);

    // Knot runs at boot as well: enabled by the first run, and again after
    // someone disabled it (changed, the zone untouched); a Knot stopped by
    // hand is started (changed).
    let is_enabled = || {
        ns.sh("systemctl is-enabled knot || true")
            .trim()
            .to_string()
    };
    assert_eq!(is_enabled(), "enabled");
    ns.sh("systemctl disable knot && systemctl stop knot");
    let back = runner.run(&play(&[task("Zone", &args(ip, "10.231.0.201"))]));
    back.assert_ok();
    let r = result(&back, "Zone", &ns);
    assert_eq!(
        (&r["changed"], &r["enabled"], &r["server"]),
        (&true.into(), &true.into(), &"started".into()),
        "{r}"
    );
    assert_eq!(is_enabled(), "enabled");
    assert_eq!(serial(ip, ZONE), serial_1);

    // Bad input: a clear message, and the served zone as it was.
    let before = ns.read_file(&format!("/etc/knot/zones/{ZONE}.zone"));
    let bad_cases = [
        (
            "Bad label",
            args(ip, "10.231.0.202").replace("web-01, value", "web_01, value"),
            "records[1].name: \"web_01\" is not a valid DNS name",
        ),
        (
            "Bad ttl",
            format!("{}\nttl: -1", args(ip, "10.231.0.202")),
            "ttl must be between 0 and 2147483647 seconds, got -1",
        ),
        (
            "Missing dot",
            args(ip, "10.231.0.202").replace("value: web-01}", &format!("value: web-01.{ZONE}}}")),
            "ends with the zone's name but has no final dot",
        ),
        (
            "Unknown option",
            format!("{}\nrecord: []", args(ip, "10.231.0.202")),
            "Unsupported parameters for (ansible.legacy.dns_zone) module: record",
        ),
        // Passes the module's checks, refused by kzonecheck: a CNAME beside other data.
        (
            "Checker refuses",
            format!(
                "{}\n  - {{name: web-01, type: TXT, value: x}}",
                args(ip, "10.231.0.202").replace(
                    "name: www, type: CNAME, value: web-01",
                    "name: web-01, type: CNAME, value: ns1"
                )
            ),
            "failed to validate",
        ),
    ];
    let tasks: Vec<String> = bad_cases.iter().map(|(n, a, _)| task(n, a)).collect();
    let run = runner.run(&play(&tasks));
    for (name, _, msg) in &bad_cases {
        let r = result(&run, name, &ns);
        assert_eq!(r["failed"], true, "{name}: {r}");
        let got = r["msg"].as_str().unwrap_or_default();
        assert!(got.contains(msg), "{name}: {got}");
    }
    assert_eq!(
        ns.read_file(&format!("/etc/knot/zones/{ZONE}.zone")),
        before
    );
    assert_eq!(
        expect_answer(ip, &format!("web-01.{ZONE}."), "A").addresses,
        vec!["10.231.0.201".parse::<IpAddr>().unwrap()]
    );
    assert!(
        ns.exec("ls /etc/knot/zones | grep -v '\\.zone$'")
            .stdout
            .is_empty(),
        "a temp file was left"
    );

    // A changed record: answered when the task returns, the serial moves on.
    let moved = runner.run(&play(&[task("Zone", &args(ip, "10.231.0.203"))]));
    moved.assert_ok();
    assert_eq!(result(&moved, "Zone", &ns)["changed"], true);
    assert_eq!(
        expect_answer(ip, &format!("web-01.{ZONE}."), "A").addresses,
        vec!["10.231.0.203".parse::<IpAddr>().unwrap()]
    );
    assert_eq!(
        expect_answer(ip, &reverse_name("10.231.0.201".parse().unwrap()), "PTR").rcode,
        "NXDomain"
    );
    assert!(serial(ip, ZONE) > serial_1);

    // Absent: the zone is no longer served, its files are gone.
    let gone = runner.run(&play(&[task(
        "Zone",
        &format!("zone: {ZONE}\nstate: absent"),
    )]));
    gone.assert_ok();
    assert_eq!(result(&gone, "Zone", &ns)["changed"], true);
    assert_eq!(
        expect_answer(ip, &format!("web-01.{ZONE}."), "A").rcode,
        "Refused"
    );
    assert_eq!(ns.sh("ls /etc/knot/zones | wc -l").trim(), "0");
}
