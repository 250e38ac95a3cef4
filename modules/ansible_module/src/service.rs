//! Running commands and driving systemd units from a module.

use std::process::Command;

use crate::module::Fail;

/// Runs a program; a non-zero exit is a `Fail` with `rc`, `stdout`, `stderr`.
pub fn run(program: &str, args: &[&str]) -> Result<String, Fail> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Fail::new(format!("could not run {program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        return Ok(stdout);
    }
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rc = out.status.code().unwrap_or(-1);
    Err(Fail::new(format!(
        "`{program} {}` failed (rc={rc}): {}",
        args.join(" "),
        stderr.trim()
    ))
    .with("rc", rc)
    .with("stdout", stdout)
    .with("stderr", stderr))
}

pub fn is_active(unit: &str) -> bool {
    Command::new("systemctl")
        .args(["is-active", "--quiet", unit])
        .status()
        .is_ok_and(|s| s.success())
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
