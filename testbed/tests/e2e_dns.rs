//! The topology's DNS end to end: the playbooks publish every instance in the
//! zone Knot serves on the load balancers; the names answer through the VIP and
//! each LB's own address, from the LXD host and from an instance (its resolver);
//! outside names fail at once; a converged re-run keeps the serial; add_web and
//! remove_web publish and withdraw a name; a planned stop of the DNS server on
//! the VIP holder loses no query, and a hard stop of the holder loses queries
//! only while the VIP moves.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use testbed::container::instance_ipv4;
use testbed::dns::{expect_answer, reverse_name, serial, DnsProbe, DnsReport};
use testbed::topology::Topology;
use testbed::Probe;

const VIP: &str = "10.231.0.31";
const VRID: &str = "131";

fn vip() -> IpAddr {
    VIP.parse().expect("VIP")
}

fn address(instance: &str) -> IpAddr {
    IpAddr::V4(instance_ipv4(instance).unwrap_or_else(|| panic!("{instance} has no IPv4")))
}

/// A query loop for `name` through the VIP while `f` runs.
fn queried<T>(name: &str, f: impl FnOnce() -> T) -> (T, DnsReport) {
    let running = DnsProbe::new(vip(), &testbed::bridge(), name)
        .expect("the VIP is routed through the bridge")
        .max_duration(Duration::from_secs(300))
        .start();
    let out = f();
    (out, running.stop())
}

/// Waits (bounded) until `lb` holds the VIP again.
fn wait_holder(topo: &Topology, lb: &str, timeout: Duration) {
    let start = Instant::now();
    while topo.holders() != [lb.to_string()] {
        assert!(
            start.elapsed() < timeout,
            "{lb} did not take the VIP back within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn dns_follows_the_topology_and_survives_what_http_survives() {
    let topo = Topology::new("dns", VIP, VRID);
    let zone = topo.zone();
    let lb = |i: u32| topo.name(&format!("lb-{i:02}"));
    let web = |i: u32| topo.name(&format!("web-{i:02}"));
    let fqdn = |n: &str| format!("{n}.{zone}.");

    topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")])
        .assert_ok();

    // Every instance, forward and reverse, through the VIP and each LB.
    let servers = [vip(), address(&lb(1)), address(&lb(2))];
    for instance in [lb(1), lb(2), web(1), web(2)] {
        let addr = address(&instance);
        for server in servers {
            let a = expect_answer(server, &fqdn(&instance), "A");
            assert_eq!(a.addresses, vec![addr], "{instance} at {server}: {a:?}");
            assert!(a.authoritative, "{a:?}");
            let ptr = expect_answer(server, &reverse_name(addr), "PTR");
            assert_eq!(
                ptr.names,
                vec![fqdn(&instance)],
                "PTR {addr} at {server}: {ptr:?}"
            );
        }
    }
    assert_eq!(
        expect_answer(vip(), &fqdn("www"), "A").addresses,
        vec![vip()]
    );
    let ns = expect_answer(vip(), &format!("{zone}."), "NS");
    assert_eq!(ns.names, vec![fqdn(&lb(1)), fqdn(&lb(2))], "{ns:?}");

    // From an instance: its resolver is the VIP and the LBs, the zone its search domain.
    let resolved = topo.sh(&web(1), &format!("getent hosts {} {}", lb(2), web(2)));
    assert!(
        resolved.contains(&address(&lb(2)).to_string())
            && resolved.contains(&address(&web(2)).to_string()),
        "{resolved}"
    );
    let kdig = topo.sh(&web(2), &format!("kdig +short @{VIP} {}", fqdn(&web(1))));
    assert_eq!(kdig.trim(), address(&web(1)).to_string());
    assert!(!topo
        .sh(&web(1), "cat /etc/hosts")
        .contains("vrrp-lxd managed"));

    // Nothing resolves through to the outside, and the refusal is immediate.
    let outside = expect_answer(vip(), "example.com.", "A");
    assert_eq!(outside.rcode, "Refused", "{outside:?}");
    assert!(outside.elapsed < Duration::from_millis(200), "{outside:?}");
    let started = Instant::now();
    let out = testbed::container::lxc(&["exec", &web(1), "--", "getent", "hosts", "example.com"]);
    assert!(
        !out.status.success(),
        "example.com resolved from {}",
        web(1)
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the lookup took {:?}",
        started.elapsed()
    );

    // A converged re-run changes nothing, the serial included.
    let before = serial(vip(), &zone);
    let rerun = topo.playbook("site.yml", &[]);
    rerun.assert_unchanged();
    assert_eq!(serial(vip(), &zone), before);

    // Growth publishes the new name before the playbook ends; removal withdraws it.
    topo.playbook("add_web.yml", &[]).assert_ok();
    let a = expect_answer(vip(), &fqdn(&web(3)), "A");
    assert_eq!(a.addresses, vec![address(&web(3))], "{a:?}");
    assert!(serial(vip(), &zone) > before);
    topo.playbook("remove_web.yml", &[]).assert_ok();
    for server in servers {
        let gone = expect_answer(server, &fqdn(&web(3)), "A");
        assert_eq!(
            gone.rcode,
            "NXDomain",
            "{} at {server} after remove_web: {gone:?}",
            web(3)
        );
    }

    // A planned stop of the DNS server on the VIP holder: the VIP moves first,
    // not one query is lost; and none when it comes back.
    let first = topo.holder();
    let name = fqdn(&web(1));
    let ((), r) = queried(&name, || {
        topo.sh(&first, "systemctl stop knot");
        std::thread::sleep(Duration::from_secs(2));
    });
    eprintln!("planned stop of knot on {first}: {r:?}");
    assert_eq!(
        (r.lost, r.wrong),
        (0, 0),
        "stopping knot on the holder {first}: {r:?}"
    );
    assert_ne!(
        topo.holder(),
        first,
        "the VIP stayed on {first} without its DNS server"
    );
    let ((), r) = queried(&name, || {
        topo.sh(&first, "systemctl start knot");
        wait_holder(&topo, &first, Duration::from_secs(20));
        std::thread::sleep(Duration::from_secs(1));
    });
    eprintln!("knot back on {first}: {r:?}");
    // Its return moves the VIP back by preemption: a query sent in the
    // instant between the old holder letting go of the VIP and the new one's
    // gratuitous ARP goes unanswered (keepalived advertises first,
    // docs/performance.md, "Preemption"), one at most at this rate, as for
    // HTTP in e2e; never a wrong answer.
    assert!(r.lost <= 1 && r.wrong == 0, "knot back on {first}: {r:?}");

    // The holder lost as a whole: queries are lost only while the VIP moves.
    let http = Probe::new(&format!("http://{VIP}/")).expect("VIP").start();
    let ((), r) = queried(&name, || {
        testbed::container::lxc(&["stop", "-f", &first]);
        std::thread::sleep(Duration::from_secs(3));
    });
    let h = http.stop();
    eprintln!(
        "hard stop of {first}: dns {r:?}; http outage {} ms",
        h.longest_outage_ms
    );
    assert!(
        r.longest_outage_ms < 1500.0,
        "DNS down for {} ms: {r:?}",
        r.longest_outage_ms
    );
    let lost_budget = (r.longest_outage_ms / 20.0).ceil() as u64 + 2;
    assert!(r.lost + r.wrong <= lost_budget, "{r:?}");
    let after = DnsProbe::new(vip(), &testbed::bridge(), &name)
        .expect("VIP")
        .run_for(Duration::from_secs(1));
    assert_eq!(
        (after.lost, after.wrong),
        (0, 0),
        "after the VIP moved: {after:?}"
    );
    testbed::container::lxc(&["start", &first]);
    wait_holder(&topo, &first, Duration::from_secs(90));
}
