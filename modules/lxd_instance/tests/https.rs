//! `lxd_instance` over LXD's HTTPS listener on 127.0.0.1 with a client
//! certificate and the server certificate pinned; wrong pins, missing pins,
//! untrusted certificates and trust tokens fail or succeed as documented.
//!
//! The test turns the listener on only when it is off (and off again at the
//! end), and removes every trust entry it adds.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use testbed::container::lxc;

const PORT: &str = "8443";

fn lxc_text(args: &[&str]) -> String {
    let out = lxc(args);
    assert!(
        out.status.success(),
        "lxc {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Serialises the suites that change LXD's listener (a directory lock; a
/// lock left by a dead process is taken over).
struct ListenerLock(PathBuf);

impl ListenerLock {
    fn take() -> ListenerLock {
        let dir = PathBuf::from("/tmp/vrrp-lxd-https-listener.lock");
        let start = Instant::now();
        loop {
            if std::fs::create_dir(&dir).is_ok() {
                let _ = std::fs::write(dir.join("pid"), std::process::id().to_string());
                return ListenerLock(dir);
            }
            let owner_alive = std::fs::read_to_string(dir.join("pid"))
                .ok()
                .and_then(|p| p.trim().parse::<u32>().ok())
                .is_some_and(|pid| Path::new(&format!("/proc/{pid}")).exists());
            if !owner_alive && start.elapsed() > Duration::from_secs(2) {
                let _ = std::fs::remove_dir_all(&dir);
                continue;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "{} held for 5 minutes",
                dir.display()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for ListenerLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// LXD's HTTPS listener on loopback: the existing one, or one set here and
/// unset when dropped.
struct Listener {
    url: String,
    set_here: bool,
}

impl Listener {
    fn open() -> Listener {
        let current = lxc_text(&["config", "get", "core.https_address"]);
        if current.is_empty() {
            lxc_text(&[
                "config",
                "set",
                "core.https_address",
                &format!("127.0.0.1:{PORT}"),
            ]);
            let l = Listener {
                url: format!("https://127.0.0.1:{PORT}"),
                set_here: true,
            };
            let start = Instant::now();
            while std::net::TcpStream::connect(format!("127.0.0.1:{PORT}")).is_err() {
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "LXD did not listen on {PORT}"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            return l;
        }
        // Already listening: reach it over loopback.
        let port = current
            .rsplit(':')
            .next()
            .filter(|p| p.parse::<u16>().is_ok())
            .unwrap_or(PORT);
        Listener {
            url: format!("https://127.0.0.1:{port}"),
            set_here: false,
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if self.set_here {
            let _ = lxc(&["config", "unset", "core.https_address"]);
        }
    }
}

/// A client certificate made for the test; its trust entry (if any) is
/// removed when dropped.
struct ClientCert {
    cert: PathBuf,
    key: PathBuf,
    fingerprint: String,
}

impl ClientCert {
    fn new(dir: &Path, name: &str) -> ClientCert {
        let cert = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
            ])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .args(["-subj", &format!("/CN={name}")])
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fingerprint = lxd_api::fingerprint_of_pem_file(&cert).expect("fingerprint");
        ClientCert {
            cert,
            key,
            fingerprint,
        }
    }

    fn trust(&self) {
        lxc_text(&["config", "trust", "add", &self.cert.to_string_lossy()]);
    }

    fn trusted(&self) -> bool {
        lxc(&["query", &format!("/1.0/certificates/{}", self.fingerprint)])
            .status
            .success()
    }
}

impl Drop for ClientCert {
    fn drop(&mut self) {
        if self.trusted() {
            let _ = lxc(&["config", "trust", "remove", &self.fingerprint]);
        }
    }
}

fn conn(url: &str, c: &ClientCert, pin: Value) -> Value {
    let mut v = json!({
        "url": url,
        "client_cert": c.cert.to_string_lossy(),
        "client_key": c.key.to_string_lossy(),
    });
    for (k, x) in pin.as_object().cloned().unwrap_or_default() {
        v[k] = x;
    }
    v
}

#[test]
fn https_lifecycle_with_client_cert_and_pinned_server() {
    let _lock = ListenerLock::take();
    let listener = Listener::open();
    let dir = tempfile::tempdir().expect("tempdir");

    let server: Value = serde_json::from_str(&lxc_text(&["query", "/1.0"])).expect("GET /1.0");
    let server_pem = server["environment"]["certificate"]
        .as_str()
        .expect("server certificate");
    let server_fp = server["environment"]["certificate_fingerprint"]
        .as_str()
        .expect("fingerprint")
        .to_string();
    let server_cert = dir.path().join("server.crt");
    std::fs::write(&server_cert, server_pem).expect("write server.crt");
    let pin_file = json!({"server_cert": server_cert.to_string_lossy()});
    let pin_fp = json!({"server_cert_fingerprint": server_fp});

    let client = ClientCert::new(dir.path(), "t-lxd-https-client");
    client.trust();

    let (name, _cleanup) = instance("t-lxd-https");
    let c = |pin: &Value, extra: Value| {
        with(
            with(base_args(&name), conn(&listener.url, &client, pin.clone())),
            extra,
        )
    };
    let create = c(
        &pin_file,
        json!({"wait_for_ipv4_addresses": true, "timeout": 90}),
    );

    let run = play(vec![
        task("create", create.clone(), json!({})),
        task(
            "again (fingerprint pin)",
            with(create.clone(), pin_fp.clone()),
            json!({}),
        ),
        task(
            "stop (check)",
            c(&pin_file, json!({"state": "stopped"})),
            json!({"check_mode": true}),
        ),
        task(
            "config",
            with(
                create.clone(),
                json!({"config": {"limits.memory": "192MiB"}}),
            ),
            json!({"diff": true}),
        ),
        task(
            "config again",
            with(
                create.clone(),
                json!({"config": {"limits.memory": "192MiB"}}),
            ),
            json!({}),
        ),
    ]);
    run.assert_ok();
    let r = result(&run, "create");
    assert_eq!(r["actions"], json!(["create", "start"]), "{r}");
    let lxc_ip = testbed::container::instance_ipv4(&name).expect("lxc shows an IPv4");
    assert_eq!(r["addresses"]["eth0"], json!([lxc_ip.to_string()]));
    assert_eq!(
        result(&run, "again (fingerprint pin)")["changed"],
        json!(false)
    );
    assert_eq!(result(&run, "stop (check)")["changed"], json!(true));
    assert_eq!(status(&name).as_deref(), Some("Running"));
    let r = result(&run, "config");
    assert_eq!(r["changed"], json!(true));
    assert!(
        r["diff"]["after"]
            .as_str()
            .is_some_and(|a| a.contains("limits.memory: 192MiB")),
        "{r}"
    );
    assert_eq!(result(&run, "config again")["changed"], json!(false));

    // Failures: a wrong pin, no pin, an untrusted certificate.
    let stranger = ClientCert::new(dir.path(), "t-lxd-https-stranger");
    let wrong_pin = json!({"server_cert_fingerprint": client.fingerprint});
    let run = play(vec![
        task(
            "wrong pin",
            c(&wrong_pin, json!({})),
            json!({"ignore_errors": true}),
        ),
        task(
            "wrong pin file",
            c(
                &json!({"server_cert": client.cert.to_string_lossy()}),
                json!({}),
            ),
            json!({"ignore_errors": true}),
        ),
        task(
            "no pin",
            c(&json!({}), json!({})),
            json!({"ignore_errors": true}),
        ),
        task(
            "untrusted",
            with(
                with(
                    base_args(&name),
                    conn(&listener.url, &stranger, pin_file.clone()),
                ),
                json!({}),
            ),
            json!({"ignore_errors": true}),
        ),
    ]);
    assert_failed_with(
        &result(&run, "wrong pin"),
        &[
            &listener.url,
            "does not match the pinned fingerprint",
            &server_fp,
        ],
    );
    assert_failed_with(
        &result(&run, "wrong pin file"),
        &[
            "does not match the pinned certificate",
            "t-lxd-https-client.crt",
        ],
    );
    assert_failed_with(
        &result(&run, "no pin"),
        &[&listener.url, "pin it with server_cert"],
    );
    assert_failed_with(
        &result(&run, "untrusted"),
        &[
            "does not trust this client certificate",
            "t-lxd-https-stranger.crt",
            "lxc config trust add",
        ],
    );
    assert!(!stranger.trusted());

    // A wrong trust password is refused and says so.
    let run = play(vec![task(
        "wrong trust password",
        with(
            json!({"name": name}),
            conn(
                &listener.url,
                &stranger,
                json!({"server_cert_fingerprint": server_fp, "trust_password": "t-lxd-wrong"}),
            ),
        ),
        json!({"ignore_errors": true}),
    )]);
    assert_failed_with(
        &result(&run, "wrong trust password"),
        &["does not trust this client", "trust_password failed"],
    );
    assert!(
        !run.stdout.contains("t-lxd-wrong"),
        "the password shows in the output"
    );
    assert!(!stranger.trusted());

    // A trust token lets a new certificate in (and is masked in the output).
    let token_out = lxc_text(&["config", "trust", "add", "--name", "t-lxd-https-token"]);
    let token = token_out
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let newcomer = ClientCert::new(dir.path(), "t-lxd-https-newcomer");
    let run = play(vec![task(
        "token",
        with(
            json!({"name": name}),
            conn(
                &listener.url,
                &newcomer,
                json!({"server_cert_fingerprint": server_fp, "trust_token": token}),
            ),
        ),
        json!({}),
    )]);
    run.assert_ok();
    let r = result(&run, "token");
    assert_eq!(r["changed"], json!(false), "{r}");
    assert!(newcomer.trusted(), "the token did not add the certificate");
    assert!(
        !run.stdout.contains(&token),
        "the token shows in the output"
    );

    // absent over HTTPS, twice.
    let run = play(vec![
        task(
            "absent",
            c(&pin_file, json!({"state": "absent"})),
            json!({}),
        ),
        task(
            "absent again",
            c(&pin_fp, json!({"state": "absent"})),
            json!({}),
        ),
    ]);
    run.assert_ok();
    assert_eq!(result(&run, "absent")["actions"], json!(["stop", "delete"]));
    assert_eq!(result(&run, "absent again")["changed"], json!(false));
    assert!(lxd_instance(&name).is_none());
    drop(listener);
}
