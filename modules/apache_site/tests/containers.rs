//! `apache_site` in real containers, run by a real `ansible-playbook` from the
//! built binary (`make build` puts it in dist/library): the client address that
//! HAProxy forwards is the first field of the access log line, a forged header
//! from anyone else is ignored, health checks leave no line, and a configuration
//! that `apachectl configtest` refuses is rolled back while the old site keeps
//! answering.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;
use testbed::ansible::{Run, Runner};
use testbed::Container;

/// What a plain HTTP/1.0 exchange returned.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// One request to a container on the bridge (the route is checked first), with
/// a bounded connect and read time.
fn http(
    ip: Ipv4Addr,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<Answer> {
    testbed::probe::check_route(IpAddr::V4(ip), &testbed::bridge())
        .map_err(std::io::Error::other)?;
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::new(IpAddr::V4(ip), port),
        Duration::from_secs(3),
    )?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut req =
        format!("{method} {path} HTTP/1.0\r\nHost: {ip}\r\nUser-Agent: apache-site-test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;
    let mut raw = Vec::new();
    stream.take(1 << 20).read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok(Answer {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn get(ip: Ipv4Addr, port: u16, path: &str, headers: &[(&str, &str)]) -> Answer {
    http(ip, port, "GET", path, headers)
        .unwrap_or_else(|e| panic!("GET http://{ip}:{port}{path}: {e}"))
}

/// Retries `f` every 200 ms until it returns `Some`, for at most `limit`.
fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The host's own address on the bridge, as the containers see it.
fn host_address(towards: Ipv4Addr) -> String {
    let route = ansible_module::service::run_bounded(
        "ip",
        &["route", "get", &towards.to_string()],
        Duration::from_secs(10),
    )
    .unwrap_or_else(|e| panic!("ip route get: {e}"));
    let words: Vec<&str> = route.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[0] == "src")
        .map(|w| w[1].to_string())
        .unwrap_or_else(|| panic!("no source address in: {route}"))
}

/// Two containers at once (each launch waits for its DHCP address).
fn launch_two(a: &str, b: &str) -> (Container, Container) {
    std::thread::scope(|s| {
        let ha = s.spawn(|| Container::launch(a));
        let hb = s.spawn(|| Container::launch(b));
        (ha.join().expect("launch"), hb.join().expect("launch"))
    })
}

/// A runner for these containers. The project's ansible.cfg enables only the
/// script inventory (the LXD inventory binary); the runner's inventory is INI.
fn runner_for(hosts: &[&Container]) -> Runner {
    Runner::for_containers(hosts).env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini")
}

fn play(tasks: &str) -> String {
    format!("- name: apache_site\n  hosts: targets\n  gather_facts: false\n  tasks:\n{tasks}")
}

/// A task running the module with `args` (YAML lines indented by 8).
fn site_task(name: &str, args: &str) -> String {
    format!("    - name: {name}\n      ansible.legacy.apache_site:\n{args}")
}

fn result(run: &Run, task: &str, host: &Container) -> Value {
    run.task(task, &host.name)
}

/// Waits (bounded) until the container booted far enough to run Apache.
fn apache_running(c: &Container) {
    eventually(
        Duration::from_secs(120),
        &format!("apache2 to run in {}", c.name),
        || {
            c.exec("systemctl is-active --quiet apache2")
                .status
                .success()
                .then_some(())
        },
    );
}

fn main_pid(c: &Container) -> String {
    c.sh("systemctl show -p MainPID --value apache2")
        .trim()
        .to_string()
}

/// The sha256 of each file, as the container computes it.
fn sha256(c: &Container, paths: &[&str]) -> String {
    c.sh(&format!("sha256sum {}", paths.join(" ")))
}

/// Every file, link and directory the module may touch (a2enmod's markers
/// in /var/lib/apache2 included), with contents' hashes.
fn snapshot(c: &Container) -> String {
    c.sh(
        "cd / && find etc/apache2 var/www var/lib/apache2 \\( -type l -printf '%p -> %l\\n' \\) -o \\( -type f -printf '%p %m\\n' \\) \
         -o \\( -type d -printf '%p/ %m\\n' \\) | sort && find etc/apache2 var/www var/lib/apache2 -type f -exec md5sum {} + | sort",
    )
}

/// The links in `mods-enabled` and `sites-enabled` under `etc`, and the
/// markers under `state` (what `a2enmod` and `a2ensite` change).
fn enabled_state(c: &Container, etc: &str, state: &str) -> String {
    c.sh(&format!(
        "cd {etc} && find mods-enabled sites-enabled -type l -printf '%p -> %l\\n' | sort && \
         cd {state} && find . -type f | sort"
    ))
}

fn access_log(c: &Container) -> Vec<String> {
    c.sh("cat /var/log/apache2/access.log")
        .lines()
        .map(str::to_string)
        .collect()
}

/// The log line of the one request whose path carries `marker`.
fn line_with(c: &Container, marker: &str) -> String {
    eventually(
        Duration::from_secs(5),
        &format!("a log line for {marker}"),
        || {
            let lines: Vec<String> = access_log(c)
                .into_iter()
                .filter(|l| l.contains(marker))
                .collect();
            assert!(
                lines.len() <= 1,
                "more than one line for {marker}: {lines:?}"
            );
            lines.into_iter().next()
        },
    )
}

fn total_accesses(c: &Container) -> u64 {
    let status = c.sh("curl -s -m 3 'http://127.0.0.1/server-status?auto'");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Total Accesses: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Total Accesses in server-status: {status}"))
}

const HAPROXY_CFG: &str = "global
    log /dev/log local0
defaults
    mode http
    log global
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend www
    bind *:80
    default_backend web
backend web
    option forwardfor
    option httpchk OPTIONS /
    http-check expect status 200
    default-server inter 300ms fall 2 rise 1
    server web1 WEB:80 check
";

#[test]
fn through_haproxy_the_client_is_logged_and_health_checks_are_not() {
    testbed::module_binary("apache_site");
    let (web, lb) = launch_two("t-web-site", "t-web-lb");
    apache_running(&web);
    apache_running(&lb);
    let pid_before = main_pid(&web);

    let converge = play(&site_task(
        "site",
        &format!(
            "        name: vrrp\n        trusted_proxies: [\"{}\"]\n",
            lb.ipv4
        ),
    ));
    let runner = runner_for(&[&web]).diff();
    let first = runner.run(&converge);
    first.assert_ok();
    let r = result(&first, "site", &web);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["service"], "reloaded", "{r}");
    assert_eq!(r["default_site_disabled"], true, "{r}");
    assert!(
        r["modules_enabled"]
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x == "remoteip")),
        "{r}"
    );
    assert!(
        r["diff"].is_array(),
        "diff mode returns the file changes: {r}"
    );

    let second = runner.run(&converge);
    second.assert_ok();
    assert_eq!(
        result(&second, "site", &web)["changed"],
        false,
        "second run must change nothing"
    );
    assert_eq!(second.stats(&web.name)["changed"], 0);
    let checked = runner_for(&[&web]).check().run(&converge);
    checked.assert_ok();
    assert_eq!(
        result(&checked, "site", &web)["changed"],
        false,
        "check mode on a converged site"
    );
    assert_eq!(
        main_pid(&web),
        pid_before,
        "Apache was restarted, not reloaded"
    );

    // The default page names the host.
    let page = eventually(Duration::from_secs(5), "the new site", || {
        let a = get(web.ipv4, 80, "/", &[]);
        a.body
            .contains(&format!("<h1>{}</h1>", web.name))
            .then_some(a)
    });
    assert_eq!(page.status, 200);

    // A real HAProxy in front: option forwardfor, health checks OPTIONS /.
    lb.write_file(
        "/etc/haproxy/haproxy.cfg",
        &HAPROXY_CFG.replace("WEB", &web.ipv4.to_string()),
    );
    // The image runs Apache everywhere; on the load balancer port 80 is HAProxy's.
    lb.sh("systemctl stop apache2 && haproxy -c -q -f /etc/haproxy/haproxy.cfg && systemctl restart haproxy");
    eventually(
        Duration::from_secs(15),
        "HAProxy to serve the web node",
        || {
            let a = http(lb.ipv4, 80, "GET", "/?t=warmup", &[]).ok()?;
            (a.status == 200 && a.body.contains(&web.name)).then_some(())
        },
    );

    let client = host_address(web.ipv4);
    let through = get(lb.ipv4, 80, "/?t=via-proxy", &[]);
    assert_eq!(through.status, 200);
    let line = line_with(&web, "t=via-proxy ");
    assert!(
        line.starts_with(&format!("{client} ")),
        "client not first on the line: {line}"
    );

    // A client's own X-Forwarded-For through the proxy: HAProxy appends the real
    // address and only that one is believed.
    get(
        lb.ipv4,
        80,
        "/?t=via-proxy-forged",
        &[("X-Forwarded-For", "198.51.100.7")],
    );
    let line = line_with(&web, "t=via-proxy-forged");
    assert!(
        line.starts_with(&format!("{client} ")),
        "forged header through the proxy believed: {line}"
    );

    // Straight to the web node with a forged header: the real peer is logged.
    get(
        web.ipv4,
        80,
        "/?t=direct-forged",
        &[("X-Forwarded-For", "203.0.113.9")],
    );
    let line = line_with(&web, "t=direct-forged");
    assert!(
        line.starts_with(&format!("{client} ")),
        "forged header from a non-proxy believed: {line}"
    );

    // Health checks reach Apache (every 300 ms) but leave no line.
    let lines_before = access_log(&web).len();
    let accesses_before = total_accesses(&web);
    std::thread::sleep(Duration::from_secs(3));
    let accesses_after = total_accesses(&web);
    let new_lines: Vec<String> = access_log(&web).into_iter().skip(lines_before).collect();
    assert!(
        accesses_after - accesses_before >= 6,
        "HAProxy's checks did not reach Apache: {accesses_before} -> {accesses_after}"
    );
    assert!(
        new_lines.iter().all(|l| l.contains("/server-status")),
        "only the two server-status requests may be logged, got: {new_lines:?}"
    );
    let lb_prefix = format!("{} ", lb.ipv4);
    let from_lb: Vec<String> = access_log(&web)
        .into_iter()
        .filter(|l| l.starts_with(&lb_prefix))
        .collect();
    assert!(
        from_lb.is_empty(),
        "lines with the load balancer as client: {from_lb:?}"
    );

    // The same request from an address that is not a proxy is logged.
    let options = http(web.ipv4, 80, "OPTIONS", "/", &[]).expect("OPTIONS");
    assert_eq!(options.status, 200);
    let logged = eventually(Duration::from_secs(5), "the direct OPTIONS line", || {
        access_log(&web)
            .into_iter()
            .find(|l| l.starts_with(&format!("{client} ")) && l.contains("\"OPTIONS / HTTP/1.0\""))
    });
    assert!(logged.contains("apache-site-test"), "{logged}");
}

#[test]
fn refused_config_and_bad_input_change_nothing() {
    testbed::module_binary("apache_site");
    let web = Container::launch("t-web-guard");
    apache_running(&web);
    // A link inside /var/www that leads out of it.
    web.sh("ln -s /etc /var/www/escape");

    let base = "        name: demo\n        index_content: \"old page\\n\"\n        trusted_proxies: [10.231.0.2]\n";
    let runner = runner_for(&[&web]);
    let first = runner.run(&play(&site_task("site", base)));
    first.assert_ok();
    assert_eq!(result(&first, "site", &web)["changed"], true);
    eventually(Duration::from_secs(5), "the old page", || {
        (get(web.ipv4, 80, "/", &[]).body == "old page\n").then_some(())
    });
    // Bytes that are not UTF-8 (a Latin-1 comment) in files a rollback puts back.
    web.sh(
        "printf '# Ports (r\\351seau)\\n' >> /etc/apache2/ports.conf && \
         printf '# caf\\351 (edited by hand)\\n' >> /etc/apache2/sites-available/demo.conf",
    );
    let latin1 = [
        "/etc/apache2/ports.conf",
        "/etc/apache2/sites-available/demo.conf",
    ];
    let latin1_sums = sha256(&web, &latin1);
    let before = snapshot(&web);
    let pid = main_pid(&web);

    // Check mode with diff: reports the change, writes nothing.
    let moved = "        name: demo\n        index_content: \"new page\\n\"\n        trusted_proxies: [10.231.0.2]\n        port: 8080\n";
    let check = runner_for(&[&web])
        .check()
        .diff()
        .run(&play(&site_task("site", moved)));
    check.assert_ok();
    let r = result(&check, "site", &web);
    assert_eq!(r["changed"], true, "{r}");
    let diff = r["diff"].to_string();
    assert!(
        diff.contains("<VirtualHost *:8080>")
            && diff.contains("Listen 8080")
            && diff.contains("new page"),
        "{r}"
    );
    assert_eq!(snapshot(&web), before, "check mode changed files");

    // Bad input: a clear failure each, nothing changed. Port 8090 is held by
    // another program: configtest would pass, but the reload would stop Apache.
    web.sh("systemd-run --unit t-listener python3 -m http.server 8090 >/dev/null 2>&1");
    eventually(Duration::from_secs(10), "the other program on 8090", || {
        web.sh("ss -ltn").contains(":8090 ").then_some(())
    });
    // Another user plants a link where a log would go (/tmp is theirs too).
    web.sh("runuser -u nobody -- ln -s /etc/shadow /tmp/t-planted.log");
    let escape = serde_json::to_string(
        "</VirtualHost>\n<Directory />\nRequire all granted\n</Directory>\n<VirtualHost *:80>",
    )
    .expect("json");
    let escape = format!("        name: demo\n        extra_config: {escape}\n");
    let bad = [
        (
            "vhost escape",
            escape.as_str(),
            "extra_config line 1: </VirtualHost> closes a section extra_config did not open",
        ),
        (
            "newline in root",
            "        name: demo\n        document_root: \"/var/www/demo\\nInclude /etc/shadow\"\n",
            "document_root may hold only",
        ),
        (
            "expression",
            "        name: demo\n        health_check: {path: \"/?x=%{REMOTE_ADDR}\"}\n",
            "health_check.path must not contain '%'",
        ),
        (
            "planted log",
            "        name: demo\n        access_log: /tmp/t-planted.log\n",
            "/tmp can be changed by other users",
        ),
        (
            "outside root",
            "        name: demo\n        document_root: /etc/demo\n",
            "outside the allowed roots (/var/www, /srv)",
        ),
        (
            "through link",
            "        name: demo\n        document_root: /var/www/escape/demo\n",
            "through a symbolic link",
        ),
        (
            "port",
            "        name: demo\n        port: 70000\n",
            "port must be between 1 and 65535, got: 70000",
        ),
        (
            "module",
            "        name: demo\n        modules: [nonesuch]\n",
            "unknown Apache module nonesuch",
        ),
        (
            "proxy",
            "        name: demo\n        trusted_proxies: [lb-01.example]\n",
            "trusted_proxies entries must be IP addresses",
        ),
        (
            "state",
            "        name: demo\n        state: running\n",
            "value of state must be one of: present, absent, got: running",
        ),
        (
            "port in use",
            "        name: demo\n        port: 8090\n",
            "port 8090 is already in use by python3",
        ),
    ];
    let tasks: String = bad
        .iter()
        .map(|(task, args, _)| format!("{}      ignore_errors: true\n", site_task(task, args)))
        .collect();
    let run = runner.run(&play(&tasks));
    let mut wrong = Vec::new();
    for (task, _, msg) in bad {
        let r = result(&run, task, &web);
        let got = r["msg"].as_str().unwrap_or_default();
        if r["failed"] != true || r["changed"] != false || !got.contains(msg) {
            wrong.push(format!("{task}: expected a failure with {msg:?}, got {r}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(snapshot(&web), before, "bad input changed files");
    web.sh("systemctl is-active apache2");

    // A directive configtest refuses, together with other changes: all rolled back.
    let broken = format!(
        "{moved}        modules: [headers]\n        extra_config: \"NoSuchDirective on\"\n"
    );
    let run = runner.run(&play(&format!(
        "{}      ignore_errors: true\n",
        site_task("broken", &broken)
    )));
    let r = result(&run, "broken", &web);
    assert_eq!(r["failed"], true, "{r}");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains("every change was rolled back") && msg.contains("NoSuchDirective"),
        "{msg}"
    );
    assert_eq!(
        snapshot(&web),
        before,
        "the refused change left files behind"
    );
    assert_eq!(
        get(web.ipv4, 80, "/", &[]).body,
        "old page\n",
        "the old site must still answer"
    );
    assert_eq!(main_pid(&web), pid);
    web.sh("systemctl is-active apache2");
    assert_eq!(
        sha256(&web, &latin1),
        latin1_sums,
        "the rollback did not restore the Latin-1 bytes exactly"
    );

    // Removing the site while configtest fails (another file is broken): the
    // removed vhost, Latin-1 comment and all, comes back byte for byte.
    let vhost = ["/etc/apache2/sites-available/demo.conf"];
    let vhost_sum = sha256(&web, &vhost);
    web.sh("echo NoSuchDirective > /etc/apache2/conf-enabled/zz-t-broken.conf");
    let remove = "        name: demo\n        state: absent\n";
    let run = runner.run(&play(&format!(
        "{}      ignore_errors: true\n",
        site_task("remove while broken", remove)
    )));
    web.sh("rm /etc/apache2/conf-enabled/zz-t-broken.conf");
    let r = result(&run, "remove while broken", &web);
    assert_eq!(r["failed"], true, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("every change was rolled back"),
        "{r}"
    );
    assert_eq!(
        sha256(&web, &vhost),
        vhost_sum,
        "the removed vhost came back altered"
    );
    assert_eq!(snapshot(&web), before, "the refused removal left changes");

    // configtest passes but `systemctl reload apache2` fails (once): every file
    // goes back and Apache is reloaded on them; the old site keeps answering.
    web.sh(
        "mkdir -p /etc/systemd/system/apache2.service.d && \
         printf '[Service]\\nExecReload=\\nExecReload=/bin/sh -c \"if [ -e /run/t-fail-reload ]; then rm -f /run/t-fail-reload; exit 1; fi; exec /usr/sbin/apachectl graceful\"\\n' \
           > /etc/systemd/system/apache2.service.d/t-fail-reload.conf && \
         systemctl daemon-reload && touch /run/t-fail-reload",
    );
    let good = format!(
        "{moved}        modules: [headers]\n        extra_config: \"Header set X-Demo yes\"\n"
    );
    let run = runner.run(&play(&format!(
        "{}      ignore_errors: true\n",
        site_task("reload fails", &good)
    )));
    web.sh(
        "rm -f /etc/systemd/system/apache2.service.d/t-fail-reload.conf /run/t-fail-reload && systemctl daemon-reload",
    );
    let r = result(&run, "reload fails", &web);
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(r["changed"], false, "{r}");
    let msg = r["msg"].as_str().unwrap_or_default();
    assert!(
        msg.starts_with("`systemctl reload apache2` failed")
            && msg.ends_with("every change was rolled back and Apache was reloaded with its previous configuration"),
        "{msg}"
    );
    assert_eq!(snapshot(&web), before, "the failed reload left changes");
    assert_eq!(sha256(&web, &latin1), latin1_sums);
    assert_eq!(get(web.ipv4, 80, "/", &[]).body, "old page\n");
    assert_eq!(main_pid(&web), pid);
    web.sh("systemctl is-active apache2");

    // The same change without the mistake goes live with a graceful reload.
    let run = runner.run(&play(&site_task("good", &good)));
    run.assert_ok();
    let r = result(&run, "good", &web);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["listen"], "*:8080", "{r}");
    let a = get(web.ipv4, 8080, "/", &[]);
    assert_eq!(a.body, "new page\n");
    assert!(a.head.contains("X-Demo: yes"), "{}", a.head);
    assert_eq!(main_pid(&web), pid, "Apache was restarted, not reloaded");
    let again = runner.run(&play(&site_task("good", &good)));
    again.assert_ok();
    assert_eq!(result(&again, "good", &web)["changed"], false);

    // A stopped Apache is started (the only time the module starts it).
    web.sh("systemctl stop apache2");
    let run = runner.run(&play(&site_task("good", &good)));
    run.assert_ok();
    let r = result(&run, "good", &web);
    assert_eq!(r["changed"], true, "{r}");
    assert_eq!(r["service"], "started", "{r}");
    assert_eq!(get(web.ipv4, 8080, "/", &[]).body, "new page\n");

    // Absent: the site and its Listen block go; a second run changes nothing.
    let absent = "        name: demo\n        state: absent\n";
    let run = runner.run(&play(&site_task("absent", absent)));
    run.assert_ok();
    assert_eq!(result(&run, "absent", &web)["changed"], true);
    assert!(!web.sh("cat /etc/apache2/ports.conf").contains("8080"));
    eventually(Duration::from_secs(5), "port 8080 to close", || {
        http(web.ipv4, 8080, "GET", "/", &[]).is_err().then_some(())
    });
    let run = runner.run(&play(&site_task("absent", absent)));
    run.assert_ok();
    assert_eq!(result(&run, "absent", &web)["changed"], false);
}

/// Enabling a module or site records it as Debian's `a2enmod`/`a2ensite` do
/// (`/var/lib/apache2/{module,site}/enabled_by_admin/<name>`), disabling
/// flips the marker to `disabled_by_admin` (package scripts leave alone
/// what the admin disabled), and a refused change leaves every marker as it
/// was. Debian's own tools, run on a copy of the same tree, must end up with
/// the same links and markers.
#[test]
fn enabling_and_disabling_keeps_debians_markers() {
    testbed::module_binary("apache_site");
    let web = Container::launch("t-web-marks");
    apache_running(&web);
    web.sh("cp -a /etc/apache2 /root/ref-etc && cp -a /var/lib/apache2 /root/ref-state");
    let debian = |cmd: &str| {
        web.sh(&format!(
            "export APACHE_CONFDIR=/root/ref-etc APACHE_STATE_DIRECTORY=/root/ref-state && {cmd}"
        ))
    };
    let ours = || enabled_state(&web, "/etc/apache2", "/var/lib/apache2");
    let theirs = || enabled_state(&web, "/root/ref-etc", "/root/ref-state");
    let marker = |m: &str| {
        web.exec(&format!("test -f /var/lib/apache2/{m}"))
            .status
            .success()
    };
    let runner = runner_for(&[&web]);
    let base = "        name: marks\n        trusted_proxies: [10.231.0.2]\n";

    let on = format!("{base}        modules: [headers]\n");
    let run = runner.run(&play(&site_task("enable", &on)));
    run.assert_ok();
    let r = result(&run, "enable", &web);
    assert_eq!(r["default_site_disabled"], true, "{r}");
    for m in [
        "module/enabled_by_admin/headers",
        "module/enabled_by_admin/remoteip",
        "module/enabled_by_maint/setenvif",
        "site/enabled_by_admin/marks",
        "site/disabled_by_admin/000-default",
    ] {
        assert!(marker(m), "{m} is missing:\n{}", ours());
    }
    assert!(!marker("site/enabled_by_admin/000-default"), "{}", ours());
    web.sh("cp /etc/apache2/sites-available/marks.conf /root/ref-etc/sites-available/");
    debian("a2enmod -q headers remoteip && a2ensite -q marks && a2dissite -q 000-default");
    assert_eq!(ours(), theirs(), "a2enmod and a2ensite differ");

    // A refused change (configtest fails) that would enable a module leaves
    // every marker and link as it was.
    let before = snapshot(&web);
    let broken = format!(
        "{base}        modules: [headers, rewrite]\n        extra_config: \"NoSuchDirective on\"\n"
    );
    let run = runner.run(&play(&format!(
        "{}      ignore_errors: true\n",
        site_task("broken", &broken)
    )));
    let r = result(&run, "broken", &web);
    assert_eq!(r["failed"], true, "{r}");
    assert_eq!(
        snapshot(&web),
        before,
        "the refused change left markers behind"
    );

    // Disabled: the site's marker flips, as a2dissite flips it.
    let off = format!("{on}        enabled: false\n");
    let run = runner.run(&play(&site_task("disable", &off)));
    run.assert_ok();
    assert_eq!(result(&run, "disable", &web)["changed"], true);
    assert!(marker("site/disabled_by_admin/marks"), "{}", ours());
    assert!(!marker("site/enabled_by_admin/marks"), "{}", ours());
    debian("a2dissite -q marks");
    assert_eq!(ours(), theirs(), "a2dissite differs");

    // Check mode reports the change back and writes no marker.
    let before = snapshot(&web);
    let check = runner_for(&[&web])
        .check()
        .run(&play(&site_task("enable", &on)));
    check.assert_ok();
    assert_eq!(result(&check, "enable", &web)["changed"], true);
    assert_eq!(snapshot(&web), before, "check mode changed markers");

    // Enabled again: flipped back; a second run changes nothing.
    let run = runner.run(&play(&site_task("enable", &on)));
    run.assert_ok();
    debian("a2ensite -q marks");
    assert_eq!(ours(), theirs(), "a2ensite differs");
    let again = runner.run(&play(&site_task("enable", &on)));
    again.assert_ok();
    assert_eq!(result(&again, "enable", &web)["changed"], false);
}

/// Apache kept running and enabled at boot and the services a web node does
/// not run stopped and disabled, by `services_only` (the site's files left
/// alone, whether they are due a change reported) and by a site run; check mode reports and changes nothing; a unit
/// name that is not one is refused with nothing touched.
#[test]
fn services_are_kept_as_a_web_node_needs() {
    testbed::module_binary("apache_site");
    let web = Container::launch("t-web-units");
    apache_running(&web);
    let runner = runner_for(&[&web]);
    let units = || {
        web.sh(
            "for u in apache2 haproxy keepalived; do echo $u $(systemctl is-active $u) $(systemctl is-enabled $u); done",
        )
    };
    let break_by_hand = || {
        web.sh(
            "systemctl disable --now apache2 >/dev/null 2>&1; systemctl enable --now haproxy >/dev/null 2>&1; \
             systemctl stop keepalived >/dev/null 2>&1; systemctl reset-failed keepalived >/dev/null 2>&1; \
             systemctl enable keepalived >/dev/null 2>&1; systemctl is-active haproxy",
        );
        units()
    };
    let fixed = "apache2 active enabled\nhaproxy inactive disabled\nkeepalived inactive disabled\n";
    let unneeded = "        unneeded_services: [haproxy, keepalived]\n";
    let services = format!("        name: units\n        services_only: true\n{unneeded}");

    let by_hand = break_by_hand();
    assert!(
        by_hand.starts_with("apache2 inactive disabled\nhaproxy active enabled\n"),
        "{by_hand}"
    );
    let files = snapshot(&web);
    let run = runner
        .clone()
        .arg("--check")
        .run(&play(&site_task("check", &services)));
    run.assert_ok();
    let checked = result(&run, "check", &web);
    assert_eq!(units(), by_hand, "check mode changed the services");
    let run = runner.run(&play(&site_task("services", &services)));
    run.assert_ok();
    let done = result(&run, "services", &web);
    for r in [&checked, &done] {
        assert_eq!(r["changed"], true, "{r}");
        assert_eq!(r["service"], "started", "{r}");
        assert_eq!(r["service_enabled"], true, "{r}");
        assert_eq!(r["stopped_services"], serde_json::json!(["haproxy"]), "{r}");
        assert_eq!(
            r["disabled_services"],
            serde_json::json!(["haproxy", "keepalived"]),
            "{r}"
        );
        assert!(r.get("site_file").is_none(), "{r}");
        assert_eq!(r["site_changed"], true, "no site yet: {r}");
    }
    assert_eq!(units(), fixed);
    assert_eq!(
        snapshot(&web),
        files,
        "services_only touched the site's files"
    );
    let run = runner.run(&play(&site_task("again", &services)));
    run.assert_ok();
    let again = result(&run, "again", &web);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(again["actions"], serde_json::json!([]), "{again}");

    // A site run does the same, after its configuration passed the check.
    break_by_hand();
    let site = format!("        name: units\n        trusted_proxies: [10.231.0.2]\n{unneeded}");
    let run = runner.run(&play(&site_task("site", &site)));
    run.assert_ok();
    let r = result(&run, "site", &web);
    assert_eq!(r["service"], "started", "{r}");
    assert_eq!(r["service_enabled"], true, "{r}");
    assert_eq!(r["stopped_services"], serde_json::json!(["haproxy"]), "{r}");
    assert_eq!(units(), fixed);
    assert_eq!(r["site_changed"], true, "{r}");
    let run = runner.run(&play(&site_task("site again", &site)));
    run.assert_ok();
    let r = result(&run, "site again", &web);
    assert_eq!(
        (&r["changed"], &r["site_changed"]),
        (&false.into(), &false.into()),
        "{r}"
    );
    for key in ["service_enabled", "stopped_services", "disabled_services"] {
        assert!(r.get(key).is_none(), "{key} in a converged run: {r}");
    }
    // The services alone are a change, but not one to the site (nothing
    // to drain a node for).
    break_by_hand();
    let run = runner.run(&play(&site_task("services by the site", &site)));
    run.assert_ok();
    let r = result(&run, "services by the site", &web);
    assert_eq!(
        (&r["changed"], &r["site_changed"]),
        (&true.into(), &false.into()),
        "{r}"
    );
    assert_eq!(r["service"], "started", "{r}");
    assert_eq!(units(), fixed);

    // services_only with the site's options tells whether the site is due a
    // change, and writes nothing either way.
    let files = snapshot(&web);
    for (proxy, due) in [("10.231.0.2", false), ("10.231.0.3", true)] {
        let task = format!("due {proxy}");
        let args = format!(
            "        name: units\n        services_only: true\n        trusted_proxies: [{proxy}]\n{unneeded}"
        );
        let run = runner.run(&play(&site_task(&task, &args)));
        run.assert_ok();
        let r = result(&run, &task, &web);
        assert_eq!(
            (&r["changed"], &r["site_changed"]),
            (&false.into(), &due.into()),
            "{r}"
        );
    }
    assert_eq!(
        snapshot(&web),
        files,
        "services_only wrote the site's files"
    );

    // Bad names: refused before anything is touched, in either mode.
    let files = snapshot(&web);
    for (i, (bad, want)) in [
        (
            "--now",
            "unneeded_services[0] entry \"--now\" is not a unit name",
        ),
        (
            "haproxy;reboot",
            "unneeded_services[0] must not contain ';'",
        ),
        ("apache2", "unneeded_services lists apache2"),
    ]
    .into_iter()
    .enumerate()
    {
        for only in [true, false] {
            let task = format!("bad{i}{only}");
            let args = format!(
                "        name: units\n        services_only: {only}\n        unneeded_services: ['{bad}']\n"
            );
            let run = runner.run(&play(&format!(
                "{}      ignore_errors: true\n",
                site_task(&task, &args)
            )));
            let r = result(&run, &task, &web);
            let msg = r["msg"].as_str().unwrap_or_default();
            assert!(msg.starts_with(want), "{bad}: {r}");
        }
    }
    assert_eq!(units(), fixed);
    assert_eq!(snapshot(&web), files);
}
