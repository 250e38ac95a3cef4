//! `haproxy_backend` against real HAProxy and Apache in LXD containers, driven
//! by real `ansible-playbook` runs of the built (musl) binary.
//!
//! One load balancer and two web nodes serve the whole story, phase by phase:
//! converge and converge again, a config `haproxy -c` rejects, growing at
//! runtime, a drain under a 20 ms probe with the web server stopped and
//! started, cookie stickiness, shrinking, a reload that fails and is rolled
//! back, secrets kept out of results and diffs, and refused input (hostile
//! values, a link another user controls).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use testbed::ansible::{module_play, Run, Runner};
use testbed::{Container, Probe};

const CONFIG: &str = "/etc/haproxy/haproxy.cfg";

struct Bed {
    lb: Container,
    web: Vec<Container>,
}

impl Bed {
    fn up() -> Bed {
        let mut all = Container::launch_booted(&["t-hap-lb", "t-hap-web", "t-hap-web"]);
        let lb = all.remove(0);
        for w in &all {
            // The page names the host on its first line (what the probe counts).
            w.sh("hostname > /var/www/html/index.html && systemctl is-active apache2");
        }
        // The base image runs Apache everywhere; on the LB HAProxy needs :80.
        lb.sh("systemctl disable --now apache2 >/dev/null 2>&1; systemctl is-active haproxy");
        Bed { lb, web: all }
    }

    fn runner(&self) -> Runner {
        Runner::for_containers(&[&self.lb])
    }

    /// Runs one task of this module on the LB with `args` (YAML, indented 6).
    fn task(&self, args: &str, extra: &[&str]) -> (Run, Value) {
        let run = self.run(args, extra);
        let result = run.task("haproxy_backend", &self.lb.name);
        (run, result)
    }

    fn run(&self, args: &str, extra: &[&str]) -> Run {
        let playbook = module_play("haproxy_backend", args);
        let mut runner = self.runner();
        for a in extra {
            runner = runner.arg(a);
        }
        runner.run(&playbook)
    }

    /// As `task`, with `-v`: ansible-playbook prints a line before the JSON.
    fn task_verbose(&self, args: &str, extra: &[&str]) -> (Run, Value) {
        let mut run = self.run(args, &[extra, &["-v"]].concat());
        let json = run.stdout.find("\n{").map_or("", |i| &run.stdout[i..]);
        run.json = serde_json::from_str(json).unwrap_or(Value::Null);
        let result = run.task("haproxy_backend", &self.lb.name);
        (run, result)
    }

    /// Runs the task in a thread (for a drain that waits).
    fn task_in_background(&self, args: &str) -> std::thread::JoinHandle<Run> {
        let playbook = module_play("haproxy_backend", args);
        let runner = self.runner();
        std::thread::spawn(move || runner.run(&playbook))
    }

    fn ok(&self, args: &str) -> Value {
        let (run, result) = self.task(args, &[]);
        run.assert_ok();
        result
    }

    fn failed(&self, args: &str) -> Value {
        let (run, result) = self.task(args, &[]);
        assert_ne!(run.rc, 0, "expected a failure:\n{}", run.stdout);
        assert_eq!(result["failed"], Value::Bool(true), "{result:#}");
        result
    }

    fn config(&self) -> String {
        self.lb.read_file(CONFIG)
    }

    fn host(&self, i: usize) -> String {
        self.web[i].name.clone()
    }

    fn url(&self) -> String {
        format!("http://{}/", self.lb.ipv4)
    }

    fn haproxy_cli(&self, command: &str) -> String {
        self.lb.sh(&format!(
            "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"/run/haproxy/admin.sock\"); s.sendall(sys.argv[1].encode()+b\"\\n\"); print(s.makefile().read())' '{command}'"
        ))
    }
}

/// `servers:` YAML for the given web nodes.
fn servers_yaml(bed: &Bed, which: &[usize]) -> String {
    let mut s = String::from("        servers:\n");
    for &i in which {
        s.push_str(&format!(
            "          - name: {}\n            address: {}\n",
            bed.host(i),
            bed.web[i].ipv4
        ));
    }
    s
}

fn backend_args(bed: &Bed, which: &[usize], extra: &str) -> String {
    format!(
        "        name: web\n{}        stats:\n          enabled: true\n{extra}",
        servers_yaml(bed, which)
    )
}

fn changed(v: &Value) -> bool {
    v["changed"].as_bool().unwrap_or(false)
}

/// One GET with an optional cookie; returns the page's first line and the
/// `Set-Cookie` value, if any.
fn get(ip: IpAddr, cookie: Option<&str>) -> (String, Option<String>) {
    testbed::probe::check_route(ip, &testbed::bridge()).expect("LB routed via the bridge");
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(2))
        .expect("connect to the LB");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let cookie = cookie
        .map(|c| format!("Cookie: {c}\r\n"))
        .unwrap_or_default();
    write!(s, "GET / HTTP/1.0\r\nHost: lb\r\n{cookie}\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let set_cookie = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Set-Cookie: ")
                .or_else(|| l.strip_prefix("set-cookie: "))
        })
        .map(|v| v.split(';').next().unwrap_or_default().to_string());
    (
        body.lines().next().unwrap_or_default().trim().to_string(),
        set_cookie,
    )
}

/// Downloads `/big.bin` slowly (100 kB/s, far slower than the kernel's and
/// HAProxy's buffers fill, so the server's session stays open) until told to
/// hang up; returns the bytes received.
fn slow_download(
    ip: IpAddr,
    cookie: &str,
) -> (
    std::thread::JoinHandle<usize>,
    std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    testbed::probe::check_route(ip, &testbed::bridge()).expect("LB routed via the bridge");
    let cookie = cookie.to_string();
    let hang_up = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = hang_up.clone();
    let handle = std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(2))
            .expect("connect to the LB");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        write!(
            s,
            "GET /big.bin HTTP/1.0\r\nHost: lb\r\nCookie: {cookie}\r\n\r\n"
        )
        .expect("send");
        let mut buf = vec![0u8; 4096];
        let mut received = 0;
        // Bounded: at most two minutes.
        let start = std::time::Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed)
            && start.elapsed() < Duration::from_secs(120)
        {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => received += n,
            }
            let due = Duration::from_secs_f64(received as f64 / 100_000.0);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait.min(Duration::from_millis(100)));
            }
        }
        let _ = s.shutdown(std::net::Shutdown::Both);
        received
    });
    (handle, hang_up)
}

/// Probes the LB for `d` and returns which hosts answered.
fn sample(bed: &Bed, d: Duration) -> testbed::Report {
    Probe::new(&bed.url()).expect("probe").run_for(d)
}

#[test]
fn haproxy_backend_in_real_containers() {
    let bed = Bed::up();
    let (w0, w1) = (bed.host(0), bed.host(1));

    // --- converge twice: the second run changes nothing ----------------------
    let args = backend_args(&bed, &[0], "");
    let first = bed.ok(&args);
    assert!(changed(&first), "first converge must change: {first:#}");
    assert_eq!(first["service"], "reloaded", "{first:#}");
    let second = bed.ok(&args);
    assert!(
        !changed(&second),
        "second converge must not change: {second:#}"
    );
    // A reload by someone else (a handler) right after does not make it a change.
    bed.lb.sh("systemctl reload haproxy && sleep 1");
    let third = bed.ok(&args);
    assert!(
        !changed(&third),
        "converge after an outside reload: {third:#}"
    );
    let cfg = bed.config();
    assert!(cfg.contains("stats socket /run/haproxy/admin.sock mode 600 level admin"));
    assert!(cfg.contains("option httpchk OPTIONS /") && cfg.contains("option forwardfor"));
    assert!(cfg.contains("http-request set-header X-Forwarded-Port %[dst_port]"));
    assert!(!cfg.contains("admin:admin"));
    // The stats password: generated, root-only, never in the result.
    let password = bed
        .lb
        .sh("cat /etc/haproxy/stats.password")
        .trim()
        .to_string();
    assert!(password.len() >= 20, "weak password {password:?}");
    assert_eq!(
        bed.lb
            .sh("stat -c %a /etc/haproxy/stats.password /etc/haproxy/haproxy.cfg"),
        "600\n600\n"
    );
    assert_eq!(first["stats_password_file"], "/etc/haproxy/stats.password");
    assert!(
        !first.to_string().contains(&password),
        "password leaked: {first}"
    );
    assert_eq!(
        bed.lb
            .sh("test -e /etc/haproxy/cookie.key && echo made || echo none"),
        "none\n",
        "a cookie key without cookie stickiness"
    );
    let report = sample(&bed, Duration::from_millis(600));
    assert_eq!((report.failed, report.backends.len()), (0, 1), "{report:?}");
    assert!(report.backends.contains_key(&w0), "{report:?}");

    // --- HAProxy kept running and enabled, what holds its ports stopped ------
    // By hand: HAProxy stopped and disabled, Apache on :80 and enabled at boot.
    let units = || {
        bed.lb.sh(
            "for u in haproxy apache2; do echo $u $(systemctl is-active $u) $(systemctl is-enabled $u); done",
        )
    };
    bed.lb.sh(
        "systemctl disable --now haproxy >/dev/null 2>&1; systemctl enable --now apache2 >/dev/null 2>&1; \
         systemctl is-active apache2",
    );
    let by_hand = units();
    assert_eq!(
        by_hand,
        "haproxy inactive disabled\napache2 active enabled\n"
    );
    let with_units = backend_args(&bed, &[0], "        conflicting_services: [apache2]\n");
    let (run, checked) = bed.task(&with_units, &["--check"]);
    run.assert_ok();
    assert_eq!(units(), by_hand, "check mode changed the services");
    let fixed = bed.ok(&with_units);
    for r in [&checked, &fixed] {
        assert!(changed(r), "{r:#}");
        assert_eq!(
            r["stopped_services"],
            serde_json::json!(["apache2"]),
            "{r:#}"
        );
        assert_eq!(
            r["disabled_services"],
            serde_json::json!(["apache2"]),
            "{r:#}"
        );
        assert_eq!(r["enabled"], true, "{r:#}");
        assert_eq!(r["service"], "started", "{r:#}");
    }
    assert_eq!(
        units(),
        "haproxy active enabled\napache2 inactive disabled\n"
    );
    let again = bed.ok(&with_units);
    assert!(!changed(&again), "{again:#}");
    for key in [
        "enabled",
        "stopped_services",
        "disabled_services",
        "service",
    ] {
        assert!(
            again.get(key).is_none(),
            "{key} in a converged run: {again:#}"
        );
    }
    let report = sample(&bed, Duration::from_millis(600));
    assert_eq!(report.failed, 0, "{report:?}");
    // A name that would be an option or a second command, or HAProxy
    // itself, is refused before anything is touched.
    let cfg = bed.config();
    for (bad, want) in [
        (
            "--now",
            "conflicting_services[0] entry \"--now\" is not a unit name",
        ),
        (
            "apache2;reboot",
            "conflicting_services[0] must not contain ';'",
        ),
        (
            "haproxy.service",
            "conflicting_services lists haproxy.service",
        ),
    ] {
        let r = bed.failed(&backend_args(
            &bed,
            &[0],
            &format!("        conflicting_services: ['{bad}']\n"),
        ));
        let msg = r["msg"].as_str().unwrap_or_default();
        assert!(msg.starts_with(want), "{bad}: {msg}");
    }
    assert_eq!(
        units(),
        "haproxy active enabled\napache2 inactive disabled\n"
    );
    assert_eq!(bed.config(), cfg);

    // --- a stats password given: written root-only, never shown ------------
    let given = "Given0Stats0Password0123";
    let with_password = |pw: &str| backend_args(&bed, &[0], &format!("          password: {pw}\n"));
    let (run, checked) = bed.task(&with_password(given), &["--check", "--diff"]);
    run.assert_ok();
    assert!(changed(&checked), "{checked:#}");
    assert_eq!(
        bed.lb.sh("cat /etc/haproxy/stats.password").trim(),
        password,
        "check mode wrote the password"
    );
    let (run, set) = bed.task(&with_password(given), &["--diff"]);
    run.assert_ok();
    assert!(changed(&set), "{set:#}");
    assert_eq!(set["service"], "reloaded", "{set:#}");
    for out in [&run.stdout, &checked.to_string()] {
        assert!(!out.contains(given), "the given password leaked: {out}");
        assert!(!out.contains(&password), "the old password leaked: {out}");
    }
    assert_eq!(
        bed.lb
            .sh("cat /etc/haproxy/stats.password; stat -c %a /etc/haproxy/stats.password"),
        format!("{given}\n600\n")
    );
    assert!(bed
        .config()
        .contains(&format!("stats auth stats:{given}\n")));
    assert!(!changed(&bed.ok(&with_password(given))));
    // Back to the generated one, for the phases below.
    assert!(changed(&bed.ok(&with_password(&password))));
    assert!(!bed.config().contains(given));

    // --- check mode with diff reports, changes nothing ---------------------
    let before = bed.config();
    let (run, checked) = bed.task(
        &backend_args(&bed, &[0], "        balance: leastconn\n"),
        &["--check", "--diff"],
    );
    run.assert_ok();
    assert!(changed(&checked), "{checked:#}");
    assert!(
        checked["diff"].to_string().contains("leastconn"),
        "{checked:#}"
    );
    assert!(
        !checked["diff"].to_string().contains(&password),
        "password in the diff"
    );
    assert_eq!(bed.config(), before, "check mode wrote the file");

    // --- a config haproxy -c rejects leaves the file byte-identical --------
    let rejected = bed.failed(&backend_args(
        &bed,
        &[0],
        "        timeouts:\n          client: notatime\n",
    ));
    assert!(
        rejected["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("haproxy -c"),
        "{rejected:#}"
    );
    assert_eq!(bed.config(), before, "a rejected config replaced the file");

    // --- grow at runtime: add a server without a reload --------------------
    let pid_before = bed.haproxy_cli("show info");
    let pid_before = pid_before
        .lines()
        .find(|l| l.starts_with("Pid:"))
        .expect("pid")
        .to_string();
    let add_args = format!(
        "        name: web\n        server: {w1}\n        address: {}\n        wait: true\n",
        bed.web[1].ipv4
    );
    // Check mode first: the runtime change is reported (diff and actions), not made.
    let (run, checked) = bed.task(&add_args, &["--check", "--diff"]);
    run.assert_ok();
    assert!(changed(&checked), "{checked:#}");
    assert!(
        checked["diff"].to_string().contains("runtime: server web/"),
        "{checked:#}"
    );
    assert!(
        checked["actions"].to_string().contains("add server web/"),
        "{checked:#}"
    );
    assert!(
        !bed.haproxy_cli("show servers state web").contains(&w1),
        "check mode added the server"
    );
    assert!(!bed.config().contains(&w1), "check mode wrote the file");
    let added = bed.ok(&add_args);
    assert!(changed(&added) && added["service"].is_null(), "{added:#}");
    assert!(
        added["actions"].to_string().contains("add server web/"),
        "{added:#}"
    );
    let pid_after = bed.haproxy_cli("show info");
    assert!(
        pid_after.contains(&pid_before),
        "HAProxy was reloaded to add a server"
    );
    assert!(bed
        .config()
        .contains(&format!("server {w1} {}:80", bed.web[1].ipv4)));
    let report = sample(&bed, Duration::from_millis(800));
    assert!(
        report.failed == 0 && report.backends.contains_key(&w1),
        "traffic never reached {w1}: {report:?}"
    );
    // The backend-level view of the same two servers agrees: nothing to do.
    let same = bed.ok(&backend_args(&bed, &[0, 1], ""));
    assert!(!changed(&same), "{same:#}");

    // --- drain with wait under a 20 ms probe, stop/start Apache, enable ----
    let probe = Probe::new(&bed.url())
        .expect("probe")
        .interval(Duration::from_millis(20))
        .max_duration(Duration::from_secs(180))
        .start();
    std::thread::sleep(Duration::from_millis(500));
    let drained = bed.ok(&format!("        name: web\n        server: {w0}\n        state: drain\n        wait: true\n        wait_timeout: 30\n"));
    assert!(changed(&drained), "{drained:#}");
    assert!(bed.config().contains(&format!(
        "server {w0} {}:80 weight 0 check  # drain, weight 100",
        bed.web[0].ipv4
    )));
    let again = bed.ok(&format!(
        "        name: web\n        server: {w0}\n        state: drain\n        wait: true\n"
    ));
    assert!(!changed(&again), "drain twice: {again:#}");
    bed.web[0].sh("systemctl stop apache2");
    std::thread::sleep(Duration::from_secs(3));
    bed.web[0].sh("systemctl start apache2");
    let enabled = bed.ok(&format!("        name: web\n        server: {w0}\n        state: enabled\n        wait: true\n        wait_timeout: 60\n"));
    assert!(changed(&enabled), "{enabled:#}");
    std::thread::sleep(Duration::from_millis(800));
    let report = probe.stop();
    eprintln!("drain + stop + start + enable under the probe: {report:?}");
    assert_eq!(
        report.failed, 0,
        "failed requests during drain/stop/start/enable: {report:?}"
    );
    assert!(report.ok > 100, "{report:?}");
    assert!(
        report.backends.contains_key(&w0) && report.backends.contains_key(&w1),
        "{report:?}"
    );
    let converged = bed.ok(&backend_args(&bed, &[0, 1], ""));
    assert!(!changed(&converged), "{converged:#}");

    // --- cookie stickiness keeps one client on one server ------------------
    // Turning it on is a reload (the backend section changes): a reload hands
    // the listeners to the new worker, so the probe sees no failure.
    let probe = Probe::new(&bed.url())
        .expect("probe")
        .interval(Duration::from_millis(20))
        .max_duration(Duration::from_secs(120))
        .start();
    let sticky = bed.ok(&backend_args(&bed, &[0, 1], "        stickiness: cookie\n"));
    let report = probe.stop();
    eprintln!("reload under the probe: {report:?}");
    assert!(
        changed(&sticky) && sticky["service"] == "reloaded",
        "{sticky:#}"
    );
    assert_eq!(
        report.failed, 0,
        "failed requests during a reload: {report:?}"
    );
    // The cookie key: random, kept root-only beside the stats password,
    // never in the result.
    let key = bed.lb.sh("cat /etc/haproxy/cookie.key").trim().to_string();
    assert!(key.len() >= 20 && key != "web", "weak cookie key {key:?}");
    assert_eq!(
        bed.lb
            .sh("stat -c %a /etc/haproxy/cookie.key /etc/haproxy/haproxy.cfg"),
        "600\n600\n"
    );
    assert!(bed
        .config()
        .contains(&format!("dynamic-cookie-key {key}\n")));
    assert_eq!(sticky["cookie_key_file"], "/etc/haproxy/cookie.key");
    assert!(!sticky.to_string().contains(&key), "key leaked: {sticky}");
    let ip = IpAddr::V4(bed.lb.ipv4);
    let (first_host, cookie) = get(ip, None);
    let cookie = cookie
        .unwrap_or_else(|| panic!("no Set-Cookie from the LB (first answer from {first_host})"));
    assert!(
        cookie.starts_with("SERVERID=") && cookie.len() > "SERVERID=".len(),
        "{cookie}"
    );
    for _ in 0..20 {
        assert_eq!(
            get(ip, Some(&cookie)).0,
            first_host,
            "the cookie did not keep the client on {first_host}"
        );
    }

    // --- drain waits for the sessions still open on the server --------------
    // A slow download pinned to `first_host` by its cookie keeps one session
    // open: a drain with a 1 s wait fails, saying so; a drain with a long wait
    // is still waiting seconds later, and returns once the client hangs up.
    let sticky_web = bed
        .web
        .iter()
        .find(|w| w.name == first_host)
        .expect("sticky web");
    sticky_web.sh("head -c 50000000 /dev/zero > /var/www/html/big.bin");
    let (download, hang_up) = slow_download(ip, &cookie);
    std::thread::sleep(Duration::from_millis(500));
    let short = bed.failed(&format!(
        "        name: web\n        server: {first_host}\n        state: drain\n        wait: true\n        wait_timeout: 1\n"
    ));
    assert!(
        short["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("1 session(s)"),
        "{short:#}"
    );
    let long = bed.task_in_background(&format!(
        "        name: web\n        server: {first_host}\n        state: drain\n        wait: true\n        wait_timeout: 90\n"
    ));
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        !long.is_finished(),
        "the drain did not wait for the open session"
    );
    assert!(!download.is_finished(), "the download ended by itself");
    hang_up.store(true, std::sync::atomic::Ordering::Relaxed);
    let closed = std::time::Instant::now();
    let long = long.join().expect("drain thread");
    long.assert_ok();
    assert!(
        closed.elapsed() < Duration::from_secs(15),
        "the drain took {:?} after the session ended",
        closed.elapsed()
    );
    assert!(download.join().expect("download thread") > 0);
    bed.ok(&format!("        name: web\n        server: {first_host}\n        state: enabled\n        wait: true\n"));

    let mut hosts: Vec<String> = (0..6).map(|_| get(ip, None).0).collect();
    hosts.sort();
    hosts.dedup();
    assert_eq!(
        hosts.len(),
        2,
        "without the cookie both servers answer: {hosts:?}"
    );

    // --- move a server to another address at runtime -----------------------
    let moved = bed.ok(&format!(
        "        name: web\n        server: {w1}\n        address: {}\n",
        bed.web[0].ipv4
    ));
    assert!(changed(&moved) && moved["service"].is_null(), "{moved:#}");
    assert!(
        moved["actions"]
            .to_string()
            .contains(&format!("set server web/{w1} addr {}", bed.web[0].ipv4)),
        "{moved:#}"
    );
    let state = bed.haproxy_cli("show servers state web");
    let line = state
        .lines()
        .find(|l| l.contains(&w1))
        .expect("server in the runtime");
    assert!(line.contains(&bed.web[0].ipv4.to_string()), "{line}");

    // --- shrink: remove a server at runtime --------------------------------
    let removed = bed.ok(&format!(
        "        name: web\n        server: {w1}\n        state: absent\n"
    ));
    assert!(
        changed(&removed) && removed["service"].is_null(),
        "{removed:#}"
    );
    assert!(!bed.config().contains(&format!("server {w1} ")));
    assert!(!bed.haproxy_cli("show servers state web").contains(&w1));
    let shrunk = bed.ok(&backend_args(&bed, &[0], "        stickiness: cookie\n"));
    assert!(!changed(&shrunk), "{shrunk:#}");

    // --- a server added at runtime gets its cookie and keeps it on reload ---
    // HAProxy 2.6 computes no dynamic cookie for a server added at runtime
    // until the backend's key is set again; the value is a hash of address,
    // port and key, so the reload that puts it in the file keeps it.
    // Run with --diff -v: the server-level diff of haproxy.cfg shows the
    // stats password and the cookie key masked.
    let (run, readded) = bed.task_verbose(
        &format!(
            "        name: web\n        server: {w1}\n        address: {}\n        wait: true\n",
            bed.web[1].ipv4
        ),
        &["--diff"],
    );
    run.assert_ok();
    for (what, secret) in [("stats password", &password), ("cookie key", &key)] {
        assert!(
            !run.stdout.contains(secret.as_str()) && !run.stderr.contains(secret.as_str()),
            "the {what} is in a server-level result:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    let diff = readded["diff"].to_string();
    assert!(
        diff.contains("stats auth stats:********") && diff.contains("dynamic-cookie-key ********"),
        "no masked secrets in the diff: {diff}"
    );
    assert!(
        readded["actions"]
            .to_string()
            .contains("set dynamic-cookie-key"),
        "{readded:#}"
    );
    let w1_cookie = (0..10)
        .map(|_| get(ip, None))
        .find(|(host, _)| *host == w1)
        .and_then(|(_, c)| c)
        .unwrap_or_else(|| panic!("no answer with a cookie from {w1}"));
    assert!(
        w1_cookie.len() > "SERVERID=".len(),
        "empty cookie for a runtime-added server: {w1_cookie}"
    );
    for _ in 0..5 {
        assert_eq!(get(ip, Some(&w1_cookie)).0, w1);
    }
    let reloaded = bed.ok(&backend_args(
        &bed,
        &[0, 1],
        "        stickiness: cookie\n        timeouts:\n          queue: 31s\n",
    ));
    assert_eq!(reloaded["service"], "reloaded", "{reloaded:#}");
    for _ in 0..5 {
        assert_eq!(
            get(ip, Some(&w1_cookie)).0,
            w1,
            "the cookie lost its server over a reload"
        );
    }

    // --- shrink from the backend level: the runtime API, no reload ---------
    let narrowed = bed.ok(&backend_args(
        &bed,
        &[0],
        "        stickiness: cookie\n        timeouts:\n          queue: 31s\n",
    ));
    assert!(
        changed(&narrowed) && narrowed["service"].is_null(),
        "{narrowed:#}"
    );
    assert!(
        narrowed["actions"]
            .to_string()
            .contains(&format!("del server web/{w1}")),
        "{narrowed:#}"
    );
    assert!(!bed.haproxy_cli("show servers state web").contains(&w1));

    // --- a reload that does not take effect is reported, run after run -----
    // `haproxy -c` cannot know that another process holds the new port.
    // The file that failed is rolled back: the old bytes, reloaded.
    bed.lb
        .sh("systemd-run --quiet --unit=t-hap-hold python3 -m http.server 8081 && sleep 1");
    let busy = backend_args(
        &bed,
        &[0],
        "        stickiness: cookie\n        frontend:\n          bind: '*:8081'\n",
    );
    let fingerprint = || {
        bed.lb
            .sh(&format!("sha256sum {CONFIG}; stat -c '%a %U' {CONFIG}"))
    };
    let old_file = fingerprint();
    for attempt in ["first", "second"] {
        let started = std::time::Instant::now();
        let result = bed.failed(&busy);
        eprintln!("failed reload rolled back in {:?}", started.elapsed());
        let msg = result["msg"].as_str().unwrap_or_default();
        assert!(
            msg.contains("no new worker answered")
                && msg.contains("the old config was restored")
                && msg.contains("HAProxy was reloaded with it"),
            "{attempt} run: {result:#}"
        );
        assert_eq!(fingerprint(), old_file, "{attempt} run left the new file");
        // HAProxy runs the old config: it serves on :80 and never took :8081.
        assert_eq!(sample(&bed, Duration::from_millis(300)).failed, 0);
        let on_8081 = bed.lb.sh("ss -Hltnp 'sport = :8081'");
        assert!(
            on_8081.contains("python3") && !on_8081.contains("haproxy"),
            "{on_8081}"
        );
    }
    bed.lb.sh("systemctl stop t-hap-hold");
    let back = bed.ok(&backend_args(&bed, &[0], "        stickiness: cookie\n"));
    assert_eq!(back["service"], "reloaded", "{back:#}");
    assert!(!changed(&bed.ok(&backend_args(
        &bed,
        &[0],
        "        stickiness: cookie\n"
    ))));
    assert_eq!(sample(&bed, Duration::from_millis(300)).failed, 0);

    // --- refused input: clear message, file untouched ----------------------
    let before = bed.config();
    // A link in a world-writable directory to a file only root may read.
    bed.lb.sh(
        "printf 'root only\\n' > /root/t-hap-target && chmod 600 /root/t-hap-target \
         && ln -sfn /root/t-hap-target /tmp/t-hap-link.cfg",
    );
    let cookie = "        stickiness: cookie\n";
    for (args, needle) in [
        // A line break in a path would add directives to `global`.
        (
            backend_args(&bed, &[0], &format!("{cookie}        admin_socket: \"/run/haproxy/admin.sock\\n    stats socket /tmp/t-hap-evil.sock level admin mode 666\"\n")),
            "admin_socket must not contain U+000A",
        ),
        // `;` separates runtime API commands; `haproxy -c -q` accepts it here.
        (
            backend_args(&bed, &[0], &format!("{cookie}        health_check:\n          path: /;x\n")),
            "health_check.path must not contain ';'",
        ),
        (
            backend_args(&bed, &[0], &format!("{cookie}        cookie:\n          key: k;help\n")),
            "cookie.key must not contain ';'",
        ),
        (
            format!("        name: web\n        server: {w0}\n        state: drain\n        config_path: /tmp/t-hap-link.cfg\n"),
            "/tmp/t-hap-link.cfg is a symbolic link that another user can change",
        ),
        (
            backend_args(&bed, &[0], &format!("{cookie}        config_path: /tmp/t-hap-link.cfg\n")),
            "/tmp/t-hap-link.cfg is a symbolic link that another user can change",
        ),
    ] {
        let result = bed.failed(&args);
        assert!(result["msg"].as_str().unwrap_or_default().contains(needle), "want {needle:?}: {result:#}");
        assert_eq!(bed.config(), before, "a refused run changed the file ({needle})");
    }
    assert_eq!(
        bed.lb.sh("cat /root/t-hap-target; stat -c %a /root/t-hap-target; test -e /tmp/t-hap-evil.sock || echo no-socket"),
        "root only\n600\nno-socket\n"
    );
    for (args, needle) in [
        // Without fail_on_not_found a missing backend is a warning (as in
        // community.general.haproxy).
        ("        name: nope\n        server: x\n        state: drain\n        fail_on_not_found: true\n".to_string(), "backend nope not found"),
        (format!("        name: web\n        server: {w1}\n        address: 10.231.0.300\n"), "must be an IPv4 or IPv6 address"),
        (format!("        name: web\n        server: {w1}\n        address: 10.231.0.7\n        port: 70000\n"), "between 1 and 65535"),
        (format!("        name: web\n        servers:\n          - {{name: a, address: {0}}}\n          - {{name: a, address: {0}}}\n", bed.web[0].ipv4), "duplicate server names: a"),
        (format!("        name: web\n        server: {w0}\n        state: drain\n        admin_socket: /run/haproxy/missing.sock\n"), "cannot reach the HAProxy admin socket"),
    ] {
        let result = bed.failed(&args);
        assert!(result["msg"].as_str().unwrap_or_default().contains(needle), "want {needle:?}: {result:#}");
        assert_eq!(bed.config(), before, "a refused run changed the file ({needle})");
    }
}
