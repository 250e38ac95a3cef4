//! `vrrp-probe`: the bounded HTTP probe as a command, printing its report as JSON.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use clap::Parser;

/// Sends one GET every INTERVAL to URL (an IP routed through the project's bridge,
/// or loopback) until DURATION passes or STOP_FILE appears; prints a JSON report.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// http://<ip>[:port][/path]
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
    let probe = testbed::Probe::new(&args.url)?
        .interval(Duration::from_millis(args.interval_ms))
        .timeout(Duration::from_millis(args.timeout_ms))
        .max_duration(Duration::from_secs_f64(args.duration_s.max(0.0)));
    let report = match args.stop_file {
        None => probe.run_until(&AtomicBool::new(false)),
        Some(stop_file) => {
            let running = probe.clone().start();
            let deadline = Instant::now() + probe.max_duration;
            while !stop_file.exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            running.stop()
        }
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
