//! HTTPS on the VIP end to end, as a user turns it on: `site.yml -e
//! vrrp_tls=true` makes a CA and a certificate for the VIP and `www.<zone>`
//! once on the controller (ca.crt in the topology's credentials directory,
//! keys root-only), puts the same certificate on every load balancer, and
//! HAProxy serves it on the VIP and on each LB; plain HTTP is redirected; a
//! converged re-run changes nothing; a new server certificate (the old one's
//! files deleted) is served after one re-run with no failed request under a
//! 20 ms HTTPS probe.

use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use testbed::container::instance_ipv4;
use testbed::https::HttpsProbe;
use testbed::topology::{controller_dir, Topology};
use testbed::Probe;

const VIP: &str = "10.231.0.33";
const VRID: &str = "133";

fn address(instance: &str) -> IpAddr {
    IpAddr::V4(instance_ipv4(instance).unwrap_or_else(|| panic!("{instance} has no IPv4")))
}

fn mode(path: &PathBuf) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn https_on_the_vip_from_site_yml() {
    let topo = Topology::new("tls", VIP, VRID);
    let www = format!("www.{}", topo.zone());
    let tls = [("lb_count", "2"), ("web_count", "2"), ("vrrp_tls", "true")];
    let run = topo.playbook("site.yml", &tls);
    run.assert_ok();

    // The CA and the certificate, made on the controller.
    let dir = controller_dir(&topo.prefix);
    let ca = dir.join("ca.crt");
    assert!(ca.is_file(), "no {}", ca.display());
    assert_eq!(mode(&dir), 0o700);
    for key in ["ca.key", "tls-server.key", "tls-server.pem"] {
        assert_eq!(mode(&dir.join(key)), 0o600, "{key}");
    }
    let said: Vec<String> = run
        .results()
        .into_iter()
        .filter(|(task, _, _)| task.contains("CA certificate"))
        .map(|(task, host, r)| format!("{task} on {host}: {r}"))
        .collect();
    assert!(
        said.iter()
            .any(|r| r.contains(&format!("clients trust {}", ca.display()))),
        "no line saying where the CA is: {said:?}"
    );
    assert!(
        !run.stdout.contains("PRIVATE KEY"),
        "key material in the output"
    );

    // HTTPS on the VIP, each web node in turn; the same certificate on each LB.
    let vip: IpAddr = VIP.parse().expect("VIP");
    let probe = HttpsProbe::new(vip, 443, &www, &ca).expect("probe");
    let report = probe.clone().run_for(Duration::from_secs(2));
    eprintln!("HTTPS on the VIP: {report:?}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(report.backends.len(), 2, "{report:?}");
    assert_eq!(report.serials.len(), 1, "{report:?}");
    let serial = report.serials.keys().next().cloned().unwrap_or_default();
    for lb in [topo.name("lb-01"), topo.name("lb-02")] {
        let direct = HttpsProbe::new(address(&lb), 443, &www, &ca).expect("probe");
        let a = direct.get("/", &[]).expect("answer");
        assert_eq!(
            (a.status, a.serial.as_str()),
            (200, serial.as_str()),
            "{lb}"
        );
    }
    let (status, _) = Probe::new(&format!("http://{VIP}/"))
        .expect("probe")
        .fetch(&[])
        .expect("answer");
    assert_eq!(status, 301, "plain HTTP is redirected");

    // A converged re-run changes nothing.
    let again = topo.playbook("site.yml", &tls);
    again.assert_ok();
    assert_eq!(again.changed_total(), 0, "{}", again.stdout);

    // A new server certificate: delete it, re-run, under the probe.
    for f in ["tls-server.key", "tls-server.csr", "tls-server.crt"] {
        std::fs::remove_file(dir.join(f)).expect("remove");
    }
    let running = probe
        .clone()
        .interval(Duration::from_millis(20))
        .max_duration(Duration::from_secs(300))
        .start();
    let rotated = topo.playbook("site.yml", &tls);
    std::thread::sleep(Duration::from_millis(500));
    let report = running.stop();
    rotated.assert_ok();
    eprintln!(
        "HTTPS probe on the VIP during the rotation: {} requests, {} failed, p50 {} ms, p99 {} ms, serials {:?}",
        report.requests, report.failed, report.p50_ms, report.p99_ms, report.serials
    );
    assert_eq!(report.failed, 0, "{report:?}");
    let new = probe.get("/", &[]).expect("answer").serial;
    assert_ne!(new, serial, "the old certificate is still served");
    assert!(report.serials.contains_key(&new), "{report:?}");
    for lb in [topo.name("lb-01"), topo.name("lb-02")] {
        let direct = HttpsProbe::new(address(&lb), 443, &www, &ca).expect("probe");
        assert_eq!(direct.get("/", &[]).expect("answer").serial, new, "{lb}");
    }

    // The planned failover over HTTPS: HAProxy stopped on the VIP holder hands
    // the VIP over first. When it starts again the VIP moves back by
    // preemption. Either move may cost the one connection in flight at that
    // instant (reset by the other LB, or a SYN sent between the old holder
    // letting go and the new one's gratuitous ARP): at most one at this rate.
    let first = topo.holder();
    for (what, cmd, budget) in [
        ("stop", "systemctl stop haproxy", 1),
        ("start", "systemctl start haproxy", 1),
    ] {
        let running = probe
            .clone()
            .interval(Duration::from_millis(20))
            .max_duration(Duration::from_secs(60))
            .start();
        topo.sh(&first, cmd);
        std::thread::sleep(Duration::from_secs(2));
        let report = running.stop();
        eprintln!("HTTPS while HAProxy {what}s on {first}: {report:?}");
        assert!(
            report.failed <= budget,
            "HAProxy {what} on the holder {first}: {report:?}"
        );
        if what == "stop" {
            assert_ne!(
                topo.holder(),
                first,
                "the VIP stayed on {first} without HAProxy"
            );
        }
    }
}
