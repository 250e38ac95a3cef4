//! Writing a file in place of whatever is at its path, a symbolic link
//! included (Ansible's `copy` with `follow: false`): /etc/resolv.conf is often
//! a link into /run (systemd-resolved, resolvconf), and the file wanted is our
//! own, not what the link points at. The rename replaces the directory entry,
//! so nothing is ever written through the link; in a directory another user
//! can change, the entry could be swapped under us, so the write is refused.

use std::fs::{self, Metadata};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use ansible_module::config_file::read_nofollow;
use ansible_module::Diff;

/// The mode and owner the role's copy task gave the file.
const MODE: u32 = 0o644;

pub struct Outcome {
    pub changed: bool,
    pub diff: Diff,
}

/// Our effective uid: the owner of our own /proc entry.
fn euid() -> u32 {
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// Whether a user other than root and us can change the entries of the
/// directory `meta` describes (the rule ansible_module's config writes use).
fn others_can_write(meta: &Metadata, me: u32) -> bool {
    let foreign = meta.uid() != 0 && meta.uid() != me;
    foreign || (meta.mode() & 0o020 != 0 && meta.gid() != 0) || meta.mode() & 0o002 != 0
}

fn err(action: &str, path: &Path, e: impl std::fmt::Display) -> String {
    format!("{action} {}: {e}", path.display())
}

/// Puts `content` at `path` as a regular file, mode 0644 (owned by root when
/// we are root), replacing a link there. In check mode only reports.
pub fn write(path: &Path, content: &[u8], check_mode: bool) -> Result<Outcome, String> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let me = euid();
    let dir_meta = fs::metadata(dir).map_err(|e| err("reading", dir, e))?;
    if others_can_write(&dir_meta, me) {
        return Err(format!(
            "refusing to write {}: another user can change {} (mode {:o}, owner {}), so the file \
             there could be swapped for a link while it is written",
            path.display(),
            dir.display(),
            dir_meta.mode() & 0o7777,
            dir_meta.uid()
        ));
    }
    let header = path.display().to_string();
    let (before, header, current) = match fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (String::new(), header, None),
        Err(e) => return Err(err("reading", path, e)),
        Ok(m) if m.file_type().is_symlink() => {
            let to = fs::read_link(path).map_err(|e| err("reading the link", path, e))?;
            let header = format!("{header} (a symbolic link to {}, replaced)", to.display());
            (String::new(), header, None)
        }
        Ok(m) if m.is_file() => {
            let bytes = read_nofollow(path)
                .map_err(|e| e.to_string())?
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            (text, header, Some((bytes, m)))
        }
        Ok(_) => return Err(err("writing", path, "it is not a regular file")),
    };
    let diff = Diff {
        before,
        after: String::from_utf8_lossy(content).into_owned(),
        before_header: header,
        after_header: path.display().to_string(),
    };
    let settled = current.as_ref().is_some_and(|(bytes, m)| {
        bytes == content && m.mode() & 0o7777 == MODE && (me != 0 || (m.uid() == 0 && m.gid() == 0))
    });
    if settled || check_mode {
        return Ok(Outcome {
            changed: !settled,
            diff,
        });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| err("creating a temp file in", dir, e))?;
    tmp.write_all(content)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| err("writing", tmp.path(), e))?;
    if me == 0 {
        std::os::unix::fs::fchown(tmp.as_file(), Some(0), Some(0))
            .map_err(|e| err("setting the owner of", tmp.path(), e))?;
    }
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(MODE))
        .map_err(|e| err("setting the mode of", tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| err("renaming into", path, e.error))?;
    if let Ok(d) = fs::File::open(dir) {
        // Makes the rename durable; a failure here loses nothing written.
        let _ = d.sync_all();
    }
    Ok(Outcome {
        changed: true,
        diff,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn private_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        dir
    }

    #[test]
    fn writes_then_keeps() {
        let dir = private_dir();
        let path = dir.path().join("resolv.conf");
        assert!(write(&path, b"a\n", true).expect("check").changed);
        assert!(!path.exists());
        assert!(write(&path, b"a\n", false).expect("write").changed);
        assert_eq!(fs::read(&path).expect("read"), b"a\n");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o7777, 0o644);
        assert!(!write(&path, b"a\n", false).expect("again").changed);
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(write(&path, b"a\n", false).expect("mode").changed);
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o7777, 0o644);
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn a_link_is_replaced_never_written_through() {
        let dir = private_dir();
        let target = dir.path().join("stub-resolv.conf");
        fs::write(&target, "nameserver 127.0.0.53\n").expect("write");
        let path = dir.path().join("resolv.conf");
        std::os::unix::fs::symlink("stub-resolv.conf", &path).expect("link");
        let out = write(&path, b"nameserver 10.0.0.1\n", true).expect("check");
        assert!(out.changed && out.diff.before_header.contains("symbolic link"));
        assert!(fs::symlink_metadata(&path)
            .expect("meta")
            .file_type()
            .is_symlink());
        write(&path, b"nameserver 10.0.0.1\n", false).expect("write");
        assert!(fs::symlink_metadata(&path).expect("meta").is_file());
        assert_eq!(fs::read(&path).expect("read"), b"nameserver 10.0.0.1\n");
        assert_eq!(
            fs::read(&target).expect("read"),
            b"nameserver 127.0.0.53\n",
            "written through the link"
        );
    }

    #[test]
    fn a_directory_others_can_write_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o1777)).expect("chmod");
        let path = dir.path().join("resolv.conf");
        for check in [true, false] {
            let e = write(&path, b"x\n", check).err().expect("refused");
            assert!(e.starts_with("refusing to write"), "{e}");
        }
        assert!(!path.exists());
    }

    #[test]
    fn a_directory_at_the_path_is_an_error() {
        let dir = private_dir();
        let sub = dir.path().join("resolv.conf");
        fs::create_dir(&sub).expect("mkdir");
        let e = write(&sub, b"x\n", true).err();
        assert!(e.is_some_and(|e| e.contains("not a regular file")));
    }
}
