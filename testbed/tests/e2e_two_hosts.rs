//! End to end across two LXD hosts (`make hosts-up`): the original set-up,
//! with each host's instances on `macvlan` and DHCP from the LAN, reached over
//! HTTPS with pinned certificates. site.yml spreads each tier over both hosts,
//! add_web.yml and add_lb.yml land on the emptiest, and the VIP survives the loss of the
//! whole host that holds it; when the host comes back, site.yml brings only its
//! nodes back and traffic reaches every web node again. A name of an instance
//! on one host resolves on the other, through the zone the LBs serve on the VIP.
//!
//! Runs in `make test` after the test bed is raised; alone:
//! `make hosts-up && cargo test -p testbed --test e2e_two_hosts -- --ignored`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use testbed::ansible::{Run, Runner};
use testbed::container::lxc;
use testbed::multihost::{self, LxdHost};
use testbed::topology::{controller_dir, vip_holders, IP_ADDRS};
use testbed::{keep, Probe, Report};

struct Topology {
    prefix: String,
    vip: &'static str,
    /// Extra variables for every playbook run (VRID, VRRP mode).
    vars: Vec<(&'static str, &'static str)>,
    hosts: Vec<LxdHost>,
    scratch: tempfile::TempDir,
}

impl Topology {
    fn new(vip: &'static str, vars: Vec<(&'static str, &'static str)>) -> Topology {
        let hosts = multihost::hosts();
        assert!(hosts.len() >= 2, "the test bed has {} host(s)", hosts.len());
        let scratch = tempfile::tempdir().expect("tempdir");
        // The inventory reads the same hosts file the playbooks place by.
        std::fs::write(
            scratch.path().join("lxd_inventory.yml"),
            format!(
                "hosts_file: {}\nconnection: lxd_api\n",
                multihost::hosts_file().display()
            ),
        )
        .expect("inventory config");
        Topology {
            prefix: testbed::unique_name("t-mh") + "-",
            vip,
            vars,
            hosts,
            scratch,
        }
    }

    fn inventory_config(&self) -> PathBuf {
        self.scratch.path().join("lxd_inventory.yml")
    }

    fn name(&self, base: &str) -> String {
        format!("{}{base}", self.prefix)
    }

    fn playbook(&self, playbook: &str) -> Run {
        Runner::project()
            .env(
                "LXD_INVENTORY_CONFIG",
                &self.inventory_config().display().to_string(),
            )
            .extra_var("vrrp_prefix", &self.prefix)
            .extra_var("vrrp_vip", self.vip)
            .extra_var(
                "vrrp_hosts_file",
                &multihost::hosts_file().display().to_string(),
            )
            .playbook(playbook, &self.vars)
    }

    /// Instance name -> the host it runs on, read from each host's LXD.
    fn placement(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for h in &self.hosts {
            let list = h.lxc(&["list", "--format", "csv", "-c", "n"]);
            for name in String::from_utf8_lossy(&list.stdout).lines() {
                if name.starts_with(&self.prefix) {
                    out.insert(name.to_string(), h.name.clone());
                }
            }
        }
        out
    }

    fn host_of(&self, instance: &str) -> &LxdHost {
        let placement = self.placement();
        let host = placement
            .get(instance)
            .unwrap_or_else(|| panic!("{instance} is on no host: {placement:?}"));
        self.hosts
            .iter()
            .find(|h| &h.name == host)
            .expect("a known host")
    }

    /// An instance's IPv4 on the LAN, as its host's LXD reports it.
    fn address_of(&self, instance: &str) -> std::net::IpAddr {
        let out = self
            .host_of(instance)
            .lxc(&["list", instance, "--format", "csv", "-c", "4"]);
        // "10.232.0.146 (eth0)", or quoted with the VIP on a second line.
        let text = String::from_utf8_lossy(&out.stdout);
        text.split(|c: char| c.is_whitespace() || c == '"')
            .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
            .find(|a| a.to_string() != self.vip)
            .unwrap_or_else(|| panic!("{instance} has no IPv4: {text:?}"))
    }

    /// The load balancers whose interface carries the VIP.
    fn holders(&self) -> Vec<String> {
        let lbs = self
            .placement()
            .into_iter()
            .filter(|(n, _)| n.starts_with(&self.name("lb-")));
        vip_holders(self.vip, lbs, |(n, host)| {
            let mut args = vec!["exec", host.as_str(), "--", "lxc", "exec", n.as_str(), "--"];
            args.extend(IP_ADDRS);
            String::from_utf8_lossy(&lxc(&args).stdout).into_owned()
        })
        .into_iter()
        .map(|(n, _)| n)
        .collect()
    }
}

impl Topology {
    fn probe(&self) -> Probe {
        Probe::via(&format!("http://{}/", self.vip), &multihost::lan_bridge())
            .expect("the VIP is routed through the LAN bridge")
    }

    /// Probes in short rounds until `done` holds for one round (or the timeout).
    fn settle(&self, what: &str, timeout: Duration, done: impl Fn(&Report) -> bool) -> Report {
        self.probe().settle(what, timeout, done)
    }

    /// Waits (bounded) until exactly `lb` holds the VIP.
    fn wait_holder(&self, lb: &str, timeout: Duration) {
        let start = Instant::now();
        while self.holders() != vec![self.name(lb)] {
            assert!(
                start.elapsed() < timeout,
                "{lb} does not hold the VIP alone: {:?}",
                self.holders()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if keep() {
            eprintln!("KEEP=1: leaving the {}* instances", self.prefix);
            return;
        }
        for (name, host) in self.placement() {
            let _ = lxc(&["exec", &host, "--", "lxc", "delete", "-f", &name]);
        }
        let _ = std::fs::remove_dir_all(controller_dir(&self.prefix));
    }
}

#[test]
#[ignore = "needs the two-host test bed: make hosts-up"]
fn two_hosts_spread_grow_and_survive_the_loss_of_a_whole_host() {
    let t = Topology::new("10.232.0.10", vec![("vrrp_vrid", "140")]);
    let (h1, h2) = (t.hosts[0].name.clone(), t.hosts[1].name.clone());

    // Spread: lb-01 and web-01 on the first host, lb-02 and web-02 on the second.
    t.playbook("site.yml").assert_ok();
    let placed = t.placement();
    for (base, host) in [
        ("lb-01", &h1),
        ("web-01", &h1),
        ("lb-02", &h2),
        ("web-02", &h2),
    ] {
        assert_eq!(placed.get(&t.name(base)), Some(host), "{base}: {placed:?}");
    }
    let webs = vec![t.name("web-01"), t.name("web-02")];
    t.settle(
        "both web nodes behind the VIP",
        Duration::from_secs(30),
        |r| r.serves_exactly(&webs),
    );
    assert_eq!(
        t.holders(),
        vec![t.name("lb-01")],
        "the first LB holds the VIP"
    );

    // A converged re-run changes nothing.
    let again = t.playbook("site.yml");
    again.assert_unchanged();

    // DNS across the hosts: an instance's name on one host resolves on the
    // other (its resolver, and the VIP asked directly) and from the LAN.
    let zone = format!("{}.vrrp.internal", t.prefix.trim_end_matches('-'));
    for (asker, named) in [
        (t.name("web-01"), t.name("web-02")),
        (t.name("web-02"), t.name("lb-01")),
    ] {
        let address = t.address_of(&named);
        let host = t.host_of(&asker);
        let out = host.lxc(&["exec", &asker, "--", "getent", "hosts", &named]);
        let got = String::from_utf8_lossy(&out.stdout);
        assert!(
            got.starts_with(&format!("{address} ")),
            "{named} from {asker}: {got:?}"
        );
        let out = host.lxc(&[
            "exec",
            &asker,
            "--",
            "kdig",
            "+short",
            &format!("@{}", t.vip),
            &format!("{named}.{zone}"),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            address.to_string(),
            "{named} at the VIP from {asker}"
        );
        let a = testbed::dns::query(
            t.vip.parse().expect("VIP"),
            &multihost::lan_bridge(),
            &format!("{named}.{zone}."),
            "A",
            Duration::from_secs(2),
        )
        .expect("the VIP answers DNS on the LAN");
        assert_eq!(a.addresses, vec![address], "{named} from the LAN: {a:?}");
    }

    // Growth lands on the emptiest host (a tie: the first), with no failed request.
    let running = t.probe().max_duration(Duration::from_secs(300)).start();
    t.playbook("add_web.yml").assert_ok();
    let report = running.stop();
    assert_eq!(report.failed, 0, "add_web.yml across hosts: {report:?}");
    assert_eq!(t.host_of(&t.name("web-03")).name, h1);
    let all = vec![t.name("web-01"), t.name("web-02"), t.name("web-03")];
    t.settle(
        "three web nodes behind the VIP",
        Duration::from_secs(30),
        |r| r.serves_exactly(&all),
    );

    // A third LB lands on the emptiest host too (a tie again: the first), and
    // the VIP never drops while the peers learn about it.
    let running = t.probe().max_duration(Duration::from_secs(300)).start();
    t.playbook("add_lb.yml").assert_ok();
    let report = running.stop();
    assert_eq!(report.failed, 0, "add_lb.yml across hosts: {report:?}");
    assert_eq!(t.host_of(&t.name("lb-03")).name, h1);
    assert_eq!(
        t.holders(),
        vec![t.name("lb-01")],
        "one holder after add_lb"
    );

    // The whole first host goes: two LBs (the VIP holder among them) and two
    // web nodes.
    let running = t.probe().max_duration(Duration::from_secs(120)).start();
    let lost = Instant::now();
    let out = lxc(&["stop", "-f", &h1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let survivors = vec![t.name("web-02")];
    t.settle(
        "only the second host's web node answers",
        Duration::from_secs(20),
        |r| r.serves_exactly(&survivors),
    );
    let report = running.stop();
    eprintln!(
        "whole host lost: served again after {:.2} s; probe {} ok, {} failed, longest outage {:.0} ms",
        lost.elapsed().as_secs_f64(),
        report.ok,
        report.failed,
        report.longest_outage_ms
    );
    assert_eq!(
        t.holders(),
        vec![t.name("lb-02")],
        "the VIP moved across hosts"
    );

    // The host comes back: its LXD restarts its instances, site.yml converges
    // them, and every web node is behind the VIP again (preempted back to lb-01).
    let out = lxc(&["start", &h1]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hosts = multihost::hosts();
    let back = &hosts[0];
    let start = Instant::now();
    while !back
        .lxc(&["list", "--format", "csv", "-c", "ns"])
        .status
        .success()
    {
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{h1}'s LXD did not come back"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = t.playbook("site.yml");
    run.assert_ok();
    for name in [t.name("lb-02"), t.name("web-02")] {
        assert_eq!(
            run.stats(&name)["changed"],
            serde_json::json!(0),
            "{name} on the host that stayed changed"
        );
    }
    t.settle("every web node again", Duration::from_secs(60), |r| {
        r.serves_exactly(&all)
    });
    t.wait_holder("lb-01", Duration::from_secs(30));

    t.playbook("teardown.yml").assert_ok();
    assert!(
        t.placement().is_empty(),
        "teardown left {:?}",
        t.placement()
    );
}

/// The original set-up's VRRP: multicast adverts on the shared LAN (no
/// unicast peers), across the two hosts, both ways: a planned stop of HAProxy
/// on the holder hands the VIP to the other host with no failed request, and
/// its start takes it back.
#[test]
#[ignore = "needs the two-host test bed: make hosts-up"]
fn two_hosts_multicast_vrrp_hands_the_vip_over_both_ways() {
    let t = Topology::new(
        "10.232.0.20",
        vec![("vrrp_vrid", "141"), ("keepalived_unicast", "false")],
    );
    t.playbook("site.yml").assert_ok();
    let conf = lxc(&[
        "exec",
        &t.host_of(&t.name("lb-01")).name,
        "--",
        "lxc",
        "exec",
        &t.name("lb-01"),
        "--",
        "cat",
        "/etc/keepalived/keepalived.conf",
    ]);
    let conf = String::from_utf8_lossy(&conf.stdout);
    assert!(
        conf.contains("vrrp_instance") && !conf.contains("unicast_peer"),
        "keepalived.conf is not multicast:\n{conf}"
    );
    let webs = vec![t.name("web-01"), t.name("web-02")];
    t.settle(
        "both web nodes behind the VIP",
        Duration::from_secs(30),
        |r| r.serves_exactly(&webs),
    );
    t.wait_holder("lb-01", Duration::from_secs(10));

    let lb1 = t.host_of(&t.name("lb-01")).clone();
    let running = t.probe().max_duration(Duration::from_secs(120)).start();
    let out = lb1.lxc(&[
        "exec",
        &t.name("lb-01"),
        "--",
        "systemctl",
        "stop",
        "haproxy",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.wait_holder("lb-02", Duration::from_secs(10));
    let out = lb1.lxc(&[
        "exec",
        &t.name("lb-01"),
        "--",
        "systemctl",
        "start",
        "haproxy",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.wait_holder("lb-01", Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(500));
    let report = running.stop();
    // Each of the two moves may cost what any VIP move costs a client (a
    // connection whose packets change LB half-way, or a SYN in the instant
    // before the new holder's gratuitous ARP: docs/performance.md,
    // "Preemption"), one at most at this rate; a stop that let HAProxy go
    // before the VIP would lose every request until the other host took over.
    assert!(
        report.failed <= 2,
        "the VIP between hosts over multicast VRRP, both ways: {report:?}"
    );

    t.playbook("teardown.yml").assert_ok();
    assert!(
        t.placement().is_empty(),
        "teardown left {:?}",
        t.placement()
    );
}
