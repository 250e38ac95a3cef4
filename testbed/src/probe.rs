//! A bounded HTTP probe: one GET every `interval` until stopped or `max_duration`
//! passes, counting answers, failures and the longest outage. It only targets
//! loopback or addresses the kernel routes through the project's bridge: where the
//! bridge is down, the default route would carry the traffic off the machine.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// Hard ceiling on any probe run, whatever the caller asks.
pub const MAX_DURATION: Duration = Duration::from_secs(900);

#[derive(Debug, Clone)]
pub struct Probe {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_duration: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub requests: u64,
    /// 2xx answers.
    pub ok: u64,
    /// Everything else: refused, timed out, or a non-2xx status.
    pub failed: u64,
    /// Requests that got no HTTP answer at all.
    pub no_answer: u64,
    /// From the first failed request of a run of failures to the next success.
    pub longest_outage_ms: f64,
    pub duration_ms: f64,
    /// First line of each 2xx body (our pages name their host) -> count.
    pub backends: BTreeMap<String, u64>,
    /// HTTP status -> count.
    pub statuses: BTreeMap<u16, u64>,
}

/// Checks that `ip` is loopback or routed via `bridge`, using the kernel's answer.
pub fn check_route(ip: IpAddr, bridge: &str) -> Result<()> {
    if ip.is_loopback() {
        return Ok(());
    }
    let out = Command::new("ip")
        .args(["route", "get", &ip.to_string()])
        .output()
        .context("running `ip route get`")?;
    let route = String::from_utf8_lossy(&out.stdout);
    if out.status.success()
        && route
            .split_whitespace()
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w == ["dev", bridge])
    {
        return Ok(());
    }
    bail!(
        "refusing to probe {ip}: the kernel does not route it through {bridge} ({})",
        route.trim()
    )
}

impl Probe {
    /// `url` is `http://<ip>[:port][/path]`; an address outside the bridge is refused.
    pub fn new(url: &str) -> Result<Probe> {
        Self::via(url, &crate::bridge())
    }

    /// As [`Probe::new`], for an address routed through `bridge` (the two-host
    /// test bed's LAN, say).
    pub fn via(url: &str, bridge: &str) -> Result<Probe> {
        let rest = url
            .strip_prefix("http://")
            .with_context(|| format!("only http:// URLs are probed: {url}"))?;
        let (hostport, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .with_context(|| format!("bad port in {url}"))?,
            ),
            None => (hostport, 80),
        };
        let ip: IpAddr = host
            .parse()
            .with_context(|| format!("the probe takes an IP address, not {host:?}"))?;
        check_route(ip, bridge)?;
        Ok(Probe {
            addr: SocketAddr::new(ip, port),
            host: host.to_string(),
            path,
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(500),
            max_duration: Duration::from_secs(120),
        })
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(5));
        self
    }

    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d.min(MAX_DURATION);
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// One request: the status and the first line of the body, or why it failed.
    pub fn request_once(&self) -> Result<(u16, String)> {
        let (status, body) = self.fetch(&[])?;
        let first = body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .take(100)
            .collect();
        Ok((status, first))
    }

    /// One request with extra header lines (`Authorization: Basic ...`): the
    /// status and the whole body (up to 64 KiB).
    pub fn fetch(&self, headers: &[&str]) -> Result<(u16, String)> {
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)?;
        stream.set_read_timeout(Some(self.timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        // One segment: written piecemeal, Nagle and the peer's delayed ACK hold
        // every request back ~40 ms, and the probe would not keep its interval.
        stream.set_nodelay(true)?;
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let request = format!(
            "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: vrrp-probe\r\n{extra}\r\n",
            self.path, self.host
        );
        stream.write_all(request.as_bytes())?;
        let mut buf = Vec::with_capacity(1024);
        stream.take(64 * 1024).read_to_end(&mut buf)?;
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!(
                    "no HTTP status in {:?}",
                    text.chars().take(80).collect::<String>()
                )
            })?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        Ok((status, body.to_string()))
    }

    /// Probes until `stop` is set or `max_duration` passes.
    pub fn run_until(&self, stop: &AtomicBool) -> Report {
        let mut report = Report::default();
        let mut outage = Outage::default();
        let elapsed = paced(self.interval, self.max_duration, stop, |sent| {
            report.requests += 1;
            let ok = match self.request_once() {
                Ok((status, first_line)) => {
                    *report.statuses.entry(status).or_default() += 1;
                    let ok = (200..300).contains(&status);
                    if ok {
                        *report.backends.entry(first_line).or_default() += 1;
                    }
                    ok
                }
                Err(_) => {
                    report.no_answer += 1;
                    false
                }
            };
            if ok {
                report.ok += 1;
            } else {
                report.failed += 1;
            }
            outage.record(sent, ok);
        });
        report.longest_outage_ms = outage.longest_ms();
        report.duration_ms = ms(elapsed);
        report
    }

    pub fn run_for(mut self, d: Duration) -> Report {
        self.max_duration = d.min(MAX_DURATION);
        self.run_until(&AtomicBool::new(false))
    }

    /// Probes in short rounds (0.6 s) until `done` holds for one round;
    /// fails the test with the last round when `timeout` passes first.
    pub fn settle(&self, what: &str, timeout: Duration, done: impl Fn(&Report) -> bool) -> Report {
        let start = std::time::Instant::now();
        loop {
            let report = self.clone().run_for(Duration::from_millis(600));
            if done(&report) {
                eprintln!(
                    "{what}: settled after {:.1} s",
                    start.elapsed().as_secs_f64()
                );
                return report;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: not settled within {timeout:?}; last round {report:?}"
            );
        }
    }

    /// Starts probing in the background.
    pub fn start(self) -> Running {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || self.run_until(&flag));
        Running { stop, handle }
    }
}

/// Calls `once` every `interval` (with the time it was due to start) until
/// `stop` is set or `max_duration` passes; returns how long that took. A call
/// that overruns its slot (a slow timeout) moves the schedule on from now: no
/// burst of catch-up calls.
pub(crate) fn paced(
    interval: Duration,
    max_duration: Duration,
    stop: &AtomicBool,
    mut once: impl FnMut(Instant),
) -> Duration {
    let start = Instant::now();
    let mut tick = 0u32;
    while !stop.load(Ordering::Relaxed) && start.elapsed() < max_duration.min(MAX_DURATION) {
        once(Instant::now());
        tick += 1;
        let next = start + interval * tick;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            tick = (now.duration_since(start).as_nanos() / interval.as_nanos().max(1)) as u32 + 1;
        }
    }
    start.elapsed()
}

/// The longest run of failures, from the first failed attempt to the next
/// success (or to the end).
#[derive(Debug, Default)]
pub(crate) struct Outage {
    since: Option<Instant>,
    longest: Duration,
}

impl Outage {
    pub(crate) fn record(&mut self, sent: Instant, ok: bool) {
        if ok {
            if let Some(since) = self.since.take() {
                self.longest = self.longest.max(sent - since);
            }
        } else {
            self.since.get_or_insert(sent);
        }
    }

    pub(crate) fn longest_ms(&self) -> f64 {
        let open = self.since.map(|s| s.elapsed()).unwrap_or_default();
        ms(self.longest.max(open))
    }
}

pub(crate) fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0 * 10.0).round() / 10.0
}

/// A probe running in a thread.
pub struct Running {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Report>,
}

impl Running {
    pub fn stop(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_addresses_off_the_bridge() {
        let err = Probe::new("http://192.0.2.1/").expect_err("must refuse");
        assert!(err.to_string().contains("refusing to probe"), "{err}");
    }

    #[test]
    fn refuses_names() {
        assert!(Probe::new("http://example.com/").is_err());
    }

    #[test]
    fn counts_failures_against_a_closed_loopback_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let report = Probe::new(&format!("http://127.0.0.1:{port}/"))
            .expect("loopback")
            .run_for(Duration::from_millis(100));
        assert!(
            report.requests >= 3 && report.ok == 0 && report.failed == report.requests,
            "{report:?}"
        );
    }

    #[test]
    fn reads_status_and_backend_from_a_loopback_server() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for mut s in listener.incoming().flatten().take(3) {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 7\r\n\r\nweb-01\n");
            }
        });
        let probe = Probe::new(&format!("http://127.0.0.1:{port}/")).expect("loopback");
        let (status, backend) = probe.request_once().expect("answer");
        assert_eq!((status, backend.as_str()), (200, "web-01"));
    }
}
