//! A bounded HTTP probe: one GET every `interval` until stopped or `max_duration`
//! passes, counting answers, failures and the longest outage. It only targets
//! loopback or addresses the kernel routes through the project's bridge: where the
//! bridge is down, the default route would carry the traffic off the machine.
//!
//! [`Probe::open_loop`] turns it into a steady load: requests leave on schedule
//! whether or not earlier ones have answered (a slow or dead server cannot slow the
//! sender down and hide its own outage), every Nth of them a POST.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
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
    /// The same for the first run of failures (to the end when it never ended):
    /// when the VIP goes, that run is the VIP's gap, while later single
    /// failures (requests to a dead web node) would hide it in the longest.
    pub first_outage_ms: f64,
    pub duration_ms: f64,
    /// First line of each 2xx body (our pages name their host) -> count.
    pub backends: BTreeMap<String, u64>,
    /// HTTP status -> count.
    pub statuses: BTreeMap<u16, u64>,
}

impl Report {
    /// Counts one request: `answer` is its status and the first line of its
    /// body, or `None` when no HTTP answer came. Whether it succeeded (2xx).
    pub fn count(&mut self, answer: Option<(u16, String)>) -> bool {
        self.requests += 1;
        let ok = match answer {
            Some((status, first_line)) => {
                *self.statuses.entry(status).or_default() += 1;
                let ok = (200..300).contains(&status);
                if ok {
                    *self.backends.entry(first_line).or_default() += 1;
                }
                ok
            }
            None => {
                self.no_answer += 1;
                false
            }
        };
        if ok {
            self.ok += 1;
        } else {
            self.failed += 1;
        }
        ok
    }

    /// No failure, and every answer came from one of `names` (a backend's
    /// first line contains its name).
    pub fn serves_only(&self, names: &[String]) -> bool {
        self.failed == 0
            && !self.backends.is_empty()
            && self
                .backends
                .keys()
                .all(|b| names.iter().any(|n| b.contains(n.as_str())))
    }

    /// No failure, and each of `names` answered at least once.
    pub fn serves_all(&self, names: &[String]) -> bool {
        self.failed == 0
            && names
                .iter()
                .all(|n| self.backends.keys().any(|b| b.contains(n.as_str())))
    }

    /// Both: exactly `names` answered, and nothing failed.
    pub fn serves_exactly(&self, names: &[String]) -> bool {
        self.serves_only(names) && self.serves_all(names)
    }
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
            let ok = report.count(self.request_once().ok());
            outage.record(sent, ok);
        });
        report.longest_outage_ms = outage.longest_ms();
        report.first_outage_ms = outage.first_ms();
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
    first: Option<Duration>,
}

impl Outage {
    pub(crate) fn record(&mut self, sent: Instant, ok: bool) {
        if ok {
            if let Some(since) = self.since.take() {
                self.longest = self.longest.max(sent - since);
                self.first.get_or_insert(sent - since);
            }
        } else {
            self.since.get_or_insert(sent);
        }
    }

    pub(crate) fn longest_ms(&self) -> f64 {
        let open = self.since.map(|s| s.elapsed()).unwrap_or_default();
        ms(self.longest.max(open))
    }

    pub(crate) fn first_ms(&self) -> f64 {
        ms(self
            .first
            .or_else(|| self.since.map(|s| s.elapsed()))
            .unwrap_or_default())
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

// ---------------------------------------------------------------- open loop

/// A request the open-loop sender starts at most this far behind its schedule;
/// further behind (the sender itself starved of CPU), the slot is counted as
/// `late_skipped` instead of sending a burst that no real client would.
const MAX_LAG: Duration = Duration::from_secs(1);

/// Failed requests kept one by one in the report (the counts are always whole).
const MAX_FAILURES_LISTED: usize = 5000;

/// A steady load: requests on a fixed schedule, each on its own connection and
/// thread, whether or not earlier ones have answered.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    pub probe: Probe,
    /// Every Nth request is a POST with a small form body (0: GETs only).
    pub post_every: u32,
    /// Requests allowed in flight at once; a slot with that many still open is
    /// counted as failed (`in-flight limit`) rather than sent.
    pub max_in_flight: usize,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct MethodCounts {
    pub requests: u64,
    pub ok: u64,
    pub failed: u64,
}

/// One failed request: when it was due (ms from the start), its method and why.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub t_ms: f64,
    pub method: &'static str,
    pub error: String,
}

/// A run of failed requests in schedule order: from the first one's slot to the
/// slot of the next request that succeeded (or the end).
#[derive(Debug, Clone, Serialize)]
pub struct OutageRun {
    pub start_ms: f64,
    pub end_ms: f64,
    pub gets: u64,
    pub posts: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    /// What the closed-loop probe reports, over every request sent (its
    /// `longest_outage_ms` is the longest of `outages`); its fields read
    /// through.
    #[serde(flatten)]
    pub base: Report,
    /// `open-loop`.
    pub mode: &'static str,
    pub rate_per_s: f64,
    pub post_every: u32,
    pub timeout_ms: f64,
    /// Wall-clock time (seconds since the epoch) of the first slot, so the
    /// failures can be laid beside events logged elsewhere.
    pub started_unix: f64,
    pub get: MethodCounts,
    pub post: MethodCounts,
    /// Why requests failed (`refused`, `connect timeout`, `reset`, `http 503`,
    /// ...) -> count.
    pub errors: BTreeMap<String, u64>,
    /// Slots more than 1 s overdue when the sender got to them: not sent, not
    /// counted as requests. Non-zero means the client, not the target, was short
    /// of CPU.
    pub late_skipped: u64,
    /// Largest delay of a sent request behind its slot.
    pub max_send_lag_ms: f64,
    pub latency_p50_ms: f64,
    pub latency_p99_ms: f64,
    pub latency_max_ms: f64,
    pub outages: Vec<OutageRun>,
    /// The failed requests, the first 5000.
    pub failures: Vec<Failure>,
}

impl std::ops::Deref for LoadReport {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.base
    }
}

impl std::ops::DerefMut for LoadReport {
    fn deref_mut(&mut self) -> &mut Report {
        &mut self.base
    }
}

struct Done {
    seq: u64,
    due: Duration,
    post: bool,
    outcome: std::result::Result<(u16, String), String>,
    latency: Duration,
}

impl Probe {
    /// A steady load at one request per `interval` (see [`OpenLoop`]).
    pub fn open_loop(self, post_every: u32) -> OpenLoop {
        OpenLoop {
            probe: self,
            post_every,
            max_in_flight: 1024,
        }
    }

    /// One GET or POST, the whole exchange bounded by `timeout`: the status and
    /// the body's first line, or why it failed in a few words.
    fn exchange(&self, post: Option<&str>) -> std::result::Result<(u16, String), String> {
        let deadline = Instant::now() + self.timeout;
        let mut stream = TcpStream::connect_timeout(&self.addr, self.timeout)
            .map_err(|e| format!("connect {}", io_kind(&e)))?;
        stream.set_nodelay(true).map_err(|e| io_kind(&e))?;
        let request = match post {
            None => format!(
                "GET {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: vrrp-probe\r\n\r\n",
                self.path, self.host
            ),
            Some(body) => format!(
                "POST {} HTTP/1.0\r\nHost: {}\r\nUser-Agent: vrrp-probe\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                self.path,
                self.host,
                body.len()
            ),
        };
        let left = |now: Instant| {
            deadline
                .checked_duration_since(now)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| "read timeout".to_string())
        };
        stream
            .set_write_timeout(Some(left(Instant::now())?))
            .map_err(|e| io_kind(&e))?;
        // One segment, as `fetch`: a request split over several writes waits on
        // Nagle and the peer's delayed ACK.
        stream
            .write_all(request.as_bytes())
            .map_err(|e| format!("write {}", io_kind(&e)))?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            stream
                .set_read_timeout(Some(left(Instant::now())?))
                .map_err(|e| io_kind(&e))?;
            match stream.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    // As a browser or curl would: done once Content-Length bytes
                    // are in, whatever happens to the connection afterwards.
                    if buf.len() >= 64 * 1024 || complete(&buf) {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = io_kind(&e);
                    return Err(if kind == "timeout" {
                        "read timeout".into()
                    } else {
                        format!("read {kind}")
                    });
                }
            }
        }
        if buf.is_empty() {
            return Err("closed without answer".into());
        }
        let text = String::from_utf8_lossy(&buf);
        let status: u16 = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| "no HTTP status".to_string())?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
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
}

/// The response in `buf` has its headers and as many body bytes as its
/// Content-Length says.
fn complete(buf: &[u8]) -> bool {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&buf[..end]);
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .is_some_and(|len| buf.len() >= end + 4 + len)
}

fn io_kind(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "refused".into(),
        K::ConnectionReset => "reset".into(),
        K::ConnectionAborted => "aborted".into(),
        K::TimedOut | K::WouldBlock => "timeout".into(),
        K::BrokenPipe => "broken pipe".into(),
        _ => match e.raw_os_error() {
            Some(113) => "no route to host".into(),
            Some(101) => "network unreachable".into(),
            _ => format!("{:?}", e.kind()).to_lowercase(),
        },
    }
}

impl OpenLoop {
    /// Sends until `stop` is set or `max_duration` passes, then waits for the
    /// requests still in flight (each ends within the timeout).
    pub fn run_until(&self, stop: &AtomicBool) -> LoadReport {
        let p = &self.probe;
        let interval = p.interval.max(Duration::from_millis(1));
        let max = p.max_duration.min(MAX_DURATION);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Done>();
        let started_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let start = Instant::now();
        let mut report = LoadReport {
            mode: "open-loop",
            rate_per_s: 1.0 / interval.as_secs_f64(),
            post_every: self.post_every,
            timeout_ms: ms(p.timeout),
            started_unix,
            ..LoadReport::default()
        };
        let mut refused_locally: Vec<Done> = vec![];
        let mut seq: u64 = 0;
        let mut max_lag = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let due = interval * u32::try_from(seq).unwrap_or(u32::MAX);
            if due >= max {
                break;
            }
            let now = start.elapsed();
            if due > now {
                std::thread::sleep((due - now).min(Duration::from_millis(50)));
                continue;
            }
            let this = seq;
            seq += 1;
            let lag = now - due;
            if lag > MAX_LAG {
                report.late_skipped += 1;
                continue;
            }
            max_lag = max_lag.max(lag);
            let post = self.post_every > 0 && this.is_multiple_of(u64::from(self.post_every));
            if in_flight.load(Ordering::Relaxed) >= self.max_in_flight {
                refused_locally.push(Done {
                    seq: this,
                    due,
                    post,
                    outcome: Err("in-flight limit".into()),
                    latency: Duration::ZERO,
                });
                continue;
            }
            in_flight.fetch_add(1, Ordering::Relaxed);
            let (probe, tx, count) = (p.clone(), tx.clone(), in_flight.clone());
            let spawned = std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || {
                    let t0 = Instant::now();
                    let body = format!("probe=vrrp&seq={this}");
                    let outcome = probe.exchange(post.then_some(body.as_str()));
                    let _ = tx.send(Done {
                        seq: this,
                        due,
                        post,
                        outcome,
                        latency: t0.elapsed(),
                    });
                    count.fetch_sub(1, Ordering::Relaxed);
                });
            if let Err(e) = spawned {
                in_flight.fetch_sub(1, Ordering::Relaxed);
                refused_locally.push(Done {
                    seq: this,
                    due,
                    post,
                    outcome: Err(format!("spawn: {e}")),
                    latency: Duration::ZERO,
                });
            }
        }
        drop(tx);
        report.duration_ms = ms(start.elapsed());
        report.max_send_lag_ms = ms(max_lag);
        // Every sender ends within its timeout; the bound only guards against a
        // thread that never reports.
        let drain_until = Instant::now() + p.timeout + Duration::from_secs(5);
        let mut done = refused_locally;
        while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
            match rx.recv_timeout(left) {
                Ok(d) => done.push(d),
                Err(_) => break,
            }
        }
        summarise(&mut report, done);
        report
    }

    pub fn run_for(mut self, d: Duration) -> LoadReport {
        self.probe.max_duration = d.min(MAX_DURATION);
        self.run_until(&AtomicBool::new(false))
    }

    /// Starts the load in the background.
    pub fn start(self) -> RunningLoad {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || self.run_until(&flag));
        RunningLoad { stop, handle }
    }
}

fn summarise(report: &mut LoadReport, mut done: Vec<Done>) {
    done.sort_by_key(|d| d.seq);
    let mut latencies = vec![];
    let mut run: Option<OutageRun> = None;
    for d in &done {
        let ok = report.base.count(d.outcome.clone().ok());
        let error = match &d.outcome {
            Ok(_) if ok => None,
            Ok((status, _)) => Some(format!("http {status}")),
            Err(e) => Some(e.clone()),
        };
        let counts = if d.post {
            &mut report.post
        } else {
            &mut report.get
        };
        counts.requests += 1;
        match error {
            None => {
                counts.ok += 1;
                latencies.push(d.latency);
                if let Some(mut r) = run.take() {
                    r.end_ms = ms(d.due);
                    report.outages.push(r);
                }
            }
            Some(error) => {
                counts.failed += 1;
                let r = run.get_or_insert(OutageRun {
                    start_ms: ms(d.due),
                    end_ms: ms(d.due),
                    gets: 0,
                    posts: 0,
                });
                if d.post {
                    r.posts += 1;
                } else {
                    r.gets += 1;
                }
                *report.errors.entry(error.clone()).or_default() += 1;
                if report.failures.len() < MAX_FAILURES_LISTED {
                    report.failures.push(Failure {
                        t_ms: ms(d.due),
                        method: if d.post { "POST" } else { "GET" },
                        error,
                    });
                }
            }
        }
    }
    if let Some(mut r) = run.take() {
        r.end_ms = report.duration_ms.max(r.start_ms);
        report.outages.push(r);
    }
    report.base.longest_outage_ms = report
        .outages
        .iter()
        .map(|r| r.end_ms - r.start_ms)
        .fold(0.0, f64::max);
    latencies.sort();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
            .map_or(0.0, |d| ms(*d))
    };
    report.latency_p50_ms = pick(0.5);
    report.latency_p99_ms = pick(0.99);
    report.latency_max_ms = pick(1.0);
}

/// An open-loop load running in a thread.
pub struct RunningLoad {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<LoadReport>,
}

impl RunningLoad {
    pub fn stop(self) -> LoadReport {
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
    fn the_first_outage_is_kept_apart_from_a_longer_later_one() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut o = Outage::default();
        for (t, ok) in [(0, true), (20, false), (40, false), (60, true)] {
            o.record(at(t), ok);
        }
        for (t, ok) in [(80, false), (580, true)] {
            o.record(at(t), ok);
        }
        assert_eq!(o.first_ms(), 40.0);
        assert_eq!(o.longest_ms(), 500.0);
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

    /// A loopback server that answers after `delay`, the body naming the method.
    fn slow_server(delay: Duration) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 1024];
                    let n = s.read(&mut buf).unwrap_or(0);
                    std::thread::sleep(delay);
                    let method = if buf[..n].starts_with(b"POST") {
                        "post"
                    } else {
                        "get"
                    };
                    let _ = write!(s, "HTTP/1.0 200 OK\r\n\r\n{method}\n");
                });
            }
        });
        port
    }

    #[test]
    fn open_loop_keeps_its_rate_while_answers_are_slow() {
        // Answers take 5 intervals: a closed loop would send a fifth as many.
        let port = slow_server(Duration::from_millis(100));
        let report = Probe::new(&format!("http://127.0.0.1:{port}/"))
            .expect("loopback")
            .interval(Duration::from_millis(20))
            .timeout(Duration::from_millis(1000))
            .open_loop(5)
            .run_for(Duration::from_millis(500));
        assert_eq!(report.requests, 25, "{report:?}");
        assert_eq!((report.ok, report.failed), (25, 0), "{report:?}");
        assert_eq!((report.get.requests, report.post.requests), (20, 5));
        assert_eq!(report.backends.get("post"), Some(&5), "{report:?}");
        assert!(report.latency_p50_ms >= 100.0, "{report:?}");
    }

    #[test]
    fn open_loop_names_the_errors_and_the_outage() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        drop(listener);
        let report = Probe::new(&format!("http://127.0.0.1:{port}/"))
            .expect("loopback")
            .interval(Duration::from_millis(10))
            .open_loop(2)
            .run_for(Duration::from_millis(100));
        assert_eq!(report.requests, 10, "{report:?}");
        assert_eq!(
            report.errors.get("connect refused"),
            Some(&10),
            "{report:?}"
        );
        assert_eq!((report.get.failed, report.post.failed), (5, 5));
        assert_eq!(report.outages.len(), 1, "{report:?}");
        assert_eq!(report.failures.len(), 10);
    }

    #[test]
    fn a_response_is_complete_at_its_content_length() {
        assert!(complete(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"));
        assert!(!complete(
            b"HTTP/1.0 200 OK\r\ncontent-length: 4\r\n\r\nabc"
        ));
        assert!(!complete(b"HTTP/1.0 200 OK\r\n\r\nabc"));
        assert!(!complete(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n"));
    }

    #[test]
    fn open_loop_counts_a_timeout_as_failed() {
        let port = slow_server(Duration::from_millis(300));
        let report = Probe::new(&format!("http://127.0.0.1:{port}/"))
            .expect("loopback")
            .interval(Duration::from_millis(50))
            .timeout(Duration::from_millis(100))
            .open_loop(0)
            .run_for(Duration::from_millis(200));
        assert_eq!((report.requests, report.failed), (4, 4), "{report:?}");
        assert_eq!(report.errors.get("read timeout"), Some(&4), "{report:?}");
    }
}
