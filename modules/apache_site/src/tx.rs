//! Changes to the host as one unit: every step records how to undo itself, so
//! when `apachectl configtest` rejects the result (or the reload fails) the
//! host goes back to exactly what it was, byte for byte, and the running
//! Apache keeps its old configuration.
//! In check mode the steps only report what they would do.
//!
//! Files are read and written through `ConfigFile`: never through a link
//! another user can change, old bytes kept as bytes. Links (a2ensite and
//! a2enmod style) and their markers in `/var/lib/apache2` are made and
//! removed only in directories no other user can write, and never followed.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ansible_module::{ConfigFile, Diff};

#[derive(Debug)]
enum Undo {
    /// Put back the old bytes (or remove the file when there were none).
    Content(PathBuf, Option<Vec<u8>>),
    /// Put back the old link (or remove it when there was none).
    Link(PathBuf, Option<PathBuf>),
    /// Remove a directory the run created (only if empty).
    Dir(PathBuf),
}

#[derive(Debug)]
pub struct Tx {
    check_mode: bool,
    undo: Vec<Undo>,
    pub diffs: Vec<Diff>,
    pub actions: Vec<String>,
    /// Something Apache reads changed (it must be checked and reloaded).
    pub config_changed: bool,
    /// Anything changed.
    pub changed: bool,
}

fn io_err(action: &str, path: &Path, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!("{action} {}: {e}", path.display())
}

/// The directory holding `link` must be one only root (or we) can change:
/// otherwise another user could swap the entry between our look and our
/// change.
fn check_link_dir(link: &Path) -> anyhow::Result<()> {
    let dir = link
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let meta = fs::metadata(dir).map_err(|e| io_err("reading", dir, e))?;
    let me = fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0);
    let foreign = meta.uid() != 0 && meta.uid() != me;
    if foreign || (meta.mode() & 0o020 != 0 && meta.gid() != 0) || meta.mode() & 0o002 != 0 {
        anyhow::bail!(
            "refusing to change {}: {} can be changed by other users (mode {:o}, owner {})",
            link.display(),
            dir.display(),
            meta.mode() & 0o7777,
            meta.uid()
        );
    }
    Ok(())
}

/// The markers of `name` under `dir` (`dir/*/name`, regular files only, as
/// `a2enmod`'s `find -type f` sees them).
fn markers(dir: &Path, name: &str) -> anyhow::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err("reading", dir, e)),
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path().join(name))
        .filter(|p| fs::symlink_metadata(p).is_ok_and(|m| m.is_file()))
        .collect();
    found.sort();
    Ok(found)
}

fn link_text(target: Option<&Path>) -> String {
    match target {
        Some(t) => format!("link -> {}\n", t.display()),
        None => "absent\n".into(),
    }
}

impl Tx {
    pub fn new(check_mode: bool) -> Tx {
        Tx {
            check_mode,
            undo: Vec::new(),
            diffs: Vec::new(),
            actions: Vec::new(),
            config_changed: false,
            changed: false,
        }
    }

    pub fn check_mode(&self) -> bool {
        self.check_mode
    }

    fn record(&mut self, action: String, config: bool, diff: Option<Diff>) {
        self.actions.push(action);
        self.changed = true;
        self.config_changed |= config;
        if let Some(d) = diff {
            self.diffs.push(d);
        }
    }

    /// Writes `content` to `path` if it differs. `check` (for the vhost) runs
    /// with the new file in place; on failure the file is restored and the
    /// error returned.
    pub fn write(
        &mut self,
        path: &Path,
        content: &str,
        config: bool,
        action: &str,
        check: Option<&dyn Fn() -> Result<(), (String, String)>>,
    ) -> anyhow::Result<bool> {
        self.write_bytes(path, content.as_bytes(), config, action, check)
    }

    /// As [`Tx::write`], byte for byte.
    pub fn write_bytes(
        &mut self,
        path: &Path,
        content: &[u8],
        config: bool,
        action: &str,
        check: Option<&dyn Fn() -> Result<(), (String, String)>>,
    ) -> anyhow::Result<bool> {
        let before = ConfigFile::new(path).read_current()?;
        let mut file = ConfigFile::new(path).mode(0o644);
        if let Some(check) = check {
            file = file.check_in_place(check);
        }
        let out = file.write_bytes(content, self.check_mode)?;
        if out.changed {
            self.undo.push(Undo::Content(path.to_path_buf(), before));
            self.record(action.to_string(), config, Some(out.diff));
        }
        Ok(out.changed)
    }

    pub fn remove_file(&mut self, path: &Path, action: &str) -> anyhow::Result<bool> {
        let Some(before) = ConfigFile::new(path).read_current()? else {
            return Ok(false);
        };
        let out = ConfigFile::new(path).remove(self.check_mode)?;
        self.undo
            .push(Undo::Content(path.to_path_buf(), Some(before)));
        self.record(action.to_string(), true, Some(out.diff));
        Ok(true)
    }

    /// Creates `dir` and missing parents (mode 0755).
    pub fn mkdir(&mut self, dir: &Path, action: &str) -> anyhow::Result<bool> {
        if dir.is_dir() {
            return Ok(false);
        }
        if !self.check_mode {
            self.create_dirs(dir)?;
        }
        let diff = Diff::new(dir.display().to_string(), "absent\n", "directory\n");
        self.record(action.to_string(), false, Some(diff));
        Ok(true)
    }

    /// Creates `dir` and missing parents (mode 0755), each undone by a rollback.
    fn create_dirs(&mut self, dir: &Path) -> anyhow::Result<()> {
        let mut missing = Vec::new();
        let mut cur = Some(dir);
        while let Some(d) = cur {
            if d.exists() {
                break;
            }
            missing.push(d.to_path_buf());
            cur = d.parent();
        }
        for d in missing.iter().rev() {
            fs::create_dir(d).map_err(|e| io_err("creating", d, e))?;
            fs::set_permissions(d, fs::Permissions::from_mode(0o755))
                .map_err(|e| io_err("setting the mode of", d, e))?;
            self.undo.push(Undo::Dir(d.clone()));
        }
        Ok(())
    }

    /// Debian's record of who enabled or disabled a module or site, kept as
    /// `a2enmod` and `a2ensite` keep it (their `switch_marker`): every marker
    /// of `name` (`<dir>/*/<name>`, `enabled_by_maint` included) goes and
    /// `<dir>/enabled_by_admin/<name>` (or `disabled_by_admin`) is made.
    /// Package scripts read them: `apache2_invoke` does not re-enable what
    /// the admin disabled. Part of the link change it follows: no action or
    /// diff of its own, undone with it, nothing done in check mode.
    pub fn switch_marker(&mut self, dir: &Path, enabled: bool, name: &str) -> anyhow::Result<()> {
        if self.check_mode {
            return Ok(());
        }
        let by_admin = if enabled {
            "enabled_by_admin"
        } else {
            "disabled_by_admin"
        };
        let marker = dir.join(by_admin).join(name);
        self.create_dirs(&dir.join(by_admin))?;
        // No directory on the way may be another user's (`dir`'s parent,
        // `dir`, the marker's own).
        check_link_dir(dir)?;
        check_link_dir(&dir.join(by_admin))?;
        check_link_dir(&marker)?;
        for old in markers(dir, name)? {
            check_link_dir(&old)?;
            let bytes = fs::read(&old).map_err(|e| io_err("reading", &old, e))?;
            fs::remove_file(&old).map_err(|e| io_err("removing", &old, e))?;
            self.undo.push(Undo::Content(old, Some(bytes)));
        }
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&marker)
            .map_err(|e| io_err("creating", &marker, e))?;
        self.undo.push(Undo::Content(marker, None));
        Ok(())
    }

    /// Makes `link` a symlink to `target` (a2ensite/a2enmod style). A link that
    /// already resolves to the same file is left alone; a regular file there is
    /// an error (it is not ours to replace).
    pub fn link(&mut self, link: &Path, target: &Path, action: &str) -> anyhow::Result<bool> {
        check_link_dir(link)?;
        let old = match fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let old = fs::read_link(link).map_err(|e| io_err("reading", link, e))?;
                let want = link.parent().unwrap_or(Path::new("/")).join(target);
                // An absolute link to the same file is as good as a2ensite's.
                let same_file = matches!(
                    (link.canonicalize(), want.canonicalize()),
                    (Ok(a), Ok(b)) if a == b
                );
                if old == target || same_file {
                    return Ok(false);
                }
                Some(old)
            }
            Ok(_) => {
                anyhow::bail!(
                    "{} is a regular file, not a link to {}: move it away first",
                    link.display(),
                    target.display()
                )
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("reading", link, e)),
        };
        if !self.check_mode {
            if old.is_some() {
                fs::remove_file(link).map_err(|e| io_err("removing", link, e))?;
            }
            std::os::unix::fs::symlink(target, link).map_err(|e| io_err("creating", link, e))?;
        }
        let diff = Diff::new(
            link.display().to_string(),
            link_text(old.as_deref()),
            link_text(Some(target)),
        );
        self.undo.push(Undo::Link(link.to_path_buf(), old));
        self.record(action.to_string(), true, Some(diff));
        Ok(true)
    }

    /// Removes the symlink `link` if there is one.
    pub fn unlink(&mut self, link: &Path, action: &str) -> anyhow::Result<bool> {
        let old = match fs::symlink_metadata(link) {
            Ok(meta) if meta.file_type().is_symlink() => {
                fs::read_link(link).map_err(|e| io_err("reading", link, e))?
            }
            Ok(_) => anyhow::bail!(
                "{} is a regular file, not a link: remove it by hand",
                link.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_err("reading", link, e)),
        };
        check_link_dir(link)?;
        if !self.check_mode {
            fs::remove_file(link).map_err(|e| io_err("removing", link, e))?;
        }
        let diff = Diff::new(
            link.display().to_string(),
            link_text(Some(&old)),
            link_text(None),
        );
        self.undo.push(Undo::Link(link.to_path_buf(), Some(old)));
        self.record(action.to_string(), true, Some(diff));
        Ok(true)
    }

    /// Undoes every step, newest first: files get their old bytes back exactly
    /// (or go when they were new). Returns what could not be undone.
    pub fn rollback(&mut self) -> Vec<String> {
        let mut errors = Vec::new();
        if self.check_mode {
            return errors;
        }
        while let Some(step) = self.undo.pop() {
            let result = match &step {
                Undo::Content(path, before) => ConfigFile::new(path)
                    .restore(before.as_deref())
                    .map_err(|e| e.to_string()),
                Undo::Link(link, old) => {
                    let _ = fs::remove_file(link);
                    match old {
                        Some(target) => std::os::unix::fs::symlink(target, link)
                            .map_err(|e| format!("restoring {}: {e}", link.display())),
                        None => Ok(()),
                    }
                }
                Undo::Dir(dir) => {
                    let _ = fs::remove_dir(dir);
                    Ok(())
                }
            };
            if let Err(e) = result {
                errors.push(e);
            }
        }
        // Everything is as it was unless something could not be put back.
        self.changed = !errors.is_empty();
        self.config_changed = !errors.is_empty();
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollback_restores_everything() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        fs::write(d.join("ports.conf"), "Listen 80\n").expect("write");
        std::os::unix::fs::symlink("old", d.join("old-link")).expect("link");
        let mut tx = Tx::new(false);
        assert!(tx.mkdir(&d.join("www/site"), "mkdir").expect("mkdir"));
        tx.write(&d.join("www/site/index.html"), "hi\n", false, "index", None)
            .expect("write");
        tx.write(&d.join("ports.conf"), "Listen 8080\n", true, "ports", None)
            .expect("write");
        tx.link(&d.join("new-link"), Path::new("target"), "link")
            .expect("link");
        tx.unlink(&d.join("old-link"), "unlink").expect("unlink");
        assert!(tx.config_changed);
        assert_eq!(tx.actions.len(), 5);
        assert!(tx.rollback().is_empty());
        assert!(!d.join("www").exists());
        assert_eq!(
            fs::read_to_string(d.join("ports.conf")).expect("read"),
            "Listen 80\n"
        );
        assert!(fs::symlink_metadata(d.join("new-link")).is_err());
        assert_eq!(
            fs::read_link(d.join("old-link")).expect("link"),
            PathBuf::from("old")
        );
    }

    #[test]
    fn check_mode_touches_nothing_and_links_are_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let mut tx = Tx::new(true);
        assert!(tx.mkdir(&d.join("www"), "mkdir").expect("mkdir"));
        assert!(tx.link(&d.join("l"), Path::new("t"), "link").expect("link"));
        assert!(!d.join("www").exists());
        assert!(fs::symlink_metadata(d.join("l")).is_err());

        fs::write(d.join("t"), "x").expect("write");
        std::os::unix::fs::symlink(d.join("t"), d.join("abs")).expect("link");
        let mut tx = Tx::new(false);
        assert!(!tx
            .link(&d.join("abs"), Path::new("t"), "link")
            .expect("link"));
        assert!(!tx.changed);
        fs::write(d.join("plain"), "x").expect("write");
        assert!(tx.link(&d.join("plain"), Path::new("t"), "link").is_err());
    }

    #[test]
    fn rollback_puts_back_bytes_that_are_not_utf8() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let old: &[u8] = b"# caf\xe9 (Latin-1)\nListen 80\n\xff\n";
        fs::write(d.join("ports.conf"), old).expect("write");
        fs::write(d.join("site.conf"), old).expect("write");
        let mut tx = Tx::new(false);
        tx.write(&d.join("ports.conf"), "Listen 8080\n", true, "ports", None)
            .expect("write");
        tx.remove_file(&d.join("site.conf"), "remove")
            .expect("remove");
        tx.write(&d.join("new.conf"), "x\n", true, "new", None)
            .expect("write");
        assert!(tx.rollback().is_empty());
        assert!(!tx.changed);
        assert_eq!(fs::read(d.join("ports.conf")).expect("read"), old);
        assert_eq!(fs::read(d.join("site.conf")).expect("read"), old);
        assert!(!d.join("new.conf").exists());
    }

    #[test]
    fn links_other_users_control_are_neither_read_nor_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let secret = dir.path().join("shadow");
        fs::write(&secret, "root:hash\n").expect("write");
        std::os::unix::fs::symlink(&secret, open.join("index.html")).expect("link");
        let mut tx = Tx::new(false);
        let e = tx
            .write(&open.join("index.html"), "hi\n", false, "index", None)
            .expect_err("planted link");
        assert!(e.to_string().contains("another user can change"), "{e}");
        assert!(tx.undo.is_empty(), "nothing was read through the link");
        let e = tx
            .link(&open.join("site.conf"), Path::new("../x"), "link")
            .expect_err("open dir");
        assert!(
            e.to_string().contains("can be changed by other users"),
            "{e}"
        );
        let e = tx
            .unlink(&open.join("index.html"), "unlink")
            .expect_err("open dir");
        assert!(
            e.to_string().contains("can be changed by other users"),
            "{e}"
        );
        assert_eq!(fs::read_to_string(&secret).expect("read"), "root:hash\n");
        assert!(fs::symlink_metadata(open.join("index.html")).is_ok());

        // Markers: neither in a directory others can write, nor beneath one.
        fs::create_dir(open.join("enabled_by_maint")).expect("mkdir");
        fs::write(open.join("enabled_by_maint/web"), "").expect("marker");
        for markers in [open.clone(), open.join("sub")] {
            let e = tx
                .switch_marker(&markers, true, "web")
                .expect_err("open dir");
            assert!(
                e.to_string().contains("can be changed by other users"),
                "{e}"
            );
        }
        assert!(tx.rollback().is_empty());
        assert!(open.join("enabled_by_maint/web").is_file());
        assert!(!open.join("enabled_by_admin").exists());
        assert!(!open.join("sub").exists());
    }

    #[test]
    fn markers_flip_and_roll_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = dir.path().join("module");
        fs::create_dir_all(m.join("enabled_by_maint")).expect("mkdir");
        fs::write(m.join("enabled_by_maint/headers"), "").expect("marker");
        fs::create_dir(m.join("enabled_by_admin")).expect("mkdir");
        fs::write(m.join("enabled_by_admin/other"), "").expect("marker");
        let mut tx = Tx::new(false);
        tx.switch_marker(&m, false, "headers").expect("marker");
        assert!(m.join("disabled_by_admin/headers").is_file());
        assert!(!m.join("enabled_by_maint/headers").exists());
        assert!(m.join("enabled_by_admin/other").is_file());
        assert!(
            !tx.changed,
            "a marker is part of the link change it follows"
        );
        tx.switch_marker(&m, true, "headers").expect("marker");
        assert!(m.join("enabled_by_admin/headers").is_file());
        assert!(!m.join("disabled_by_admin/headers").exists());
        assert!(tx.rollback().is_empty());
        assert!(m.join("enabled_by_maint/headers").is_file());
        assert!(!m.join("enabled_by_admin/headers").exists());
        assert!(!m.join("disabled_by_admin").exists());

        let mut tx = Tx::new(true);
        tx.switch_marker(&m, true, "headers").expect("check mode");
        assert!(!m.join("enabled_by_admin/headers").exists());
    }
}
