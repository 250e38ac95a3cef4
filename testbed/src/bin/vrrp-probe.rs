//! `vrrp-probe`: the bounded HTTP probe (or DNS query loop) as a command,
//! printing its report as JSON.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Parser;

/// Sends one GET (or, for dns://IP/NAME, one A query for NAME) every INTERVAL to
/// an IP routed through the project's bridge, or loopback, until DURATION passes
/// or STOP_FILE appears; prints a JSON report.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// http://<ip>[:port][/path] or dns://<ip>/<name>
    url: String,
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// Upper bound on the run (capped at 900 s).
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    #[arg(long, default_value_t = 500)]
    timeout_ms: u64,
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
        wait(args.stop_file.as_deref(), probe.max_duration);
        serde_json::to_string(&running.stop())?
    } else {
        let probe = testbed::Probe::new(&args.url)?
            .interval(interval)
            .timeout(timeout)
            .max_duration(max);
        let running = probe.clone().start();
        wait(args.stop_file.as_deref(), probe.max_duration);
        serde_json::to_string(&running.stop())?
    };
    println!("{report}");
    Ok(())
}

/// Until `stop_file` exists or `max` passes.
fn wait(stop_file: Option<&Path>, max: Duration) {
    let deadline = Instant::now() + max;
    while stop_file.is_none_or(|f| !f.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
}
