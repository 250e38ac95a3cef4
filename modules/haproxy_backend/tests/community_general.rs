//! Tasks written for `community.general.haproxy`, run against this module
//! with only the module's name changed (and its socket path, which is this
//! module's own), on real HAProxy and Apache in LXD containers.
//!
//! The tasks are that module's documented EXAMPLES, read from the installed
//! collection with `ansible-doc`, run one at a time in their order; after
//! each the test reads the runtime (`show servers state`, `show stat`) and
//! the file. The server they name is `{{ inventory_hostname }}`: the load
//! balancer's own inventory name is the server's name here, in backend
//! `www` (which the examples name) and in a second backend `api` (which the
//! examples without a backend reach too).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use haproxy_backend::runtime::{parse_servers_state, RtServer};
use serde_json::{json, Value};
use testbed::ansible::{Run, Runner};
use testbed::Container;

const MODULE: &str = "community.general.haproxy";
const OURS: &str = "ansible.legacy.haproxy_backend";
const THEIR_SOCKET: &str = "/var/run/haproxy.sock";
const OUR_SOCKET: &str = "/run/haproxy/admin.sock";
const CONFIG: &str = "/etc/haproxy/haproxy.cfg";

/// community.general.haproxy's documentation, from the installed collection.
fn their_doc() -> Value {
    let out = Command::new(testbed::venv_bin("ansible-doc"))
        .args(["--json", MODULE])
        .env("PATH", testbed::ansible::path_with_venv())
        .output()
        .expect("ansible-doc (run `make up`)");
    let all: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "ansible-doc {MODULE}: {e}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    all[MODULE].clone()
}

/// Its EXAMPLES, each task with the module's name (and the socket) ours.
fn examples(doc: &Value) -> Vec<Value> {
    let text = doc["examples"].as_str().expect("EXAMPLES");
    let tasks: Vec<Value> = serde_yaml_ng::from_str(text).expect("EXAMPLES are YAML");
    assert!(tasks.len() >= 10, "{} examples", tasks.len());
    tasks
        .into_iter()
        .map(|mut task| {
            let obj = task.as_object_mut().expect("a task");
            let mut args = obj.remove(MODULE).expect("a task of the module");
            if args["socket"] == json!(THEIR_SOCKET) {
                args["socket"] = json!(OUR_SOCKET);
            }
            obj.insert(OURS.into(), args);
            task
        })
        .collect()
}

/// Every option community.general.haproxy documents is an option or an
/// alias here, with the same type (or one that takes its values), and its
/// state choices are ours.
#[test]
fn every_option_of_community_general_haproxy_is_accepted() {
    let doc = their_doc();
    let spec: Value = serde_json::from_str(haproxy_backend::params::SPEC).expect("spec");
    let ours = spec["argument_spec"].as_object().expect("argument_spec");
    let theirs = doc["doc"]["options"].as_object().expect("options");
    for (name, opt) in theirs {
        let (_, mine) = ours
            .iter()
            .find(|(n, o)| {
                *n == name
                    || o["aliases"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == name))
            })
            .unwrap_or_else(|| panic!("{name} is no option or alias here"));
        let (t, m) = (opt["type"].as_str(), mine["type"].as_str());
        assert!(
            t == m || m == Some("raw") || (t == Some("str") && m == Some("path")),
            "{name}: theirs {t:?}, ours {m:?}"
        );
    }
    for choice in doc["doc"]["options"]["state"]["choices"]
        .as_array()
        .expect("state choices")
    {
        assert!(
            ours["state"]["choices"]
                .as_array()
                .is_some_and(|c| c.contains(choice)),
            "state {choice}"
        );
    }
}

struct Bed {
    lb: Container,
    web: Container,
}

/// The server as HAProxy runs it: `show servers state` and its `show stat`
/// line (`status` as community.general.haproxy reads it, and sessions).
#[derive(Debug)]
struct Seen {
    rt: RtServer,
    status: String,
    scur: u64,
}

impl Bed {
    fn up() -> Bed {
        let mut all = Container::launch_booted(&["t-cg-lb", "t-cg-web"]);
        let web = all.pop().expect("web");
        let lb = all.pop().expect("lb");
        web.sh("hostname > /var/www/html/index.html && head -c 50000000 /dev/zero > /var/www/html/big.bin");
        lb.sh("systemctl disable --now apache2 >/dev/null 2>&1; systemctl is-active haproxy");
        Bed { lb, web }
    }

    fn playbook(tasks: &[Value]) -> String {
        let play = json!([{"hosts": "targets", "gather_facts": false, "tasks": tasks}]);
        serde_yaml_ng::to_string(&play).expect("YAML")
    }

    fn run(&self, task: &Value) -> (Run, Value) {
        let run =
            Runner::for_containers(&[&self.lb]).run(&Self::playbook(std::slice::from_ref(task)));
        let result = run
            .results()
            .into_iter()
            .rev()
            .find(|(_, h, _)| *h == self.lb.name)
            .map(|(_, _, r)| r)
            .unwrap_or_else(|| panic!("no result:\n{}\n{}", run.stdout, run.stderr));
        (run, result)
    }

    fn ok(&self, task: &Value) -> Value {
        let (run, result) = self.run(task);
        run.assert_ok();
        result
    }

    fn ours(&self, args: Value) -> Value {
        self.ok(&json!({"name": "ours", OURS: args}))
    }

    fn cli(&self, command: &str) -> String {
        self.lb.sh(&format!(
            "python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(\"{OUR_SOCKET}\"); s.sendall(sys.argv[1].encode()+b\"\\n\"); print(s.makefile().read())' '{command}'"
        ))
    }

    /// The server named after the load balancer, in `backend`.
    fn seen(&self, backend: &str) -> Seen {
        let name = &self.lb.name;
        let rt = parse_servers_state(&self.cli(&format!("show servers state {backend}")))
            .expect("backend running")
            .into_iter()
            .find(|r| r.name == *name)
            .unwrap_or_else(|| panic!("no server {name} in {backend}"));
        let stat = self.cli("show stat");
        let mut lines = stat.lines();
        let header: Vec<&str> = lines
            .next()
            .unwrap_or_default()
            .trim_start_matches("# ")
            .split(',')
            .collect();
        let col = |n: &str| header.iter().position(|h| *h == n).expect(n);
        let (status, scur) = lines
            .map(|l| l.split(',').collect::<Vec<_>>())
            .find(|c| c.first() == Some(&backend) && c.get(1) == Some(&name.as_str()))
            .map(|c| {
                (
                    c[col("status")].to_string(),
                    c[col("scur")].parse().unwrap_or(0),
                )
            })
            .expect("stat line");
        Seen { rt, status, scur }
    }

    fn config(&self) -> String {
        self.lb.read_file(CONFIG)
    }

    /// The server line of `backend` in the file.
    fn line(&self, backend: &str) -> String {
        let cfg = self.config();
        let section = cfg
            .split(&format!("\nbackend {backend}\n"))
            .nth(1)
            .expect("backend in the file");
        section
            .lines()
            .find(|l| {
                l.trim_start()
                    .starts_with(&format!("server {} ", self.lb.name))
            })
            .unwrap_or_else(|| panic!("no server line in backend {backend}:\n{cfg}"))
            .trim()
            .to_string()
    }

    /// Polls until the server is up in `backend`, for at most 30 s.
    fn until_up(&self, backend: &str) -> Seen {
        let start = Instant::now();
        loop {
            let s = self.seen(backend);
            if s.status.starts_with("UP") || start.elapsed() > Duration::from_secs(30) {
                return s;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

fn changed(v: &Value) -> bool {
    v["changed"].as_bool().unwrap_or(false)
}

fn warned(v: &Value, needle: &str) -> bool {
    v["warnings"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|w| w.as_str().unwrap_or_default().contains(needle))
}

/// `srv_admin_state` says maintenance (HAProxy's forced or inherited bits).
fn maint(s: &Seen) -> bool {
    s.rt.admin_flags & 0x23 != 0
}

/// A download that reads slowly, so its session stays open until it is
/// shut down; once `drain` is set it reads at full speed, because the LB's
/// close reaches the client only after the data the kernel and HAProxy had
/// already buffered for it (megabytes, more than 10 s at the slow pace).
/// Returns the bytes read and whether the LB closed it.
fn slow_download(ip: IpAddr, drain: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, bool)> {
    testbed::probe::check_route(ip, &testbed::bridge()).expect("LB routed via the bridge");
    std::thread::spawn(move || {
        let mut s = TcpStream::connect_timeout(&SocketAddr::new(ip, 80), Duration::from_secs(2))
            .expect("connect to the LB");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        write!(s, "GET /big.bin HTTP/1.0\r\nHost: lb\r\n\r\n").expect("send");
        let mut buf = vec![0u8; 4096];
        let mut received = 0;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(120) {
            match s.read(&mut buf) {
                Ok(0) => return (received, true),
                Ok(n) => received += n,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (received, true),
            }
            if !drain.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        (received, false)
    })
}

#[test]
fn community_general_examples_in_real_containers() {
    let doc = their_doc();
    let tasks = examples(&doc);
    let bed = Bed::up();
    let lb = bed.lb.name.clone();
    let web_ip = bed.web.ipv4;

    // The load balancer as this module sets it up: backend www with the one
    // server the examples name; then a second backend with it, added by
    // hand as another tool would, and HAProxy reloaded with the file.
    let setup = bed.ours(json!({
        "name": "www",
        "servers": [{"name": lb, "address": web_ip.to_string()}],
    }));
    assert!(changed(&setup), "{setup:#}");
    bed.lb.sh(&format!(
        "printf '\\nbackend api\\n    balance roundrobin\\n    default-server inter 2s rise 2 fall 3\\n    server {lb} {web_ip}:80 weight 100 check\\n' >> {CONFIG} \
         && sleep 2 && systemctl reload haproxy && sleep 1"
    ));
    for b in ["www", "api"] {
        let s = bed.until_up(b);
        assert!(s.status.starts_with("UP") && !maint(&s), "{b}: {s:?}");
    }

    // Each example, in order, with what it must leave behind. `changed`
    // as community.general.haproxy reports it (the runtime differs after).
    let check = |i: usize, want_changed: bool, f: &dyn Fn(&Value)| {
        let task = &tasks[i];
        eprintln!("example {}: {}", i + 1, task["name"]);
        let started = Instant::now();
        let r = bed.ok(task);
        assert_eq!(changed(&r), want_changed, "example {}: {r:#}", i + 1);
        f(&r);
        eprintln!(
            "  {:?}, www {:?}",
            started.elapsed(),
            bed.seen("www").status
        );
    };

    // 1. Disable in www: maintenance there, api untouched; the file says so.
    check(0, true, &|r| {
        assert_eq!(r["backends"], json!(["www"]));
        let (www, api) = (bed.seen("www"), bed.seen("api"));
        assert!(maint(&www) && www.status.starts_with("MAINT"), "{www:?}");
        assert!(!maint(&api) && api.status.starts_with("UP"), "{api:?}");
        assert!(
            bed.line("www").ends_with(" check disabled"),
            "{}",
            bed.line("www")
        );
        assert!(!bed.line("api").contains("disabled"));
    });
    // 2. No backend, health and agent: both backends in maintenance with
    //    their health checks off; there is no agent check, which it says.
    check(1, true, &|r| {
        assert_eq!(r["backends"], json!(["www", "api"]));
        assert!(warned(r, "has no agent check"), "{r:#}");
        for b in ["www", "api"] {
            let s = bed.seen(b);
            assert!(maint(&s), "{b}: {s:?}");
            assert_eq!(s.rt.health(), (true, false), "{b}: health check off: {s:?}");
        }
        assert!(bed.line("api").ends_with(" check disabled"));
    });
    // 3.-6. Already so: no backend, the socket given, wait, drain with
    //       wait_interval/wait_retries: nothing to do.
    for i in 2..6 {
        check(i, false, &|_| {
            for b in ["www", "api"] {
                assert!(maint(&bed.seen(b)), "{b}");
            }
        });
    }

    // 7. Disable and drop the sessions: the server back in rotation first
    //    (our own form of the task), a slow download through it, then the
    //    example ends that session.
    let back = bed.ours(
        json!({"backend": "www", "server": lb, "state": "enabled", "health": true, "wait": true}),
    );
    assert!(changed(&back), "{back:#}");
    let drain = Arc::new(AtomicBool::new(false));
    let download = slow_download(IpAddr::V4(bed.lb.ipv4), drain.clone());
    let start = Instant::now();
    while bed.seen("www").scur == 0 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(bed.seen("www").scur, 1, "the download's session");
    check(6, true, &|r| {
        let actions = r["actions"].to_string();
        assert!(
            actions.contains(&format!("set server www/{lb} state maint"))
                && actions.contains(&format!("shutdown sessions server www/{lb}")),
            "{r:#}"
        );
        let s = bed.seen("www");
        assert!(maint(&s) && s.scur == 0, "{s:?}");
    });
    drain.store(true, Ordering::Relaxed);
    let start = Instant::now();
    while !download.is_finished() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        download.is_finished(),
        "the session was not shut down within 10 s"
    );
    let (bytes, closed) = download.join().expect("download");
    assert!(
        closed && bytes < 50_000_000,
        "the session was not shut down: {bytes} bytes"
    );

    // 8. No backend, fail_on_not_found: found in both, already disabled.
    check(7, false, &|r| {
        assert_eq!(r["backends"], json!(["www", "api"]))
    });
    // ... and a host no backend has: an error with it, a warning without.
    let mut missing = tasks[7].clone();
    missing[OURS]["host"] = json!("t-cg-nobody");
    let (run, r) = bed.run(&missing);
    assert_ne!(run.rc, 0);
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("server t-cg-nobody is in no backend"),
        "{r:#}"
    );
    missing[OURS]["fail_on_not_found"] = json!(false);
    let r = bed.ok(&missing);
    assert!(!changed(&r) && warned(&r, "nothing done"), "{r:#}");

    // 9. Enable in www: ready again; api stays in maintenance.
    check(8, true, &|_| {
        assert!(!maint(&bed.seen("www")));
        assert!(maint(&bed.seen("api")));
        assert!(!bed.line("www").contains("disabled"), "{}", bed.line("www"));
    });
    // 10., 11. Enabled already; wait until up (checks every 200 ms; with
    //          wait_retries/wait_interval at most 45 s).
    check(9, false, &|_| {
        assert!(bed.seen("www").status.starts_with("UP"))
    });
    check(10, false, &|_| {
        assert!(bed.seen("www").status.starts_with("UP"))
    });
    // 12. A weight: at runtime and in the file.
    check(11, true, &|r| {
        assert_eq!(bed.seen("www").rt.weight, 10);
        assert_eq!(r["server_state"]["weight"], json!(10));
        assert!(
            bed.line("www").contains(" weight 10 "),
            "{}",
            bed.line("www")
        );
    });
    // 13. Drain.
    check(12, true, &|_| {
        let s = bed.seen("www");
        assert!(s.status.starts_with("DRAIN"), "{s:?}");
        assert!(
            bed.line("www").contains("# drain, weight 10"),
            "{}",
            bed.line("www")
        );
    });
    assert_eq!(tasks.len(), 13, "new examples upstream: look at them");

    // A weight in percent, as community.general.haproxy takes it: half of
    // the configured 10, kept in the file, and a second run changes nothing.
    let mut half = tasks[11].clone();
    half[OURS]["weight"] = json!("50%");
    let r = bed.ok(&half);
    assert!(changed(&r), "{r:#}");
    assert_eq!(bed.seen("www").rt.weight, 5);
    assert!(
        bed.line("www")
            .ends_with("weight 5 check  # weight 50% of 10"),
        "{}",
        bed.line("www")
    );
    assert!(!changed(&bed.ok(&half)));
    // A reload keeps it: HAProxy reads the share from the file.
    bed.lb.sh("systemctl reload haproxy && sleep 1");
    assert_eq!(bed.seen("www").rt.weight, 5);
    assert!(!changed(&bed.ok(&half)));
}
