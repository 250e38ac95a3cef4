//! Running commands and driving systemd units from a module. Every command is
//! bounded: a job stuck behind others fails the task instead of hanging it.

use std::io::Read;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::module::Fail;

/// How long `run` lets a command take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A time limit given in whole seconds (an option such as `timeout`): at
/// least one.
pub fn seconds_option(option: &str, value: i64) -> Result<Duration, Fail> {
    match u64::try_from(value) {
        Ok(secs) if secs >= 1 => Ok(Duration::from_secs(secs)),
        _ => Err(Fail::new(format!(
            "{option} must be at least 1 second, got {value}"
        ))),
    }
}

/// Runs a program; a non-zero exit is a `Fail` with `rc`, `stdout`, `stderr`.
pub fn run(program: &str, args: &[&str]) -> Result<String, Fail> {
    run_bounded(program, args, DEFAULT_TIMEOUT)
}

/// What a finished command left: its exit code (`None` when a signal ended
/// it) and what it printed.
#[derive(Debug, Clone)]
pub struct Output {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs a program to its end, killing it if it outlives `limit`; only a
/// program that could not start or ran too long is an error.
pub fn run_output(program: &str, args: &[&str], limit: Duration) -> Result<Output, Fail> {
    let line = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Fail::new(format!("could not run {program}: {e}")))?;
    // Drained in threads, so a chatty program never blocks on a full pipe.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let start = Instant::now();
    // Most commands here end within a few milliseconds: look soon, then less
    // and less often.
    let mut pause = Duration::from_millis(1);
    let status = loop {
        if let Some(status) = child
            .try_wait()
            .map_err(|e| Fail::new(format!("`{line}`: {e}")))?
        {
            break status;
        }
        if start.elapsed() >= limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Fail::new(format!(
                "`{}` did not finish within {}s",
                line.trim_end(),
                limit.as_secs()
            )));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(20));
    };
    Ok(Output {
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// As `run`, killing the program if it outlives `limit`.
pub fn run_bounded(program: &str, args: &[&str], limit: Duration) -> Result<String, Fail> {
    let out = run_output(program, args, limit)?;
    if out.success() {
        return Ok(out.stdout);
    }
    let line = format!("{program} {}", args.join(" "));
    let rc = out.code.unwrap_or(-1);
    Err(
        Fail::new(format!("`{line}` failed (rc={rc}): {}", out.stderr.trim()))
            .with("rc", rc)
            .with("stdout", out.stdout)
            .with("stderr", out.stderr),
    )
}

/// Reads a child's pipe to the end on its own thread.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

pub fn is_active(unit: &str) -> bool {
    run_bounded(
        "systemctl",
        &["is-active", "--quiet", unit],
        Duration::from_secs(30),
    )
    .is_ok()
}

/// Reloads a running unit (never restarts it) or starts a stopped one; returns
/// what it did.
pub fn reload_or_start(unit: &str) -> Result<&'static str, Fail> {
    if is_active(unit) {
        run("systemctl", &["reload", unit])?;
        Ok("reloaded")
    } else {
        run("systemctl", &["start", unit])?;
        Ok("started")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_options_are_at_least_one() {
        assert_eq!(
            seconds_option("timeout", 1).ok(),
            Some(Duration::from_secs(1))
        );
        for bad in [0, -5] {
            let msg = seconds_option("timeout", bad).err().map(|f| f.msg);
            assert_eq!(
                msg.as_deref(),
                Some(format!("timeout must be at least 1 second, got {bad}").as_str())
            );
        }
    }

    #[test]
    fn commands_are_bounded() {
        assert!(run_bounded("true", &[], Duration::from_secs(5)).is_ok());
        let slow = run_bounded("sleep", &["5"], Duration::from_millis(200)).unwrap_err();
        assert_eq!(slow.msg, "`sleep 5` did not finish within 0s");
        let failed =
            run_bounded("sh", &["-c", "echo no >&2; exit 3"], Duration::from_secs(5)).unwrap_err();
        assert_eq!(failed.msg, "`sh -c echo no >&2; exit 3` failed (rc=3): no");
        assert_eq!(failed.extra["rc"], 3);
    }

    #[test]
    fn large_output_does_not_block() {
        let out = run_bounded(
            "sh",
            &["-c", "head -c 300000 /dev/zero | tr '\\0' x"],
            Duration::from_secs(10),
        )
        .expect("runs");
        assert_eq!(out.len(), 300_000);
    }
}
