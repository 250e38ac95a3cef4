//! Secrets the module keeps on the load balancer: the stats page's password
//! and the dynamic-cookie key. Each is generated once (or seeded), kept in a
//! root-only file (0600 from its first byte), read back without following a
//! link another user controls, and never returned.

use ansible_module::config_file::ConfigError;
use ansible_module::{syntax, ConfigFile, Fail};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LENGTH: usize = 24;

/// Fills `buf` from the kernel's random source (`getrandom(2)`, the pool
/// /dev/urandom reads): the one place the module draws randomness.
fn random_bytes(buf: &mut [u8]) -> Result<(), Fail> {
    getrandom::fill(buf).map_err(|e| Fail::new(format!("reading the kernel's random source: {e}")))
}

/// 24 characters from the kernel's random source (about 142 bits).
pub fn generate() -> Result<String, Fail> {
    let mut out = String::with_capacity(LENGTH);
    let mut buf = [0u8; 64];
    while out.len() < LENGTH {
        random_bytes(&mut buf)?;
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

/// A secret goes into haproxy.cfg (and the key into a runtime command) as
/// one word: the same check as every option, with the value kept out of
/// the message.
pub fn check(what: &str, value: &str) -> Result<(), Fail> {
    syntax::haproxy_word(what, value)
        .map(|_| ())
        .map_err(|e| Fail::new(e.msg.replace(&format!("{value:?}"), "********")))
}

fn fail(e: ConfigError) -> Fail {
    Fail::new(e.to_string())
}

/// The secret in `path`, if the file is there and holds one.
pub fn read(path: &str) -> Result<Option<String>, Fail> {
    let bytes = ConfigFile::new(path).read_current().map_err(fail)?;
    Ok(bytes
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty()))
}

/// A secret kept in a file: what the file holds, or what it will hold.
#[derive(Debug, Clone)]
pub struct Kept {
    path: String,
    /// The file's bytes, when it holds a secret already.
    bytes: Option<Vec<u8>>,
    pub value: String,
}

/// The secret in `path`, checked; when the file is missing or empty, the
/// one it will hold: `seed` if given (a key haproxy.cfg already has), else
/// random. Nothing is written: see [`Kept::save`].
pub fn load(path: &str, what: &str, seed: Option<&str>) -> Result<Kept, Fail> {
    let label = format!("the {what} in {path}");
    if let Some(bytes) = ConfigFile::new(path).read_current().map_err(fail)? {
        let value = String::from_utf8_lossy(&bytes).trim().to_string();
        if !value.is_empty() {
            check(&label, &value)?;
            return Ok(Kept {
                path: path.to_string(),
                bytes: Some(bytes),
                value,
            });
        }
    }
    let value = match seed {
        Some(s) => s.to_string(),
        None => generate()?,
    };
    check(&label, &value)?;
    Ok(Kept {
        path: path.to_string(),
        bytes: None,
        value,
    })
}

/// The secret `path` must hold when the task gives it (`stats.password`):
/// the file's bytes are kept when they hold it already, else it is
/// written anew. A link at `path` is refused, whoever owns it: the value
/// is written to the file named, never to one a link points at.
pub fn given(path: &str, what: &str, value: &str) -> Result<Kept, Fail> {
    check(what, value)?;
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Fail::new(format!(
            "refusing to write {path}: it is a symbolic link; {what} is written to a file of its own"
        )));
    }
    let bytes = ConfigFile::new(path)
        .read_current()
        .map_err(fail)?
        .filter(|b| String::from_utf8_lossy(b).trim() == value);
    Ok(Kept {
        path: path.to_string(),
        bytes,
        value: value.to_string(),
    })
}

impl Kept {
    /// Writes a new secret, root-only (0600) from its first byte, or makes
    /// an existing file root-only if it is not (its bytes kept). Returns
    /// whether anything changed; in check mode nothing is written.
    pub fn save(&self, check_mode: bool) -> Result<bool, Fail> {
        let file = ConfigFile::new(&self.path).private(0o600);
        let out = match &self.bytes {
            Some(bytes) => file.write_bytes(bytes, check_mode),
            None => file.write(&format!("{}\n", self.value), check_mode),
        };
        Ok(out.map_err(fail)?.changed)
    }
}

/// [`load`], then [`Kept::save`].
#[cfg(test)]
pub fn load_or_make(
    path: &str,
    what: &str,
    seed: Option<&str>,
    check_mode: bool,
) -> Result<(String, bool), Fail> {
    let kept = load(path, what, seed)?;
    let changed = kept.save(check_mode)?;
    Ok((kept.value, changed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &str) -> u32 {
        fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn generated_once_then_reused_root_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/stats.password");
        let path = path.to_str().expect("utf-8");
        let (a, changed) = load_or_make(path, "password", None, false).expect("make");
        assert!(changed && a.len() == LENGTH && a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(mode(path), 0o600);
        let (b, changed) = load_or_make(path, "password", None, false).expect("reuse");
        assert_eq!((b, changed), (a.clone(), false));
        assert_ne!(generate().expect("gen"), a);
        // A readable copy is made root-only, its bytes kept.
        fs::write(path, "given\n").expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let (c, changed) = load_or_make(path, "password", None, false).expect("fix");
        assert_eq!((c.as_str(), changed, mode(path)), ("given", true, 0o600));
        assert_eq!(read(path).expect("read").as_deref(), Some("given"));
    }

    #[test]
    fn a_given_secret_replaces_the_file_and_is_kept_after() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.password");
        let path = path.to_str().expect("utf-8");
        let save = |v: &str, check: bool| {
            given(path, "stats.password", v)
                .and_then(|k| k.save(check))
                .expect("save")
        };
        assert!(save("first", true), "check mode reports the write");
        assert!(read(path).expect("read").is_none(), "and writes nothing");
        assert!(save("first", false));
        assert_eq!(
            (fs::read_to_string(path).expect("read"), mode(path)),
            ("first\n".into(), 0o600)
        );
        assert!(!save("first", false), "the same value is no change");
        // Whatever spacing a hand-written file has, its bytes are kept.
        fs::write(path, "first  \n\n").expect("write");
        assert!(!save("first", false));
        assert!(save("second", false));
        assert_eq!(fs::read_to_string(path).expect("read"), "second\n");
        let e = given(path, "stats.password", "bad;one").expect_err("refused");
        assert!(!e.msg.contains("bad;one"), "{}", e.msg);
        // A link is refused even when root owns it and its directory.
        let link = dir.path().join("link.password");
        std::os::unix::fs::symlink(path, &link).expect("link");
        let e = given(link.to_str().expect("utf-8"), "stats.password", "x").expect_err("link");
        assert!(e.msg.contains("symbolic link"), "{}", e.msg);
        assert_eq!(fs::read_to_string(path).expect("read"), "second\n");
    }

    #[test]
    fn a_seed_is_kept_and_check_mode_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cookie.key");
        let path = path.to_str().expect("utf-8");
        let (_, changed) = load_or_make(path, "key", None, true).expect("check");
        assert!(changed && read(path).expect("read").is_none());
        let (k, changed) = load_or_make(path, "key", Some("fromcfg"), false).expect("seed");
        assert_eq!((k.as_str(), changed), ("fromcfg", true));
        assert_eq!(fs::read_to_string(path).expect("read"), "fromcfg\n");
    }

    #[test]
    fn a_secret_haproxy_cannot_hold_is_refused_without_showing_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.password");
        fs::write(&path, "pass word;x\n").expect("write");
        let path = path.to_str().expect("utf-8");
        let e = load_or_make(path, "stats password", None, false).expect_err("refused");
        assert!(
            e.msg.starts_with(&format!(
                "the stats password in {path} must not contain a space"
            )),
            "{}",
            e.msg
        );
        assert!(!e.msg.contains("pass word"), "{}", e.msg);
        assert_eq!(fs::read_to_string(path).expect("read"), "pass word;x\n");
    }

    #[test]
    fn a_link_another_user_controls_is_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("shadow");
        fs::write(&target, "root:hash\n").expect("write");
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        let link = open.join("stats.password");
        std::os::unix::fs::symlink(&target, &link).expect("link");
        let link = link.to_str().expect("utf-8");
        assert!(read(link).is_err());
        assert!(load_or_make(link, "password", None, false).is_err());
        assert_eq!(fs::read_to_string(&target).expect("read"), "root:hash\n");
    }
}
