//! `vrrp-probe`: the bounded HTTP probe (or HTTPS probe, or DNS query loop)
//! as a command, printing its report as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

/// Sends one GET (a new TLS connection each for https://, verified against
/// --ca for --server-name; for dns://IP/NAME, one A query for NAME) every INTERVAL to
/// an IP routed through the project's bridge, or loopback, until DURATION passes
/// or STOP_FILE appears; prints a JSON report.
///
/// With --rate (http:// only) the requests leave on a fixed schedule whether or
/// not earlier ones answered (open loop, one connection and thread each), every
/// --post-every'th of them a POST; the report adds per-method counts, the errors
/// by kind, the runs of failures and each failed request's time.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// http://<ip>[:port][/path], https://<ip>[:port][/path] or dns://<ip>/<name>
    url: String,
    /// https: the CA certificate(s) to trust (PEM).
    #[arg(long)]
    ca: Option<PathBuf>,
    /// https: the name the certificate must carry (SNI and verification).
    #[arg(long)]
    server_name: Option<String>,
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Upper bound on the run (capped at 900 s).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
    /// Open loop at this many requests per second (overrides --interval-ms).
    #[arg(long)]
    rate: Option<f64>,
    /// With --rate: every Nth request is a POST with a small form body (0: none).
    #[arg(long, default_value_t = 0)]
    post_every: u32,
    /// Stop early once this file exists.
    #[arg(long)]
    stop_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let interval = Duration::from_millis(args.interval_ms);
    let timeout = Duration::from_millis(args.timeout_ms);
    let max = Duration::from_secs_f64(args.duration_s.max(0.0));
    let report = if let Some(rest) = args.url.strip_prefix("dns://") {
        let (server, name) = rest
            .split_once('/')
            .ok_or_else(|| anyhow::anyhow!("dns://<ip>/<name>, got {}", args.url))?;
        let probe = testbed::dns::DnsProbe::new(server.parse()?, &testbed::bridge(), name)?
            .interval(interval)
            .timeout(timeout)
            .max_duration(max);
        let running = probe.clone().start();
        report_when_done(args.stop_file.as_deref(), probe.max_duration, || {
            running.stop()
        })?
    } else if let Some(rest) = args.url.strip_prefix("https://") {
        let (hostport, path) = rest
            .split_once('/')
            .map_or((rest, "/".to_string()), |(h, p)| (h, format!("/{p}")));
        let (ip, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h.parse()?, p.parse()?),
            None => (hostport.parse()?, 443),
        };
        let ca = args
            .ca
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("https needs --ca"))?;
        let name = args
            .server_name
            .clone()
            .unwrap_or_else(|| hostport.to_string());
        let probe = testbed::https::HttpsProbe::new(ip, port, &name, ca)?
            .path(&path)
            .interval(interval)
            .timeout(timeout)
            .max_duration(max);
        let running = probe.clone().start();
        report_when_done(args.stop_file.as_deref(), probe.max_duration, || {
            running.stop()
        })?
    } else if let Some(rate) = args.rate {
        if !(0.1..=200.0).contains(&rate) {
            anyhow::bail!("--rate must be 0.1..200 requests per second, got {rate}");
        }
        let probe = testbed::Probe::new(&args.url)?
            .interval(Duration::from_secs_f64(1.0 / rate))
            .timeout(timeout)
            .max_duration(max);
        let max = probe.max_duration;
        let running = probe.open_loop(args.post_every).start();
        report_when_done(args.stop_file.as_deref(), max, || running.stop())?
    } else {
        if args.post_every > 0 {
            anyhow::bail!("--post-every needs --rate");
        }
        let probe = testbed::Probe::new(&args.url)?
            .interval(interval)
            .timeout(timeout)
            .max_duration(max);
        let running = probe.clone().start();
        report_when_done(args.stop_file.as_deref(), probe.max_duration, || {
            running.stop()
        })?
    };
    println!("{report}");
    Ok(())
}

/// Waits until `stop_file` exists or `max` passes, then stops the running
/// probe and gives its report as JSON.
fn report_when_done<R: serde::Serialize>(
    stop_file: Option<&Path>,
    max: Duration,
    stop: impl FnOnce() -> R,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + max;
    while stop_file.is_none_or(|f| !f.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(serde_json::to_string(&stop())?)
}
