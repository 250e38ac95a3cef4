//! End to end: the playbooks as a user runs them (`ansible.cfg`, the inventory
//! binary, our modules) on the real LXD, with the bounded probe through the VIP
//! every 20 ms. One topology for the whole test, under its own name prefix, VIP
//! and router id, so it never touches a topology made by `make up`.

use std::time::Duration;

use testbed::topology::{controller_dir, Topology};
use testbed::{Probe, Report};

const VIP: &str = "10.231.0.30";
const VRID: &str = "130";

fn probe() -> Probe {
    Probe::new(&format!("http://{VIP}/")).expect("the VIP is routed through the bridge")
}

fn sample(d: Duration) -> Report {
    probe().run_for(d)
}

/// Probes in short rounds until `done` holds for one round (or the timeout).
fn settle(what: &str, timeout: Duration, done: impl Fn(&Report) -> bool) -> Report {
    probe().settle(what, timeout, done)
}

/// Runs `f` with the probe going; returns the probe's report.
fn probed<T>(f: impl FnOnce() -> T) -> (T, Report) {
    let running = probe().max_duration(Duration::from_secs(600)).start();
    let out = f();
    (out, running.stop())
}

#[test]
fn topology_from_nothing_through_every_outage_and_growth() {
    let topo = Topology::new("e2e", VIP, VRID);
    let web = |i: u32| topo.name(&format!("web-{i:02}"));
    let lb = |i: u32| topo.name(&format!("lb-{i:02}"));

    // Converge from nothing, then again: nothing may change.
    topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")])
        .assert_ok();
    let rerun = topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")]);
    rerun.assert_unchanged();

    // Round robin across both web nodes, nothing failed.
    let webs = vec![web(1), web(2)];
    let report = settle("round robin", Duration::from_secs(30), |r| {
        r.serves_all(&webs)
    });
    let counts: Vec<u64> = report.backends.values().copied().collect();
    assert!(
        counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0) <= 2,
        "not round robin: {report:?}"
    );

    // The seed's outage cases, each restored before the next.
    for (down, up) in [(web(1), web(2)), (web(2), web(1))] {
        topo.sh(&down, "systemctl stop apache2");
        settle(&format!("{down} down"), Duration::from_secs(30), |r| {
            r.serves_only(std::slice::from_ref(&up))
        });
        let r = sample(Duration::from_secs(2));
        assert!(
            r.serves_only(std::slice::from_ref(&up)),
            "{down} down: {r:?}"
        );
        topo.sh(&down, "systemctl start apache2");
        settle(&format!("{down} back"), Duration::from_secs(30), |r| {
            r.serves_all(&webs)
        });
    }

    topo.sh(&web(1), "systemctl stop apache2");
    topo.sh(&web(2), "systemctl stop apache2");
    let r = settle("both web nodes down", Duration::from_secs(30), |r| {
        r.statuses.get(&503) == Some(&r.requests)
    });
    assert_eq!(
        r.no_answer, 0,
        "HAProxy must still answer (503) with every web node down: {r:?}"
    );
    let (status, body) = probe().fetch(&[]).expect("HAProxy answers");
    assert_eq!(status, 503);
    assert!(
        body.contains("No server is available"),
        "HAProxy's 503 page: {body}"
    );
    topo.sh(&web(1), "systemctl start apache2");
    topo.sh(&web(2), "systemctl start apache2");
    settle("web nodes back", Duration::from_secs(30), |r| {
        r.serves_all(&webs)
    });

    // HAProxy down on the VIP holder: the VIP moves while HAProxy still
    // answers, so nothing is lost but what a VIP move costs any client: a
    // connection whose packets change LB half-way (reset), or a SYN sent in
    // the instant between the old holder letting go of the VIP and the new
    // one's gratuitous ARP (keepalived advertises first, docs/performance.md,
    // "Preemption"). At 50 requests/s that is one at most; a stop that let
    // HAProxy go before the VIP would lose every request until a backup took
    // over (its skew time at least: several at this rate).
    let first = topo.holder();
    let ((), r) = probed(|| {
        topo.sh(&first, "systemctl stop haproxy");
        std::thread::sleep(Duration::from_secs(2));
    });
    assert!(
        r.failed <= 1,
        "stopping HAProxy on the holder {first}: {r:?}"
    );
    assert_ne!(
        topo.holder(),
        first,
        "the VIP stayed on {first} without HAProxy"
    );
    // Its return moves the VIP back by preemption: a request in flight to the
    // backup at that instant may be lost (docs/performance.md, "Soak"): one
    // at most.
    let ((), r) = probed(|| {
        topo.sh(&first, "systemctl start haproxy");
        std::thread::sleep(Duration::from_secs(2));
    });
    assert!(r.failed <= 1, "HAProxy back on {first}: {r:?}");

    // HAProxy down on the other LB alone: nothing to see from outside.
    let other = if first == lb(1) { lb(2) } else { lb(1) };
    let holder_before = topo.holder();
    let ((), r) = probed(|| {
        topo.sh(&other, "systemctl stop haproxy");
        std::thread::sleep(Duration::from_secs(2));
    });
    assert_eq!(r.failed, 0, "HAProxy down on {other}: {r:?}");
    assert_eq!(topo.holder(), holder_before);
    topo.sh(&other, "systemctl start haproxy");

    // Both HAProxy down: an outage, then recovery.
    topo.sh(&lb(1), "systemctl stop haproxy");
    topo.sh(&lb(2), "systemctl stop haproxy");
    let r = sample(Duration::from_secs(1));
    assert_eq!(
        (r.ok, r.no_answer),
        (0, r.requests),
        "both HAProxy down must be an outage: {r:?}"
    );
    topo.sh(&lb(1), "systemctl start haproxy");
    topo.sh(&lb(2), "systemctl start haproxy");
    settle("HAProxy back on both", Duration::from_secs(30), |r| {
        r.serves_all(&webs)
    });

    // The stats page: closed to the old admin:admin, open with the generated
    // credential the playbook kept on the controller.
    let stats = Probe::new(&format!("http://{VIP}:8404/haproxy?stats")).expect("stats URL");
    let (status, _) = stats
        .fetch(&["Authorization: Basic YWRtaW46YWRtaW4="])
        .expect("stats listener answers");
    assert_eq!(status, 401, "stats page with admin:admin");
    let password_file = controller_dir(&topo.prefix).join("haproxy-stats.password");
    let password = std::fs::read_to_string(&password_file)
        .unwrap_or_else(|e| panic!("{}: {e}", password_file.display()));
    let token = base64(&format!("stats:{}", password.trim()));
    let (status, _) = stats
        .fetch(&[&format!("Authorization: Basic {token}")])
        .expect("stats listener answers");
    assert_eq!(status, 200, "stats page with the generated credential");

    // Grow: one web node, one LB; a drained rolling restart. Zero failed requests.
    let (run, r) = probed(|| topo.playbook("add_web.yml", &[]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "add_web.yml: {r:?}");
    let webs3 = vec![web(1), web(2), web(3)];
    settle(
        "three web nodes in rotation",
        Duration::from_secs(30),
        |r| r.serves_all(&webs3),
    );

    let (run, r) = probed(|| topo.playbook("add_lb.yml", &[]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "add_lb.yml: {r:?}");
    assert_eq!(topo.holders().len(), 1);
    for i in 1..=3 {
        let conf = topo.sh(&lb(i), "cat /etc/keepalived/keepalived.conf");
        for j in (1..=3).filter(|j| *j != i) {
            let ip = topo.sh(
                &lb(j),
                "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1 | head -n1",
            );
            assert!(
                conf.contains(ip.trim()),
                "lb-0{i} does not list lb-0{j} ({}) as a peer:\n{conf}",
                ip.trim()
            );
        }
    }

    let (run, r) = probed(|| topo.playbook("rolling_restart_web.yml", &[]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "rolling restart: {r:?}");

    // Shrink by one web node: drained, removed, deleted, zero failed.
    let (run, r) = probed(|| topo.playbook("remove_web.yml", &[]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "remove_web.yml: {r:?}");
    assert!(
        !topo.instances().contains(&web(3)),
        "remove_web.yml left {} behind",
        web(3)
    );
    settle(
        "two web nodes after remove_web",
        Duration::from_secs(30),
        |r| r.serves_exactly(&webs),
    );

    // Resize with site.yml: up to 3 + 4 and back down to 2 + 2, still zero failed.
    let (run, r) = probed(|| topo.playbook("site.yml", &[("lb_count", "3"), ("web_count", "4")]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "site.yml to 3+4: {r:?}");
    let webs4: Vec<String> = (1..=4).map(web).collect();
    settle("four web nodes in rotation", Duration::from_secs(30), |r| {
        r.serves_all(&webs4)
    });

    let (run, r) = probed(|| topo.playbook("site.yml", &[("lb_count", "2"), ("web_count", "2")]));
    run.assert_ok();
    assert_eq!(r.failed, 0, "site.yml back to 2+2: {r:?}");
    let mut left = topo.instances();
    left.sort();
    assert_eq!(left, vec![lb(1), lb(2), web(1), web(2)]);
    settle("two web nodes again", Duration::from_secs(30), |r| {
        r.serves_exactly(&webs)
    });

    // Names resolve across the topology.
    let hosts = topo.sh(&web(1), &format!("getent hosts {} {}", lb(1), web(2)));
    assert_eq!(hosts.lines().count(), 2, "name resolution: {hosts}");
}

fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn base64_matches_rfc4648() {
    assert_eq!(base64("admin:admin"), "YWRtaW46YWRtaW4=");
    assert_eq!(base64("ab"), "YWI=");
}
