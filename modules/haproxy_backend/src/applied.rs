//! Whether the running HAProxy has loaded the config file as it is now.
//!
//! A worker has the file when it started after the file was last written, or
//! when this module brought it to exactly this text (by a reload, or through
//! the runtime API and then wrote the file): it records the worker's pid, a
//! fingerprint of the text and the time beside the admin socket; a worker
//! started later (another reload) while the file was not written since has the
//! same text. Without this, a reload that did not take effect (a port held by
//! another service) would go unnoticed on the next run, which finds the file
//! already as it should be.
//!
//! The certificate files the text names (`crt` on a `bind` line) are part of
//! what a worker loaded: the fingerprint covers their content, and a file
//! written after the worker started makes it out of date, so a certificate
//! replaced on disk (rotated by another task, or by this module) takes a
//! reload even when haproxy.cfg did not change.
//!
//! The record lives in HAProxy's runtime directory, which the haproxy group
//! can write: it is written like a config file (a temp file renamed over
//! it, root-only, never through a link) and read without following one.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ansible_module::config_file::{read_nofollow, resolve_target};
use ansible_module::ConfigFile;

use crate::config;
use crate::runtime::Info;

pub fn state_path(admin_socket: &str) -> PathBuf {
    PathBuf::from(format!("{admin_socket}.applied"))
}

/// FNV-1a, 64 bits: stable across builds, enough to tell two texts apart.
pub fn fingerprint(text: &str) -> String {
    fingerprint_bytes(text.as_bytes())
}

pub fn fingerprint_bytes(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a worker loads from `text`: the text, and the content of the
/// certificate files it names (as they are now). Without certificates, the
/// text's fingerprint alone.
pub fn loaded_fingerprint(text: &str) -> String {
    let crts = config::crt_paths(text);
    if crts.is_empty() {
        return fingerprint(text);
    }
    let mut all = text.to_string();
    for path in crts {
        let content = ConfigFile::new(&path)
            .read_current()
            .ok()
            .flatten()
            .map_or_else(|| "-".to_string(), |b| fingerprint_bytes(&b));
        all.push_str(&format!("\0crt {path} {content}"));
    }
    fingerprint(&all)
}

fn modified(path: &str) -> Option<SystemTime> {
    resolve_target(Path::new(path))
        .ok()
        .and_then(|t| std::fs::symlink_metadata(t).ok())
        .and_then(|m| m.modified().ok())
}

pub fn in_sync(config_path: &str, text: &str, worker: Info, state: &Path) -> bool {
    let started = SystemTime::now().checked_sub(Duration::from_secs(worker.uptime_sec));
    // The last write of the file or of a certificate it loads.
    let written = std::iter::once(config_path.to_string())
        .chain(config::crt_paths(text))
        .filter_map(|p| modified(&p))
        .max();
    // `Uptime_sec` is whole seconds: keep a second of margin.
    if let (Some(started), Some(written)) = (started, written) {
        if written + Duration::from_secs(1) < started {
            return true;
        }
    }
    let Ok(Some(record)) = read_nofollow(state) else {
        return false;
    };
    let record = String::from_utf8_lossy(&record);
    let fields: Vec<&str> = record.split_whitespace().collect();
    let [pid, fp, at] = fields[..] else {
        return false;
    };
    if fp != loaded_fingerprint(text) {
        return false;
    }
    // The worker this module brought to the text, or a later one (another
    // reload) while the file was not written since: it read the same text.
    let recorded = at
        .parse::<u64>()
        .ok()
        .map(|ns| SystemTime::UNIX_EPOCH + Duration::from_nanos(ns));
    pid == worker.pid.to_string() || matches!((written, recorded), (Some(w), Some(r)) if w <= r)
}

/// Notes that worker `pid` runs `text`; a failure only costs a reload later.
pub fn record(state: &Path, pid: u32, text: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let _ = ConfigFile::new(state).private(0o600).write(
        &format!("{pid} {} {now}\n", loaded_fingerprint(text)),
        false,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(pid: u32, uptime_sec: u64) -> Info {
        Info { pid, uptime_sec }
    }

    #[test]
    fn recorded_worker_and_text_are_in_sync() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, "a\n").expect("write");
        let cfg = path.to_str().expect("utf-8");
        let state = dir.path().join("admin.sock.applied");
        assert!(
            !in_sync(cfg, "a\n", worker(7, 0), &state),
            "written after the worker started"
        );
        record(&state, 7, "a\n");
        assert!(in_sync(cfg, "a\n", worker(7, 0), &state));
        assert!(!in_sync(cfg, "b\n", worker(7, 0), &state));
        // Another reload of the same, unwritten file: the new worker has it.
        assert!(in_sync(cfg, "a\n", worker(8, 0), &state));
        // Written again after the record, and another worker: not known.
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&path, "a\n").expect("rewrite");
        assert!(!in_sync(cfg, "a\n", worker(8, 0), &state));
        assert!(
            in_sync(cfg, "a\n", worker(7, 0), &state),
            "the recorded worker still has it"
        );
    }

    #[test]
    fn the_record_is_never_written_or_read_through_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("run");
        std::fs::create_dir(&run).expect("mkdir");
        // Like /run/haproxy: writable by others (the haproxy group).
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep\n").expect("write");
        let state = run.join("admin.sock.applied");
        std::os::unix::fs::symlink(&victim, &state).expect("link");
        record(&state, 7, "a\n");
        assert_eq!(std::fs::read_to_string(&victim).expect("read"), "keep\n");
        std::fs::remove_file(&state).expect("rm");
        record(&state, 7, "a\n");
        let meta = std::fs::symlink_metadata(&state).expect("meta");
        assert!(meta.is_file() && meta.permissions().mode() & 0o777 == 0o600);
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, "a\n").expect("write");
        let cfg = path.to_str().expect("utf-8");
        assert!(in_sync(cfg, "a\n", worker(7, 0), &state));
        // A record replaced by a link is not read.
        std::fs::remove_file(&state).expect("rm");
        std::os::unix::fs::symlink(&victim, &state).expect("link");
        std::fs::write(&victim, format!("7 {} 0\n", fingerprint("a\n"))).expect("write");
        assert!(!in_sync(cfg, "a\n", worker(7, 0), &state));
    }

    #[test]
    fn a_certificate_changed_on_disk_is_not_loaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let crt = dir.path().join("tls.pem");
        std::fs::write(&crt, "one\n").expect("write");
        let text = format!("frontend f\n    bind *:443 ssl crt {}\n", crt.display());
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, &text).expect("write");
        let cfg = path.to_str().expect("utf-8");
        let state = dir.path().join("admin.sock.applied");
        let before = loaded_fingerprint(&text);
        assert_ne!(before, fingerprint(&text));
        assert_eq!(fingerprint("plain\n"), loaded_fingerprint("plain\n"));
        record(&state, 7, &text);
        assert!(in_sync(cfg, &text, worker(7, 0), &state));
        // Rotated: same path, new content.
        std::fs::write(&crt, "two\n").expect("rotate");
        assert_ne!(loaded_fingerprint(&text), before);
        assert!(!in_sync(cfg, &text, worker(7, 0), &state));
        assert!(!in_sync(cfg, &text, worker(8, 0), &state));
        record(&state, 8, &text);
        assert!(in_sync(cfg, &text, worker(8, 0), &state));
        // A worker that started long after both files were written has them.
        for f in [&crt, &path] {
            std::fs::File::options()
                .write(true)
                .open(f)
                .expect("open")
                .set_modified(SystemTime::now() - Duration::from_secs(60))
                .expect("mtime");
        }
        std::fs::remove_file(&state).expect("rm");
        assert!(in_sync(cfg, &text, worker(9, 10), &state));
        // ... but not when the certificate is newer than the worker.
        std::fs::write(&crt, "three\n").expect("rotate");
        assert!(!in_sync(cfg, &text, worker(9, 10), &state));
    }

    #[test]
    fn a_worker_started_after_the_write_has_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, "a\n").expect("write");
        let file = std::fs::File::options()
            .write(true)
            .open(&path)
            .expect("open");
        file.set_modified(SystemTime::now() - Duration::from_secs(60))
            .expect("mtime");
        let cfg = path.to_str().expect("utf-8");
        let state = dir.path().join("none");
        assert!(in_sync(cfg, "anything", worker(9, 10), &state));
        assert!(!in_sync(cfg, "anything", worker(9, 3600), &state));
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
