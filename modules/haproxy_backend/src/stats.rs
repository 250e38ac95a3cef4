//! The stats page's password: generated once on the load balancer, kept in a
//! root-only file, never returned.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use ansible_module::Fail;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LENGTH: usize = 24;

/// 24 characters from the kernel's random source (about 142 bits).
pub fn generate() -> Result<String, Fail> {
    let mut out = String::with_capacity(LENGTH);
    let mut urandom = fs::File::open("/dev/urandom")
        .map_err(|e| Fail::new(format!("opening /dev/urandom: {e}")))?;
    let mut buf = [0u8; 64];
    while out.len() < LENGTH {
        urandom
            .read_exact(&mut buf)
            .map_err(|e| Fail::new(format!("reading /dev/urandom: {e}")))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - 256 % ALPHABET.len();
        for b in buf.iter().map(|b| usize::from(*b)).filter(|b| *b < limit) {
            if out.len() < LENGTH {
                out.push(char::from(ALPHABET[b % ALPHABET.len()]));
            }
        }
    }
    Ok(out)
}

/// The password in `path`, made (mode 0600) if the file is missing or empty;
/// returns it and whether anything changed.
pub fn password(path: &str, check_mode: bool) -> Result<(String, bool), Fail> {
    let file = Path::new(path);
    if let Ok(text) = fs::read_to_string(file) {
        let text = text.trim().to_string();
        if !text.is_empty() {
            if text
                .chars()
                .any(|c| c.is_whitespace() || c == '#' || c == '"')
            {
                return Err(Fail::new(format!(
                    "the password in {path} contains blanks, quotes or '#', which haproxy.cfg cannot hold"
                )));
            }
            let mode = fs::metadata(file)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0);
            let fix = mode != 0o600;
            if fix && !check_mode {
                fs::set_permissions(file, fs::Permissions::from_mode(0o600))
                    .map_err(|e| Fail::new(format!("chmod 0600 {path}: {e}")))?;
            }
            return Ok((text, fix));
        }
    }
    let secret = generate()?;
    if !check_mode {
        if let Some(dir) = file.parent() {
            fs::create_dir_all(dir)
                .map_err(|e| Fail::new(format!("creating {}: {e}", dir.display())))?;
        }
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(file)
            .map_err(|e| Fail::new(format!("writing {path}: {e}")))?;
        fs::set_permissions(file, fs::Permissions::from_mode(0o600))
            .and_then(|()| f.write_all(format!("{secret}\n").as_bytes()))
            .and_then(|()| f.sync_all())
            .map_err(|e| Fail::new(format!("writing {path}: {e}")))?;
    }
    Ok((secret, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reused_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/stats.password");
        let path = path.to_str().expect("utf-8");
        let (a, changed) = password(path, false).expect("make");
        assert!(changed && a.len() == LENGTH && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            fs::metadata(path).expect("meta").permissions().mode() & 0o777,
            0o600
        );
        let (b, changed) = password(path, false).expect("reuse");
        assert_eq!((b, changed), (a.clone(), false));
        assert_ne!(generate().expect("gen"), a);
    }

    #[test]
    fn check_mode_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p");
        let (_, changed) = password(path.to_str().expect("utf-8"), true).expect("check");
        assert!(changed && !path.exists());
    }
}
