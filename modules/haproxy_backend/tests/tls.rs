//! HTTPS on the frontend (`frontend.tls`) and `extra` directives, against
//! real HAProxy and Apache in LXD containers, driven by real
//! `ansible-playbook` runs of the built (musl) binary.
//!
//! One load balancer and two web nodes; a throwaway CA made on the host with
//! openssl. The story: TLS on with a certificate given as content (0600,
//! masked), HTTPS answered by each web node in turn, plain HTTP redirected,
//! `X-Forwarded-Proto` reaching Apache (and a forged one overwritten), HSTS,
//! the handshake + request latency under a 20 ms HTTPS probe, a rotation
//! (new serial) under that probe with no failed request, a rotation of a
//! file another task put there, a rate limit and an ACL as `extra` lines,
//! and refused input (a line break, a section keyword, a bad bind, a line
//! `haproxy -c` rejects, a key that does not match) leaving both files as
//! they were.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;
use testbed::ansible::{module_play, Run, Runner};
use testbed::https::{HttpsProbe, TestCa};
use testbed::Container;

const CONFIG: &str = "/etc/haproxy/haproxy.cfg";
const CERT: &str = "/etc/haproxy/tls.pem";
const NAME: &str = "www.vrrp.test";

struct Bed {
    lb: Container,
    web: Vec<Container>,
}

impl Bed {
    fn up() -> Bed {
        let mut all = Container::launch_booted(&["t-tls-lb", "t-tls-web", "t-tls-web"]);
        let lb = all.remove(0);
        for w in &all {
            // The page names the host; a log of the scheme HAProxy reports.
            w.write_file(
                "/etc/apache2/conf-enabled/t-proto.conf",
                "LogFormat \"%m %{X-Forwarded-Proto}i %U\" t_proto\n",
            );
            // A vhost's own CustomLog hides the server's: add ours to it.
            w.sh("sed -i 's|</VirtualHost>|\tCustomLog ${APACHE_LOG_DIR}/t-proto.log t_proto\\n</VirtualHost>|' /etc/apache2/sites-enabled/000-default.conf \
                  && hostname > /var/www/html/index.html && apache2ctl configtest 2>/dev/null && systemctl reload apache2 && systemctl is-active apache2");
        }
        lb.sh("systemctl disable --now apache2 >/dev/null 2>&1; systemctl is-active haproxy");
        Bed { lb, web: all }
    }

    fn run(&self, args: &str, extra: &[&str]) -> (Run, Value) {
        let playbook = module_play("haproxy_backend", args);
        let mut runner = Runner::for_containers(&[&self.lb]);
        for a in extra {
            runner = runner.arg(a);
        }
        let mut run = runner.run(&playbook);
        if run.json.is_null() {
            // With -v ansible-playbook prints a line before the JSON.
            let json = run.stdout.find("\n{").map_or("", |i| &run.stdout[i..]);
            run.json = serde_json::from_str(json).unwrap_or(Value::Null);
        }
        let result = run.task("haproxy_backend", &self.lb.name);
        (run, result)
    }

    fn ok(&self, args: &str) -> Value {
        let (run, result) = self.run(args, &[]);
        run.assert_ok();
        result
    }

    fn failed(&self, args: &str) -> Value {
        let (run, result) = self.run(args, &[]);
        assert_ne!(run.rc, 0, "expected a failure:\n{}", run.stdout);
        assert_eq!(result["failed"], Value::Bool(true), "{result:#}");
        result
    }

    /// The config's and the certificate's checksums and modes.
    fn files(&self) -> String {
        self.lb.sh(&format!(
            "sha256sum {CONFIG} {CERT}; stat -c '%a %U' {CONFIG} {CERT}"
        ))
    }

    fn ip(&self) -> IpAddr {
        IpAddr::V4(self.lb.ipv4)
    }

    fn https(&self, ca: &TestCa) -> HttpsProbe {
        HttpsProbe::new(self.ip(), 443, NAME, &ca.cert).expect("HTTPS probe")
    }

    /// The schemes Apache logged on each web node since the last call.
    fn schemes(&self) -> Vec<String> {
        let mut out = vec![];
        for w in &self.web {
            let log = w.sh(
                "cat /var/log/apache2/t-proto.log 2>/dev/null; : > /var/log/apache2/t-proto.log",
            );
            // HAProxy's health checks (OPTIONS) carry no X-Forwarded-Proto.
            out.extend(
                log.lines()
                    .filter(|l| !l.starts_with("OPTIONS "))
                    .map(|l| l.trim_start_matches("GET ").to_string()),
            );
        }
        out
    }
}

/// `name: web`, both web nodes, and `tls` (YAML indented under `tls:`).
fn args(bed: &Bed, tls: &str, extra: &str) -> String {
    let mut s = String::from("        name: web\n        servers:\n");
    for w in &bed.web {
        s.push_str(&format!(
            "          - name: {}\n            address: {}\n",
            w.name, w.ipv4
        ));
    }
    if !tls.is_empty() {
        s.push_str("        frontend:\n          tls:\n");
        s.push_str(tls);
    }
    s.push_str(extra);
    s
}

/// `certificate_content: |` with `pem`, indented for `tls:`.
fn content(pem: &str) -> String {
    let mut s = String::from("            certificate_content: |\n");
    for line in pem.lines() {
        s.push_str(&format!("              {line}\n"));
    }
    s
}

/// A plain HTTP GET: status and header lines (lower-case names).
fn plain_get(ip: IpAddr, path: &str, headers: &str) -> (u16, Vec<(String, String)>, String) {
    testbed::probe::check_route(ip, &testbed::bridge()).expect("LB routed via the bridge");
    let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(2))
        .expect("connect to the LB");
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {NAME}\r\n{headers}\r\n").expect("send");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn changed(v: &Value) -> bool {
    v["changed"].as_bool().unwrap_or(false)
}

fn msg(v: &Value) -> &str {
    v["msg"].as_str().unwrap_or_default()
}

/// The base64 lines of a PEM's private key (what must never be shown).
fn key_lines(pem: &str) -> Vec<String> {
    pem.split("PRIVATE KEY-----")
        .nth(1)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.len() > 16 && !l.starts_with("-----"))
        .map(str::to_string)
        .collect()
}

#[test]
fn https_on_the_frontend_in_real_containers() {
    let bed = Bed::up();
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = TestCa::new(dir.path(), "t-tls CA").expect("CA");
    let ip = bed.ip();
    let pem1 = ca.issue(&[NAME], &[ip], "1001").expect("certificate 1");
    let hosts: Vec<String> = bed.web.iter().map(|w| w.name.clone()).collect();

    // --- TLS on, the certificate given as content ------------------------
    let tls1 = format!("{}            hsts: 600\n", content(&pem1));
    let (run, first) = bed.run(&args(&bed, &tls1, ""), &["--diff", "-v"]);
    run.assert_ok();
    assert!(
        changed(&first) && first["service"] == "reloaded",
        "{first:#}"
    );
    assert_eq!(first["tls_certificate"], CERT);
    for line in key_lines(&pem1) {
        assert!(
            !run.stdout.contains(&line) && !run.stderr.contains(&line),
            "key material in the output"
        );
    }
    let diff = first["diff"].to_string();
    assert!(
        diff.contains("private key: present (not shown)")
            && diff.contains("ssl crt /etc/haproxy/tls.pem"),
        "{diff}"
    );
    assert_eq!(
        first["invocation"]["module_args"]["frontend"]["tls"]["certificate_content"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );
    assert_eq!(bed.lb.sh(&format!("stat -c '%a %U' {CERT}")), "600 root\n");
    assert_eq!(bed.lb.read_file(CERT), pem1);
    let cfg = bed.lb.read_file(CONFIG);
    for want in [
        "ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets",
        "ssl-default-bind-ciphersuites TLS_AES_128_GCM_SHA256:",
        "bind *:443 ssl crt /etc/haproxy/tls.pem alpn h2,http/1.1",
        "http-request redirect scheme https code 301 unless { ssl_fc }",
        "http-request set-header X-Forwarded-Proto https if { ssl_fc }",
        "Strict-Transport-Security max-age=600 if { ssl_fc }",
    ] {
        assert!(cfg.contains(want), "{want:?} not in:\n{cfg}");
    }
    let again = bed.ok(&args(&bed, &tls1, ""));
    assert!(!changed(&again), "second run: {again:#}");

    // --- HTTPS from each web node in turn; plain HTTP redirected ----------
    let probe = bed.https(&ca);
    let mut seen = vec![];
    for _ in 0..6 {
        let a = probe.get("/", &[]).expect("HTTPS answer");
        assert_eq!((a.status, a.serial.as_str()), (200, "1001"), "{a:?}");
        assert_eq!(a.header("strict-transport-security"), Some("max-age=600"));
        seen.push(a.first_line());
    }
    for h in &hosts {
        assert!(seen.contains(h), "{h} never answered over HTTPS: {seen:?}");
    }
    let mut turns = seen.clone();
    turns.dedup();
    assert_eq!(turns.len(), seen.len(), "not in turn: {seen:?}");
    let (status, headers, _) = plain_get(ip, "/page?x=1", "");
    let location = headers
        .iter()
        .find(|(n, _)| n == "location")
        .map(|(_, v)| v.clone());
    assert_eq!(
        (status, location.as_deref()),
        (301, Some("https://www.vrrp.test/page?x=1")),
        "{headers:?}"
    );
    assert!(
        !headers
            .iter()
            .any(|(n, _)| n == "strict-transport-security"),
        "HSTS over plain HTTP: {headers:?}"
    );
    // Apache saw https, and nothing came through over plain HTTP.
    let schemes = bed.schemes();
    assert!(
        schemes.len() >= 6 && schemes.iter().all(|l| l == "https /index.html"),
        "{schemes:?}"
    );

    // --- latency: handshake + request under a 20 ms HTTPS probe -----------
    let idle = bed
        .https(&ca)
        .interval(Duration::from_millis(20))
        .run_for(Duration::from_secs(5));
    eprintln!(
        "HTTPS probe, idle: {} requests, {} failed, p50 {} ms, p99 {} ms, max {} ms, {:?}",
        idle.requests, idle.failed, idle.p50_ms, idle.p99_ms, idle.max_ms, idle.backends
    );
    assert_eq!(idle.failed, 0, "{idle:?}");
    assert!(idle.ok > 100, "{idle:?}");

    // --- rotation: a new certificate (new serial) in one run, under the probe
    let pem2 = ca.issue(&[NAME], &[ip], "1002").expect("certificate 2");
    let tls2 = format!("{}            hsts: 600\n", content(&pem2));
    let running = bed
        .https(&ca)
        .interval(Duration::from_millis(20))
        .max_duration(Duration::from_secs(120))
        .start();
    std::thread::sleep(Duration::from_millis(500));
    let (run, rotated) = bed.run(&args(&bed, &tls2, ""), &["--diff", "-v"]);
    std::thread::sleep(Duration::from_millis(1000));
    let report = running.stop();
    run.assert_ok();
    eprintln!(
        "HTTPS probe during the rotation: {} requests, {} failed, p50 {} ms, p99 {} ms, max {} ms, serials {:?}",
        report.requests, report.failed, report.p50_ms, report.p99_ms, report.max_ms, report.serials
    );
    assert!(
        changed(&rotated) && rotated["service"] == "reloaded",
        "{rotated:#}"
    );
    let diffs = rotated["diff"].to_string();
    assert!(diffs.contains("1 certificate(s), fingerprint"), "{diffs}");
    for line in key_lines(&pem1).iter().chain(&key_lines(&pem2)) {
        assert!(
            !run.stdout.contains(line),
            "key material in the rotation's output"
        );
    }
    assert_eq!(
        report.failed, 0,
        "failed requests during the rotation: {report:?}"
    );
    assert!(
        report.serials.contains_key("1001") && report.serials.contains_key("1002"),
        "{report:?}"
    );
    assert_eq!(probe.get("/", &[]).expect("answer").serial, "1002");
    assert!(!changed(&bed.ok(&args(&bed, &tls2, ""))));

    // --- rotation of a file another task put there (no content given) -----
    let pem3 = ca.issue(&[NAME], &[ip], "1003").expect("certificate 3");
    bed.lb.write_file(CERT, &pem3);
    bed.lb.sh(&format!("chmod 600 {CERT}"));
    let by_path = "            hsts: 600\n";
    let running = bed
        .https(&ca)
        .interval(Duration::from_millis(20))
        .max_duration(Duration::from_secs(120))
        .start();
    let picked = bed.ok(&args(&bed, by_path, ""));
    std::thread::sleep(Duration::from_millis(500));
    let report = running.stop();
    eprintln!(
        "HTTPS probe during a rotation on disk: {} requests, {} failed, serials {:?}",
        report.requests, report.failed, report.serials
    );
    assert_eq!(picked["service"], "reloaded", "{picked:#}");
    assert_eq!(report.failed, 0, "{report:?}");
    assert_eq!(probe.get("/", &[]).expect("answer").serial, "1003");
    assert!(!changed(&bed.ok(&args(&bed, by_path, ""))));

    // --- X-Forwarded-Proto without the redirect; a forged one replaced ----
    let no_redirect = "            redirect_http: false\n";
    bed.ok(&args(&bed, no_redirect, ""));
    bed.schemes();
    let (status, _, body) = plain_get(ip, "/", "X-Forwarded-Proto: https\r\n");
    assert_eq!(status, 200, "{body}");
    let a = probe
        .get("/", &["X-Forwarded-Proto: http"])
        .expect("answer");
    assert_eq!(a.status, 200);
    assert!(
        a.header("strict-transport-security").is_none(),
        "hsts: 0 is off"
    );
    let mut schemes = bed.schemes();
    schemes.sort();
    assert_eq!(
        schemes,
        ["http /index.html", "https /index.html"],
        "forged X-Forwarded-Proto kept"
    );

    // --- extra: a rate limit, an ACL, a path routed to a second backend ---
    // (the stats listener: `use_backend` to a section the module writes)
    let limited = "        stats:\n          enabled: true\n        extra:\n          frontend:\n            - stick-table type ip size 1k expire 30s store http_req_rate(10s)\n            - http-request track-sc0 src\n            - http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20 }\n            - acl private path_beg /private\n            - http-request deny deny_status 403 if private\n            - acl stats_page path_beg /haproxy\n            - use_backend stats if stats_page\n";
    let with_extra = bed.ok(&args(&bed, by_path, limited));
    assert_eq!(with_extra["service"], "reloaded", "{with_extra:#}");
    assert_eq!(probe.get("/private/x", &[]).expect("answer").status, 403);
    let stats = probe.get("/haproxy?stats", &[]).expect("answer");
    assert_eq!(
        (stats.status, stats.header("www-authenticate").is_some()),
        (401, true),
        "{stats:?}"
    );
    let statuses: Vec<u16> = (0..30)
        .map(|_| probe.get("/", &[]).map(|a| a.status).unwrap_or(0))
        .collect();
    assert!(
        statuses.contains(&200) && statuses.contains(&429),
        "{statuses:?}"
    );
    bed.ok(&args(&bed, by_path, ""));
    assert_eq!(probe.get("/private/x", &[]).expect("answer").status, 404);

    // --- refused input: a message naming the option, both files unchanged -
    let before = bed.files();
    for (bad, needle) in [
        (
            args(&bed, by_path, "        extra:\n          frontend:\n            - \"acl a path /a\\nbackend evil\"\n"),
            "extra.frontend[0] must not contain U+000A",
        ),
        (
            args(&bed, by_path, "        extra:\n          backend:\n            - http-request set-header X-A 1\n            - listen evil\n"),
            "extra.backend[1] must not start a section (\"listen\")",
        ),
        (
            args(&bed, by_path, "        extra:\n          global:\n            - \"  \\\"frontend\\\" evil\"\n"),
            "extra.global[0] must not start a section (\"frontend\")",
        ),
        (
            args(&bed, "            bind: '*:99999'\n", ""),
            "frontend.tls.bind must be an address and port",
        ),
        (
            args(&bed, "            bind: '*:443 ssl crt /etc/shadow'\n", ""),
            "frontend.tls.bind must not contain a space",
        ),
        (
            args(&bed, by_path, "        extra:\n          frontend:\n            - no-such-directive here\n"),
            "comes from extra.frontend[0]",
        ),
        (
            args(&bed, &content("not a certificate"), ""),
            "frontend.tls.certificate_content must hold a PEM certificate",
        ),
    ] {
        let result = bed.failed(&bad);
        assert!(msg(&result).contains(needle), "want {needle:?}: {result:#}");
        assert_eq!(bed.files(), before, "a refused run changed a file ({needle})");
    }
    // A certificate whose key is another one's: haproxy -c refuses it with
    // the new file in place, and the old one is put back.
    let pem4 = ca.issue(&[NAME], &[ip], "1004").expect("certificate 4");
    let mismatched = format!(
        "{}-----BEGIN PRIVATE KEY-----{}",
        pem4.split("-----BEGIN PRIVATE KEY-----")
            .next()
            .unwrap_or_default(),
        pem1.split("-----BEGIN PRIVATE KEY-----")
            .nth(1)
            .unwrap_or_default()
    );
    let result = bed.failed(&args(&bed, &content(&mismatched), ""));
    assert!(
        msg(&result).contains("failed to validate")
            && msg(&result).contains("/etc/haproxy/tls.pem is back as it was"),
        "{result:#}"
    );
    for line in key_lines(&pem1) {
        assert!(
            !result.to_string().contains(&line),
            "key material in a failure"
        );
    }
    assert_eq!(bed.files(), before, "the rejected certificate stayed");
    assert_eq!(probe.get("/", &[]).expect("answer").serial, "1003");

    // --- a reload that does not take: config and certificate put back ------
    // `haproxy -c` cannot know that another process holds the new port.
    bed.lb
        .sh("systemd-run --quiet --unit=t-tls-hold python3 -m http.server 8443 && sleep 1");
    let pem5 = ca.issue(&[NAME], &[ip], "1005").expect("certificate 5");
    let busy = format!("            bind: '*:8443'\n{}", content(&pem5));
    let result = bed.failed(&args(&bed, &busy, ""));
    assert!(
        msg(&result).contains("no new worker answered")
            && msg(&result).contains(&format!(
                "the old config was restored: {CONFIG} and {CERT} are back byte for byte and HAProxy was reloaded with it"
            )),
        "{result:#}"
    );
    assert_eq!(bed.files(), before, "a reload that failed left a new file");
    let a = probe.get("/", &[]).expect("answer");
    assert_eq!((a.status, a.serial.as_str()), (200, "1003"));
    bed.lb.sh("systemctl stop t-tls-hold");
}
