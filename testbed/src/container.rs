//! Containers for tests, launched from the project's image on its bridge.

use std::net::Ipv4Addr;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::{image, keep, profile, unique_name};

/// What to launch; the default is the base image with the project's profile.
#[derive(Debug, Clone)]
pub struct LaunchOpts {
    pub image: String,
    pub profiles: Vec<String>,
    pub config: Vec<(String, String)>,
    /// Wait for a DHCP IPv4 on eth0 (off for instances without a NIC).
    pub wait_ipv4: bool,
    pub timeout: Duration,
}

impl Default for LaunchOpts {
    fn default() -> Self {
        LaunchOpts {
            image: image(),
            profiles: vec![profile()],
            config: vec![],
            wait_ipv4: true,
            timeout: Duration::from_secs(90),
        }
    }
}

/// A running test container, deleted when dropped (unless `KEEP=1`).
#[derive(Debug)]
pub struct Container {
    pub name: String,
    pub ipv4: Ipv4Addr,
}

/// Runs `lxc` and returns its output; panics if it cannot be started at all.
/// With `VRRP_BACKEND=incus` it runs `incus` (the same commands and flags),
/// bounded by [`crate::INCUS_CLI_TIMEOUT`].
pub fn lxc(args: &[&str]) -> Output {
    if crate::backend_is_incus() {
        return Command::new("timeout")
            .arg(crate::INCUS_CLI_TIMEOUT.as_secs().to_string())
            .arg("incus")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run incus (run scripts/setup-incus.sh): {e}"));
    }
    Command::new("lxc")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run lxc (is LXD installed? run `make up`): {e}"))
}

fn lxc_ok(args: &[&str]) -> String {
    let out = lxc(args);
    assert!(
        out.status.success(),
        "lxc {} failed: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The global IPv4 of `eth0` as LXD reports it.
pub fn instance_ipv4(name: &str) -> Option<Ipv4Addr> {
    let out = lxc(&["query", &format!("/1.0/instances/{name}/state")]);
    let state: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    state["network"]["eth0"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["family"] == "inet" && a["scope"] == "global")
        .and_then(|a| a["address"].as_str())
        .and_then(|s| s.parse().ok())
}

impl Container {
    pub fn launch(prefix: &str) -> Container {
        Self::launch_with(prefix, LaunchOpts::default())
    }

    /// One container per prefix, launched side by side (most of the wait is
    /// boot time), in the order given, each booted. Every launch is joined
    /// before any is judged, so the ones that worked are deleted when another
    /// failed; a launch that failed is tried once more.
    pub fn launch_booted(prefixes: &[&'static str]) -> Vec<Container> {
        let handles: Vec<_> = prefixes
            .iter()
            .map(|&prefix| std::thread::spawn(move || Container::launch(prefix)))
            .collect();
        let results: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        let mut all = vec![];
        for (result, &prefix) in results.into_iter().zip(prefixes) {
            all.push(result.unwrap_or_else(|_| Container::launch(prefix)));
        }
        for c in &all {
            c.wait_booted();
        }
        all
    }

    /// Launches and waits for the DHCP address; a launch that gets no address in
    /// time (it happens on a loaded host) is deleted and tried once more.
    pub fn launch_with(prefix: &str, opts: LaunchOpts) -> Container {
        for attempt in 1..=2 {
            let mut container = Self::launch_once(prefix, &opts);
            if !opts.wait_ipv4 {
                return container;
            }
            match container.try_wait_ipv4(opts.timeout) {
                Some(ip) => {
                    container.ipv4 = ip;
                    return container;
                }
                None if attempt == 1 => eprintln!(
                    "{} got no IPv4 within {:?}; launching another",
                    container.name, opts.timeout
                ),
                None => panic!(
                    "{} got no IPv4 on eth0 within {:?}",
                    container.name, opts.timeout
                ),
            }
        }
        unreachable!("the second attempt returns or panics")
    }

    fn launch_once(prefix: &str, opts: &LaunchOpts) -> Container {
        let name = unique_name(prefix);
        let mut args: Vec<String> = vec!["launch".into(), opts.image.clone(), name.clone()];
        if opts.profiles.is_empty() {
            args.push("--no-profiles".into());
        }
        for p in &opts.profiles {
            args.extend(["-p".into(), p.clone()]);
        }
        for (k, v) in &opts.config {
            args.extend(["-c".into(), format!("{k}={v}")]);
        }
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = lxc(&argv);
        if !out.status.success() {
            let _ = lxc(&["delete", "-f", &name]);
            panic!(
                "lxc launch {name} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Container {
            name,
            ipv4: Ipv4Addr::UNSPECIFIED,
        }
    }

    fn try_wait_ipv4(&self, timeout: Duration) -> Option<Ipv4Addr> {
        let start = Instant::now();
        loop {
            if let Some(ip) = instance_ipv4(&self.name) {
                return Some(ip);
            }
            if start.elapsed() >= timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for the DHCP address on eth0.
    pub fn wait_ipv4(&self, timeout: Duration) -> Ipv4Addr {
        self.try_wait_ipv4(timeout)
            .unwrap_or_else(|| panic!("{} got no IPv4 on eth0 within {timeout:?}", self.name))
    }

    /// Runs `sh -c cmd` inside the container.
    pub fn exec(&self, cmd: &str) -> Output {
        lxc(&["exec", &self.name, "--", "sh", "-c", cmd])
    }

    /// Runs `sh -c cmd` and returns stdout; panics with the output on failure.
    pub fn sh(&self, cmd: &str) -> String {
        let out = self.exec(cmd);
        assert!(
            out.status.success(),
            "`{cmd}` failed in {}: {}{}",
            self.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn write_file(&self, path: &str, content: &str) {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut tmp, content.as_bytes()).expect("write temp file");
        let dest = format!("{}{path}", self.name);
        lxc_ok(&[
            "file",
            "push",
            "--create-dirs",
            &tmp.path().to_string_lossy(),
            &dest,
        ]);
    }

    pub fn read_file(&self, path: &str) -> String {
        lxc_ok(&["file", "pull", &format!("{}{path}", self.name), "-"])
    }

    /// Waits (at most two minutes) until systemd finished booting.
    pub fn wait_booted(&self) {
        let _ = self.exec("timeout 120 systemctl is-system-running --wait >/dev/null 2>&1 || true");
    }

    pub fn stop_force(&self) {
        lxc_ok(&["stop", "-f", &self.name]);
    }

    pub fn start(&self) {
        lxc_ok(&["start", &self.name]);
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if keep() {
            eprintln!("KEEP=1: leaving container {}", self.name);
            return;
        }
        let _ = lxc(&["delete", "-f", &self.name]);
    }
}
