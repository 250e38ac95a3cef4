//! A web node that dies with a request in flight, against real HAProxy and
//! Apache in LXD containers, configured by the built module through
//! `ansible-playbook`: a GET is answered by the other node; a POST reaches a
//! server once and its client gets an error; Apache killed (`kill -9`) or
//! stopped without a drain under a 20 ms probe costs no GET. Each rule is
//! also switched off once, to show that the test sees the difference.
//!
//! `T_RETRY_RUNS` (default 2) sets how many kills and stops are probed;
//! `T_RETRY_COMPARE=1` probes as many with the retry settings the module had
//! before (`option redispatch`, `retry-on conn-failure`, no `observe`) and
//! prints both.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use testbed::ansible::{module_play, Runner};
use testbed::{Container, Probe};

/// Counts each request as it arrives (before any answer: a server killed
/// mid-request never logs it), then answers after `?<seconds>`.
const SLOW_CGI: &str = r#"#!/bin/sh
echo "$REQUEST_METHOD" >> /var/lib/t-count/requests
if [ -n "$CONTENT_LENGTH" ]; then head -c "$CONTENT_LENGTH" >/dev/null; fi
case "$QUERY_STRING" in [0-9]) sleep "$QUERY_STRING" ;; esac
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$(hostname)"
"#;
const SLOW: &str = "/cgi-bin/t-slow?3";

struct Bed {
    lb: Container,
    web: Vec<Container>,
}

impl Bed {
    fn up() -> Bed {
        let mut all = Container::launch_booted(&["t-rt-lb", "t-rt-web", "t-rt-web"]);
        let lb = all.remove(0);
        // A killed Apache stays dead until the test starts it (Debian's
        // unit would restart it at once: Restart=on-abort).
        for w in &all {
            w.write_file("/usr/lib/cgi-bin/t-slow", SLOW_CGI);
            w.sh(
                "hostname > /var/www/html/index.html && chmod 755 /usr/lib/cgi-bin/t-slow \
                 && install -d -o www-data /var/lib/t-count && a2enmod -q cgid \
                 && mkdir -p /run/systemd/system/apache2.service.d \
                 && printf '[Service]\\nRestart=no\\n' > /run/systemd/system/apache2.service.d/t-stay-dead.conf \
                 && systemctl daemon-reload && timeout 60 systemctl restart apache2",
            );
        }
        lb.sh("systemctl disable --now apache2 >/dev/null 2>&1; systemctl is-active haproxy");
        Bed { lb, web: all }
    }

    /// The backend with both web nodes; `extra` is more options (YAML,
    /// indented 6).
    fn configure(&self, extra: &str) -> String {
        let mut args = String::from("      name: web\n      servers:\n");
        for w in &self.web {
            args.push_str(&format!(
                "        - name: {}\n          address: {}\n",
                w.name, w.ipv4
            ));
        }
        args.push_str(extra);
        let args: String = args.lines().map(|l| format!("  {l}\n")).collect();
        let playbook = module_play("haproxy_backend", &args);
        Runner::for_containers(&[&self.lb])
            .run(&playbook)
            .assert_ok();
        self.settle();
        self.lb.read_file("/etc/haproxy/haproxy.cfg")
    }

    fn url(&self) -> String {
        format!("http://{}/", self.lb.ipv4)
    }

    /// Waits until both web nodes answer through HAProxy, none failing.
    fn settle(&self) {
        for w in &self.web {
            w.sh("timeout 60 systemctl start apache2");
        }
        Probe::new(&self.url()).expect("probe").settle(
            "both web nodes answer",
            Duration::from_secs(60),
            |r| r.failed == 0 && r.backends.len() == 2,
        );
    }

    /// The methods of the requests web node `i` has counted.
    fn counted(&self, i: usize) -> Vec<String> {
        self.web[i]
            .sh("cat /var/lib/t-count/requests 2>/dev/null || true")
            .split_whitespace()
            .map(str::to_string)
            .collect()
    }

    /// Sends a slow `method` request, kills Apache (`kill -9`, every
    /// process) on the web node that has it while it is in flight, and
    /// returns the answer, which node had it first, and what each node
    /// counted.
    fn kill_in_flight(&self, method: &str) -> (Answer, usize, [Vec<String>; 2]) {
        for w in &self.web {
            w.sh("install -o www-data -m 0644 /dev/null /var/lib/t-count/requests");
        }
        let ip = self.lb.ipv4;
        let m = method.to_string();
        let client = std::thread::spawn(move || request(ip, &m, SLOW));
        let start = Instant::now();
        let hit = loop {
            if let Some(i) = (0..2).find(|&i| !self.counted(i).is_empty()) {
                break i;
            }
            if client.is_finished() || start.elapsed() > Duration::from_secs(10) {
                let answer = client.join().expect("client thread");
                panic!("the {method} reached no web node: {answer:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        self.web[hit].sh("kill -9 $(pidof apache2)");
        let answer = client.join().expect("client thread");
        let counted = [self.counted(0), self.counted(1)];
        self.settle();
        (answer, hit, counted)
    }

    /// Probes at 20 ms while `break_it` takes Apache away from one node,
    /// until HAProxy has marked it down; returns the probe's report.
    fn probe_across(&self, what: &str, node: usize, break_it: &str) -> testbed::Report {
        let probe = Probe::new(&self.url())
            .expect("probe")
            .interval(Duration::from_millis(20))
            .max_duration(Duration::from_secs(60))
            .start();
        std::thread::sleep(Duration::from_secs(1));
        self.web[node].sh(break_it);
        // Long enough for the health check to mark the node down with the
        // old settings too (3 x 2 s): that moment can cost a request.
        std::thread::sleep(Duration::from_secs(8));
        let report = probe.stop();
        let apache = self.web[node].exec("pidof apache2").status.success();
        assert!(
            !apache,
            "{what}: Apache runs again on {}",
            self.web[node].name
        );
        eprintln!(
            "figure: {what} on {}: {} failed of {} ({:?})",
            self.web[node].name, report.failed, report.requests, report.statuses
        );
        self.settle();
        report
    }
}

/// A request's status and the first line of its body, or why there was none.
type Answer = Result<(u16, String), String>;

/// One request through the LB.
fn request(lb: Ipv4Addr, method: &str, path: &str) -> Answer {
    let ip = IpAddr::V4(lb);
    testbed::probe::check_route(ip, &testbed::bridge()).map_err(|e| e.to_string())?;
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let body = if method == "GET" { "" } else { "n=1" };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: lb\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    let mut text = String::new();
    s.read_to_string(&mut text).map_err(|e| e.to_string())?;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
    let first = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.lines().next().unwrap_or_default().trim().to_string())
        .unwrap_or_default();
    Ok((status, first))
}

fn count(methods: &[String], method: &str) -> usize {
    methods.iter().filter(|m| *m == method).count()
}

fn env_runs() -> usize {
    std::env::var("T_RETRY_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2)
}

/// What the haproxy role adds to the module's defaults (a connect on the
/// bridge takes well under a millisecond).
const ROLE: &str = "      timeouts:\n        connect: 200ms\n";

/// The retry settings the module wrote before it had `retry` and `observe`.
const BEFORE: &str = "      retry:\n        redispatch: -1\n        conditions: [conn-failure]\n        replay_methods: []\n      health_check:\n        observe: none\n        fast_interval: 2s\n";

#[test]
fn a_web_node_that_dies_mid_request() {
    let bed = Bed::up();
    let cfg = bed.configure(ROLE);
    for line in [
        "    retry-on conn-failure empty-response response-timeout 0rtt-rejected 502 503 504\n",
        "    http-request disable-l7-retry unless { method GET HEAD OPTIONS }\n",
        "    option redispatch 1\n",
        "    timeout connect 200ms\n",
        "observe layer4 error-limit 1 on-error fastinter\n",
    ] {
        assert!(cfg.contains(line), "{line:?} not in:\n{cfg}");
    }

    // --- a GET in flight on a node that dies is answered by the other -------
    let (answer, hit, counted) = bed.kill_in_flight("GET");
    let (killed, other) = (&bed.web[hit].name, &bed.web[1 - hit].name);
    eprintln!("GET, {killed} killed mid-request: {answer:?}, counted {counted:?}");
    assert_eq!(answer, Ok((200, other.clone())), "{counted:?}");
    assert_eq!(count(&counted[hit], "GET"), 1, "{counted:?}");
    assert_eq!(count(&counted[1 - hit], "GET"), 1, "{counted:?}");

    // --- a POST is never sent twice: the client gets the error --------------
    let (answer, hit, counted) = bed.kill_in_flight("POST");
    eprintln!(
        "POST, {} killed mid-request: {answer:?}, counted {counted:?}",
        bed.web[hit].name
    );
    assert_eq!(
        answer.as_ref().map(|a| a.0),
        Ok(502),
        "the POST's client must get an error: {answer:?}"
    );
    assert_eq!(count(&counted[hit], "POST"), 1, "{counted:?}");
    assert_eq!(
        count(&counted[1 - hit], "POST"),
        0,
        "the POST was replayed on {}: {counted:?}",
        bed.web[1 - hit].name
    );

    // --- the counting sees a replay: POST among the replay_methods ----------
    bed.configure(&format!(
        "{ROLE}      retry:\n        replay_methods: [GET, HEAD, OPTIONS, POST]\n"
    ));
    let (answer, hit, counted) = bed.kill_in_flight("POST");
    eprintln!("POST replayable: {answer:?}, counted {counted:?}");
    assert_eq!(answer.as_ref().map(|a| a.0), Ok(200), "{counted:?}");
    assert_eq!(
        (
            count(&counted[hit], "POST"),
            count(&counted[1 - hit], "POST")
        ),
        (1, 1),
        "the replay did not show in the counts"
    );

    // --- and a GET fails where only connection failures are retried ---------
    bed.configure(&format!(
        "{ROLE}      retry:\n        conditions: [conn-failure]\n"
    ));
    let (answer, _, counted) = bed.kill_in_flight("GET");
    eprintln!("GET, conn-failure only: {answer:?}, counted {counted:?}");
    assert_eq!(answer.as_ref().map(|a| a.0), Ok(502), "{counted:?}");

    // --- Apache killed or stopped without a drain under the probe -----------
    let runs = env_runs();
    let mut settings = vec![(ROLE, "now")];
    if std::env::var("T_RETRY_COMPARE").is_ok_and(|v| v == "1") {
        settings.push((BEFORE, "before"));
    }
    let mut now = vec![];
    for (extra, label) in settings {
        bed.configure(extra);
        let mut failed = vec![];
        for run in 0..runs {
            let node = run % 2;
            let killed = bed.probe_across(
                &format!("{label}: kill -9 of Apache"),
                node,
                "kill -9 $(pidof apache2)",
            );
            let stopped = bed.probe_across(
                &format!("{label}: systemctl stop apache2"),
                1 - node,
                "timeout 60 systemctl stop apache2",
            );
            failed.push((killed.failed, stopped.failed));
        }
        eprintln!("figure: {label}: failed requests (kill -9, stop) per run: {failed:?}");
        if label == "now" {
            now = failed;
        }
    }
    assert!(
        now.iter().all(|f| *f == (0, 0)),
        "failed GETs with Apache killed or stopped: {now:?}"
    );
}
