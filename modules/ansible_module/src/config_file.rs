//! The one way our modules write a config file: render to a temp file in the
//! target's directory, check it with the service's own checker, keep owner and
//! mode, fsync, rename. A rejected file never replaces the old one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::module::Diff;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "failed to validate {path}: `{checker}` {status}, the file was not changed:\n{output}"
    )]
    Rejected {
        path: PathBuf,
        checker: String,
        status: String,
        output: String,
    },
    #[error("validate command must contain %s: {0}")]
    BadValidator(String),
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ConfigError {
    let path = path.to_path_buf();
    move |source| ConfigError::Io {
        action,
        path,
        source,
    }
}

/// How a candidate file is checked before it goes live.
pub enum Validator<'a> {
    None,
    /// A command with `%s` for the candidate file, as Ansible's `validate:`
    /// (`haproxy -c -f %s`, `keepalived -t -f %s`). Split on whitespace, no shell.
    Command(String),
    /// For checkers that read the whole live tree (`apachectl configtest`): the
    /// file is put in place, checked, and the old content restored if it fails.
    InPlace(Box<dyn Fn() -> Result<(), (String, String)> + 'a>),
}

pub struct ConfigFile<'a> {
    pub path: PathBuf,
    pub validator: Validator<'a>,
    /// Mode for a new file; an existing file keeps its mode and owner.
    pub mode: u32,
    pub backup: bool,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub changed: bool,
    pub diff: Diff,
    pub backup_file: Option<PathBuf>,
}

/// Runs a checker command line with `%s` replaced by `candidate`.
pub fn run_checker(template: &str, candidate: &Path) -> Result<(), (String, String)> {
    let argv: Vec<String> = template
        .split_whitespace()
        .map(|w| w.replace("%s", &candidate.to_string_lossy()))
        .collect();
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_check(&argv)
}

/// Runs a checker (`apachectl configtest`, `haproxy -c -f FILE`): `Ok` when it
/// passes, else the command with its exit status, and what it printed.
pub fn run_check(argv: &[&str]) -> Result<(), (String, String)> {
    let Some((program, args)) = argv.split_first() else {
        return Err((String::new(), "empty validate command".into()));
    };
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            let status = out
                .status
                .code()
                .map_or_else(|| "was killed".into(), |c| format!("exited with {c}"));
            Err((
                format!("{} {status}", argv.join(" ")),
                text.trim_end().to_string(),
            ))
        }
        Err(e) => Err((argv.join(" "), format!("could not run {program}: {e}"))),
    }
}

impl<'a> ConfigFile<'a> {
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile<'a> {
        ConfigFile {
            path: path.into(),
            validator: Validator::None,
            mode: 0o644,
            backup: false,
        }
    }

    pub fn validate_with(mut self, command: impl Into<String>) -> Self {
        self.validator = Validator::Command(command.into());
        self
    }

    pub fn check_in_place(mut self, check: impl Fn() -> Result<(), (String, String)> + 'a) -> Self {
        self.validator = Validator::InPlace(Box::new(check));
        self
    }

    pub fn mode(mut self, mode: u32) -> Self {
        self.mode = mode;
        self
    }

    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }

    fn read_current(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        match fs::read(&self.path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &self.path)(e)),
        }
    }

    fn diff(&self, before: &Option<Vec<u8>>, after: &str) -> Diff {
        let header = self.path.display().to_string();
        let before = before
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        Diff::new(header, before, after)
    }

    /// Writes `content` if it differs from the file. In check mode only reports.
    pub fn write(&self, content: &str, check_mode: bool) -> Result<WriteOutcome, ConfigError> {
        if let Validator::Command(cmd) = &self.validator {
            if !cmd.contains("%s") {
                return Err(ConfigError::BadValidator(cmd.clone()));
            }
        }
        let current = self.read_current()?;
        let diff = self.diff(&current, content);
        if current.as_deref() == Some(content.as_bytes()) {
            return Ok(WriteOutcome {
                changed: false,
                diff,
                backup_file: None,
            });
        }
        if check_mode {
            return Ok(WriteOutcome {
                changed: true,
                diff,
                backup_file: None,
            });
        }

        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io("creating", dir))?;
        let candidate = self.candidate(dir, content)?;

        if let Validator::Command(cmd) = &self.validator {
            if let Err((checker, output)) = run_checker(cmd, candidate.path()) {
                return Err(self.rejected(checker, output));
            }
        }
        let backup_file = match (&current, self.backup) {
            (Some(bytes), true) => Some(self.write_backup(bytes)?),
            _ => None,
        };
        candidate
            .persist(&self.path)
            .map_err(|e| io("renaming into", &self.path)(e.error))?;
        sync_dir(dir);

        if let Validator::InPlace(check) = &self.validator {
            if let Err((checker, output)) = check() {
                self.restore(dir, current.as_deref())?;
                return Err(self.rejected(checker, output));
            }
        }
        Ok(WriteOutcome {
            changed: true,
            diff,
            backup_file,
        })
    }

    /// Removes the file if it exists.
    pub fn remove(&self, check_mode: bool) -> Result<WriteOutcome, ConfigError> {
        let current = self.read_current()?;
        let diff = self.diff(&current, "");
        if current.is_none() {
            return Ok(WriteOutcome {
                changed: false,
                diff,
                backup_file: None,
            });
        }
        if !check_mode {
            fs::remove_file(&self.path).map_err(io("removing", &self.path))?;
        }
        Ok(WriteOutcome {
            changed: true,
            diff,
            backup_file: None,
        })
    }

    fn rejected(&self, checker: String, output: String) -> ConfigError {
        let (checker, status) = match checker.rsplit_once(" exited with ") {
            Some((c, code)) => (c.to_string(), format!("exited with {code}")),
            None => (checker, "failed".to_string()),
        };
        ConfigError::Rejected {
            path: self.path.clone(),
            checker,
            status,
            output,
        }
    }

    /// A temp file beside the target with the target's mode and owner, synced.
    fn candidate(&self, dir: &Path, content: &str) -> Result<tempfile::NamedTempFile, ConfigError> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(io("creating a temp file in", dir))?;
        tmp.write_all(content.as_bytes())
            .map_err(io("writing", tmp.path()))?;
        let (mode, owner) = match fs::metadata(&self.path) {
            Ok(meta) => (meta.mode() & 0o7777, Some((meta.uid(), meta.gid()))),
            Err(_) => (self.mode, None),
        };
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(mode))
            .map_err(io("setting the mode of", tmp.path()))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(tmp.path(), Some(uid), Some(gid))
                .map_err(io("setting the owner of", tmp.path()))?;
        }
        tmp.as_file()
            .sync_all()
            .map_err(io("syncing", tmp.path()))?;
        Ok(tmp)
    }

    fn restore(&self, dir: &Path, previous: Option<&[u8]>) -> Result<(), ConfigError> {
        match previous {
            Some(bytes) => {
                let old = self.candidate(dir, &String::from_utf8_lossy(bytes))?;
                old.persist(&self.path)
                    .map_err(|e| io("restoring", &self.path)(e.error))?;
            }
            None => fs::remove_file(&self.path).map_err(io("removing", &self.path))?,
        }
        sync_dir(dir);
        Ok(())
    }

    /// `<file>.<pid>.<timestamp>~`, as Ansible's `backup_local` names it.
    fn write_backup(&self, bytes: &[u8]) -> Result<PathBuf, ConfigError> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let path = PathBuf::from(format!(
            "{}.{}.{stamp}~",
            self.path.display(),
            std::process::id()
        ));
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode_from(&self.path)
            .open(&path)
            .map_err(io("creating", &path))?;
        f.write_all(bytes).map_err(io("writing", &path))?;
        f.sync_all().map_err(io("syncing", &path))?;
        Ok(path)
    }
}

trait ModeFrom {
    fn mode_from(&mut self, path: &Path) -> &mut Self;
}

impl ModeFrom for OpenOptions {
    fn mode_from(&mut self, path: &Path) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        let mode = fs::metadata(path)
            .map(|m| m.mode() & 0o777)
            .unwrap_or(0o600);
        self.mode(mode)
    }
}

/// Makes a rename durable; a failure here loses nothing already written.
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_content_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.cfg");
        fs::write(&path, "x\n").expect("write");
        let out = ConfigFile::new(&path).write("x\n", false).expect("write");
        assert!(!out.changed);
    }

    #[test]
    fn rejected_candidate_leaves_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.cfg");
        fs::write(&path, "old\n").expect("write");
        let err = ConfigFile::new(&path)
            .validate_with("false %s")
            .write("new\n", false)
            .unwrap_err();
        assert!(matches!(err, ConfigError::Rejected { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).expect("read"), "old\n");
        assert_eq!(
            fs::read_dir(dir.path()).expect("ls").count(),
            1,
            "temp file left behind"
        );
    }

    #[test]
    fn in_place_check_failure_restores() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.conf");
        fs::write(&path, "old\n").expect("write");
        let err = ConfigFile::new(&path)
            .check_in_place(|| {
                Err((
                    "apachectl configtest exited with 1".into(),
                    "Syntax error".into(),
                ))
            })
            .write("new\n", false)
            .unwrap_err();
        assert!(err.to_string().contains("Syntax error"));
        assert_eq!(fs::read_to_string(&path).expect("read"), "old\n");
    }

    #[test]
    fn mode_is_kept_and_check_mode_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.cfg");
        fs::write(&path, "a\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
        let out = ConfigFile::new(&path).write("b\n", true).expect("check");
        assert!(out.changed);
        assert_eq!(fs::read_to_string(&path).expect("read"), "a\n");
        let out = ConfigFile::new(&path)
            .backup(true)
            .write("b\n", false)
            .expect("write");
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        assert_eq!(out.diff.before, "a\n");
        assert!(out
            .backup_file
            .is_some_and(|b| fs::read_to_string(b).expect("read") == "a\n"));
    }
}
