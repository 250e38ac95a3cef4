//! Whether the running HAProxy has loaded the config file as it is now.
//!
//! A worker has the file when it started after the file was last written, or
//! when this module brought it to exactly this text (by a reload, or through
//! the runtime API and then wrote the file): it records the worker's pid and a
//! fingerprint of the text beside the admin socket. Without this, a reload that
//! did not take effect (a port held by another service) would go unnoticed on
//! the next run, which finds the file already as it should be.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::runtime::Info;

pub fn state_path(admin_socket: &str) -> PathBuf {
    PathBuf::from(format!("{admin_socket}.applied"))
}

/// FNV-1a, 64 bits: stable across builds, enough to tell two texts apart.
pub fn fingerprint(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

pub fn in_sync(config_path: &str, text: &str, worker: Info, state: &Path) -> bool {
    let started = SystemTime::now().checked_sub(Duration::from_secs(worker.uptime_sec));
    let written = std::fs::metadata(config_path)
        .and_then(|m| m.modified())
        .ok();
    // `Uptime_sec` is whole seconds: keep a second of margin.
    if let (Some(started), Some(written)) = (started, written) {
        if written + Duration::from_secs(1) < started {
            return true;
        }
    }
    std::fs::read_to_string(state)
        .is_ok_and(|s| s.trim() == format!("{} {}", worker.pid, fingerprint(text)))
}

/// Notes that worker `pid` runs `text`; a failure only costs a reload later.
pub fn record(state: &Path, pid: u32, text: &str) {
    let _ = std::fs::write(state, format!("{pid} {}\n", fingerprint(text)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorded_worker_and_text_are_in_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, "a\n").expect("write");
        let cfg = cfg.to_str().expect("utf-8");
        let state = dir.path().join("admin.sock.applied");
        let fresh = Info {
            pid: 7,
            uptime_sec: 0,
        };
        assert!(
            !in_sync(cfg, "a\n", fresh, &state),
            "written after the worker started"
        );
        record(&state, 7, "a\n");
        assert!(in_sync(cfg, "a\n", fresh, &state));
        assert!(!in_sync(cfg, "b\n", fresh, &state));
        assert!(!in_sync(
            cfg,
            "a\n",
            Info {
                pid: 8,
                uptime_sec: 0
            },
            &state
        ));
        // A worker that started well after the file was written has it.
        let old = Info {
            pid: 9,
            uptime_sec: 0,
        };
        let file = std::fs::File::options()
            .write(true)
            .open(cfg)
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .expect("mtime");
        assert!(in_sync(cfg, "whatever", old, &state));
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
