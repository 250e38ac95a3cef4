//! The one way our modules write a config file: render to a temp file in the
//! target's directory (mode 0600 until it is complete), check it with the
//! service's own checker (bounded in time), give it its owner and mode, fsync,
//! rename. A rejected file never replaces the old one; a rollback puts back the
//! old bytes exactly.
//!
//! Links: the old content is read without following a link at the last step,
//! and the rename replaces a directory entry, never what a link points at. A
//! link the user put at the path on purpose is followed, as Ansible's
//! `atomic_move` does, but only when neither the link nor its directory can be
//! changed by another user; otherwise the write is refused.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::module::Diff;
use crate::service;

/// How long a checker (`haproxy -c`, `keepalived -t`, `apachectl configtest`,
/// a user's `validate`) may take.
pub const CHECKER_TIMEOUT: Duration = Duration::from_secs(60);

/// A temp file of ours older than this is what a killed run left behind.
const STALE_AFTER: Duration = Duration::from_secs(60);

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
    #[error("validate command could not be split: {reason} in `{command}`")]
    UnsplittableValidator {
        command: String,
        reason: &'static str,
    },
    #[error("refusing to write {path}: {reason}")]
    UnsafeLink { path: PathBuf, reason: String },
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
    /// (`haproxy -c -f %s`, `sh -c 'visudo -cf %s'`): split into words the
    /// way Ansible splits it (see [`checker_argv`]) and run without a shell.
    Command(String),
    /// For checkers that read the whole live tree (`apachectl configtest`): the
    /// file is put in place, checked, and the old content restored if it fails.
    InPlace(Box<dyn Fn() -> Result<(), (String, String)> + 'a>),
}

pub struct ConfigFile<'a> {
    pub path: PathBuf,
    pub validator: Validator<'a>,
    /// Mode for a new file; an existing file keeps its mode and owner unless
    /// `enforce_mode` is set.
    pub mode: u32,
    /// The file gets `mode` whatever mode it had (a file that holds a secret).
    pub enforce_mode: bool,
    pub backup: bool,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub changed: bool,
    pub diff: Diff,
    pub backup_file: Option<PathBuf>,
}

/// The words of a `validate` command for `candidate`, as Ansible's copy and
/// template modules build them (`run_command(validate % path)`): the path
/// goes into the string first (`%s` is the path, `%%` a `%`; any other `%`
/// stays as it is), then the string is split like a POSIX shell, as Python's
/// `shlex.split` does (quotes and backslashes; `#` starts no comment). The
/// path goes in shell-quoted, so it is one word whatever it holds; a path
/// of plain characters (every temp file of ours) goes in as it is.
/// Unlike Ansible, `~` and `$VAR` in the words are not expanded.
pub fn checker_argv(template: &str, candidate: &Path) -> Result<Vec<String>, ConfigError> {
    // NUL stands in for '#' while splitting, so that no word starts a comment.
    const HASH: char = '\0';
    let unsplittable = |reason| ConfigError::UnsplittableValidator {
        command: template.to_string(),
        reason,
    };
    if template.contains(HASH) {
        return Err(unsplittable("a NUL byte"));
    }
    let path = candidate.to_string_lossy();
    let path = shlex::try_quote(&path).map_err(|_| unsplittable("a NUL byte in the file name"))?;
    let mut line = String::with_capacity(template.len() + path.len());
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('%', Some('s')) => {
                chars.next();
                line.push_str(&path);
            }
            ('%', Some('%')) => {
                chars.next();
                line.push('%');
            }
            ('#', _) => line.push(HASH),
            (c, _) => line.push(c),
        }
    }
    let words = shlex::split(&line)
        .ok_or_else(|| unsplittable("an unclosed quote or a trailing backslash"))?;
    Ok(words.into_iter().map(|w| w.replace(HASH, "#")).collect())
}

/// Runs a `validate` command (see [`checker_argv`]) on `candidate`.
pub fn run_checker(template: &str, candidate: &Path) -> Result<(), (String, String)> {
    let argv =
        checker_argv(template, candidate).map_err(|e| (template.to_string(), e.to_string()))?;
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    run_check(&argv)
}

/// Runs a checker (`apachectl configtest`, `haproxy -c -f FILE`), bounded by
/// [`CHECKER_TIMEOUT`]: `Ok` when it passes, else the command with its exit
/// status, and what it printed.
pub fn run_check(argv: &[&str]) -> Result<(), (String, String)> {
    let Some((program, args)) = argv.split_first() else {
        return Err((String::new(), "empty validate command".into()));
    };
    match service::run_output(program, args, CHECKER_TIMEOUT) {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => {
            let status = match out.code {
                Some(c) => format!("exited with {c}"),
                None => "was killed".into(),
            };
            Err((
                format!("{} {status}", argv.join(" ")),
                format!("{}{}", out.stdout, out.stderr)
                    .trim_end()
                    .to_string(),
            ))
        }
        Err(e) => Err((argv.join(" "), e.msg)),
    }
}

/// Whether a user other than root and us owns `meta`'s file.
fn foreign_owner(meta: &fs::Metadata) -> bool {
    meta.uid() != 0 && meta.uid() != fs_euid()
}

/// Whether a user other than root and us can change the entries of the
/// directory `meta` describes.
fn others_can_write(meta: &fs::Metadata) -> bool {
    let group_writes = meta.mode() & 0o020 != 0 && meta.gid() != 0;
    foreign_owner(meta) || group_writes || meta.mode() & 0o002 != 0
}

/// Our effective uid, as the owner of a file we create would be.
fn fs_euid() -> u32 {
    // The process's own /proc entry is owned by its effective uid.
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// Reads `path` without following a link at the last step: `None` when it
/// does not exist. A link there is an error (the caller resolved links it
/// trusts already).
pub fn read_nofollow(path: &Path) -> Result<Option<Vec<u8>>, ConfigError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match file {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(ConfigError::UnsafeLink {
                path: path.to_path_buf(),
                reason: "it became a symbolic link while it was being read".into(),
            })
        }
        Err(e) => return Err(io("reading", path)(e)),
    };
    let meta = file.metadata().map_err(io("reading", path))?;
    if !meta.is_file() {
        return Err(io("reading", path)(std::io::Error::other(
            "not a regular file",
        )));
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io("reading", path))?;
    Ok(Some(bytes))
}

/// Where a write to `path` goes: `path` itself, or the file a trusted link
/// there points at (followed hop by hop, each hop checked).
pub fn resolve_target(path: &Path) -> Result<PathBuf, ConfigError> {
    let mut current = path.to_path_buf();
    for _ in 0..16 {
        let meta = match fs::symlink_metadata(&current) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(current),
            Err(e) => return Err(io("reading", &current)(e)),
        };
        if !meta.file_type().is_symlink() {
            return Ok(current);
        }
        let dir = parent_dir(&current).to_path_buf();
        let dir_meta = fs::metadata(&dir).map_err(io("reading", &dir))?;
        if foreign_owner(&meta) || others_can_write(&dir_meta) {
            return Err(ConfigError::UnsafeLink {
                path: path.to_path_buf(),
                reason: format!(
                    "{} is a symbolic link that another user can change (in {}, mode {:o}, owner {}); \
                     point the option at the real file",
                    current.display(),
                    dir.display(),
                    dir_meta.mode() & 0o7777,
                    dir_meta.uid()
                ),
            });
        }
        let target = fs::read_link(&current).map_err(io("reading the link", &current))?;
        current = if target.is_absolute() {
            target
        } else {
            dir.join(target)
        };
    }
    Err(ConfigError::UnsafeLink {
        path: path.to_path_buf(),
        reason: "too many levels of symbolic links".into(),
    })
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

impl<'a> ConfigFile<'a> {
    pub fn new(path: impl Into<PathBuf>) -> ConfigFile<'a> {
        ConfigFile {
            path: path.into(),
            validator: Validator::None,
            mode: 0o644,
            enforce_mode: false,
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

    /// The file holds a secret: it is `mode` (0600, say) from the first byte,
    /// whatever mode an older copy had.
    pub fn private(mut self, mode: u32) -> Self {
        self.mode = mode;
        self.enforce_mode = true;
        self
    }

    pub fn backup(mut self, backup: bool) -> Self {
        self.backup = backup;
        self
    }

    /// The file's content now (read through a trusted link, never through
    /// one another user controls).
    pub fn read_current(&self) -> Result<Option<Vec<u8>>, ConfigError> {
        read_nofollow(&resolve_target(&self.path)?)
    }

    fn diff(&self, before: &Option<Vec<u8>>, after: &[u8]) -> Diff {
        let header = self.path.display().to_string();
        let before = before
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        Diff::new(header, before, String::from_utf8_lossy(after))
    }

    /// Writes `content` if it differs from the file. In check mode only reports.
    pub fn write(&self, content: &str, check_mode: bool) -> Result<WriteOutcome, ConfigError> {
        self.write_bytes(content.as_bytes(), check_mode)
    }

    /// As [`ConfigFile::write`], byte for byte (a rollback of a file that was
    /// not UTF-8 restores it exactly).
    pub fn write_bytes(
        &self,
        content: &[u8],
        check_mode: bool,
    ) -> Result<WriteOutcome, ConfigError> {
        if let Validator::Command(cmd) = &self.validator {
            if !cmd.contains("%s") {
                return Err(ConfigError::BadValidator(cmd.clone()));
            }
            checker_argv(cmd, &self.path)?;
        }
        let target = resolve_target(&self.path)?;
        let current = read_nofollow(&target)?;
        let diff = self.diff(&current, content);
        let mode_wrong = self.enforce_mode
            && fs::symlink_metadata(&target).is_ok_and(|m| m.mode() & 0o7777 != self.mode);
        if current.as_deref() == Some(content) && !mode_wrong {
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

        let dir = parent_dir(&target).to_path_buf();
        fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        remove_stale_temp_files(&target);
        let candidate = self.candidate(&target, content)?;

        if let Validator::Command(cmd) = &self.validator {
            if let Err((checker, output)) = run_checker(cmd, candidate.path()) {
                return Err(self.rejected(checker, output));
            }
        }
        let backup_file = match (&current, self.backup) {
            (Some(bytes), true) => Some(self.write_backup(&target, bytes)?),
            _ => None,
        };
        self.finish(&target, &candidate)?;
        candidate
            .persist(&target)
            .map_err(|e| io("renaming into", &target)(e.error))?;
        sync_dir(&dir);

        if let Validator::InPlace(check) = &self.validator {
            if let Err((checker, output)) = check() {
                self.restore_to(&target, current.as_deref())?;
                return Err(self.rejected(checker, output));
            }
        }
        Ok(WriteOutcome {
            changed: true,
            diff,
            backup_file,
        })
    }

    /// Puts `previous` back exactly (or removes the file when there was none):
    /// the undo of a write whose result the service would not take.
    pub fn restore(&self, previous: Option<&[u8]>) -> Result<(), ConfigError> {
        let target = resolve_target(&self.path)?;
        self.restore_to(&target, previous)
    }

    fn restore_to(&self, target: &Path, previous: Option<&[u8]>) -> Result<(), ConfigError> {
        match previous {
            Some(bytes) => {
                let old = self.candidate(target, bytes)?;
                self.finish(target, &old)?;
                old.persist(target)
                    .map_err(|e| io("restoring", target)(e.error))?;
            }
            None => match fs::remove_file(target) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io("removing", target)(e))
                }
                _ => {}
            },
        }
        sync_dir(parent_dir(target));
        Ok(())
    }

    /// Removes the file if it exists.
    pub fn remove(&self, check_mode: bool) -> Result<WriteOutcome, ConfigError> {
        let target = resolve_target(&self.path)?;
        let current = read_nofollow(&target)?;
        let diff = self.diff(&current, b"");
        if current.is_none() {
            return Ok(WriteOutcome {
                changed: false,
                diff,
                backup_file: None,
            });
        }
        if !check_mode {
            fs::remove_file(&target).map_err(io("removing", &target))?;
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

    /// A temp file beside `target`, 0600 from its creation, holding
    /// `content`, synced. Its final mode and owner come in [`Self::finish`],
    /// once it is complete and checked.
    fn candidate(
        &self,
        target: &Path,
        content: &[u8],
    ) -> Result<tempfile::NamedTempFile, ConfigError> {
        let dir = parent_dir(target);
        let mut tmp = tempfile::Builder::new()
            .prefix(&temp_prefix(target))
            .suffix(".tmp")
            .permissions(fs::Permissions::from_mode(0o600))
            .tempfile_in(dir)
            .map_err(io("creating a temp file in", dir))?;
        tmp.write_all(content).map_err(io("writing", tmp.path()))?;
        tmp.as_file()
            .sync_all()
            .map_err(io("syncing", tmp.path()))?;
        Ok(tmp)
    }

    /// Gives a complete candidate the target's owner and mode (or `mode`).
    fn finish(&self, target: &Path, tmp: &tempfile::NamedTempFile) -> Result<(), ConfigError> {
        let old = fs::symlink_metadata(target).ok().filter(|m| m.is_file());
        let mode = match (&old, self.enforce_mode) {
            (Some(meta), false) => meta.mode() & 0o7777,
            _ => self.mode,
        };
        if let Some(meta) = &old {
            std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()))
                .map_err(io("setting the owner of", tmp.path()))?;
        }
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("setting the mode of", tmp.path()))?;
        Ok(())
    }

    /// `<file>.<pid>.<timestamp>~`, as Ansible's `backup_local` names it,
    /// with the file's mode from its creation.
    fn write_backup(&self, target: &Path, bytes: &[u8]) -> Result<PathBuf, ConfigError> {
        let stamp = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let path = PathBuf::from(format!(
            "{}.{}.{stamp}~",
            target.display(),
            std::process::id()
        ));
        let mode = fs::symlink_metadata(target)
            .map(|m| m.mode() & 0o777)
            .unwrap_or(0o600);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .map_err(io("creating", &path))?;
        f.write_all(bytes).map_err(io("writing", &path))?;
        f.sync_all().map_err(io("syncing", &path))?;
        Ok(path)
    }
}

/// `.<name>.`: our temp files for `target` start with it and end in `.tmp`.
fn temp_prefix(target: &Path) -> String {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(".{name}.")
}

/// Removes the temp files a killed run left beside `target`: ours by name
/// and owner, regular files (a link of that name is removed, never followed),
/// and older than a running write could be.
fn remove_stale_temp_files(target: &Path) {
    let dir = parent_dir(target);
    let prefix = temp_prefix(target);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = fs_euid();
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(middle) = name
            .strip_prefix(prefix.as_str())
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        // tempfile's random part: six letters and digits.
        if middle.len() != 6 || !middle.chars().all(|c| c.is_ascii_alphanumeric()) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .is_some_and(|age| age >= STALE_AFTER);
        if meta.uid() == me && old && (meta.is_file() || meta.file_type().is_symlink()) {
            let _ = fs::remove_file(entry.path());
        }
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

    fn argv(template: &str, path: &str) -> Vec<String> {
        checker_argv(template, Path::new(path)).expect("splits")
    }

    /// Each expectation is Python's `shlex.split(validate % path)`, what
    /// Ansible's copy and template modules run.
    #[test]
    fn validate_is_split_as_ansible_splits_it() {
        assert_eq!(
            argv("haproxy -c -f %s", "/tmp/x"),
            ["haproxy", "-c", "-f", "/tmp/x"]
        );
        assert_eq!(
            argv("sh -c 'haproxy -c -f %s'", "/tmp/x"),
            ["sh", "-c", "haproxy -c -f /tmp/x"]
        );
        assert_eq!(
            argv("sh -c \"test -s %s\"", "/tmp/x"),
            ["sh", "-c", "test -s /tmp/x"]
        );
        assert_eq!(argv("foo #bar %s", "/tmp/x"), ["foo", "#bar", "/tmp/x"]);
        assert_eq!(argv("date +%%Y %s", "/tmp/x"), ["date", "+%Y", "/tmp/x"]);
        assert_eq!(
            argv(r#""a b" 'c d' e\ f --file=%s"#, "/tmp/x"),
            ["a b", "c d", "e f", "--file=/tmp/x"]
        );
        assert_eq!(
            argv("  knotc -c %s\tconf-check\n", "/k"),
            ["knotc", "-c", "/k", "conf-check"]
        );
        // The path is quoted: one word whatever it holds (Ansible would split
        // the first at its space).
        assert_eq!(
            argv("check %s", "/tmp/a b/c.cfg"),
            ["check", "/tmp/a b/c.cfg"]
        );
        assert_eq!(argv("check %s", "/tmp/it's #1"), ["check", "/tmp/it's #1"]);
        assert_eq!(argv("check %s", "/tmp/$(x)%s"), ["check", "/tmp/$(x)%s"]);
        assert_eq!(argv("%s", ""), [""]);
    }

    #[test]
    fn unsplittable_validate_is_a_clear_error() {
        for template in [
            "sh -c 'haproxy -c -f %s",
            "check %s \"",
            "check %s \\",
            "a\0b %s",
        ] {
            let e = checker_argv(template, Path::new("/tmp/x")).expect_err(template);
            assert!(
                matches!(e, ConfigError::UnsplittableValidator { .. }),
                "{e}"
            );
            assert!(
                e.to_string()
                    .starts_with("validate command could not be split: "),
                "{e}"
            );
        }
        let e = checker_argv("sh -c 'haproxy -c -f %s", Path::new("/x")).expect_err("quote");
        assert_eq!(
            e.to_string(),
            "validate command could not be split: an unclosed quote or a trailing backslash in `sh -c 'haproxy -c -f %s`"
        );
        let (checker, output) = run_checker("check '%s", Path::new("/x")).expect_err("quote");
        assert_eq!(checker, "check '%s");
        assert!(
            output.starts_with("validate command could not be split: "),
            "{output}"
        );

        // Refused before anything is written, in check mode too.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.cfg");
        fs::write(&path, "old\n").expect("write");
        for check_mode in [true, false] {
            let e = ConfigFile::new(&path)
                .validate_with("sh -c 'test -s %s")
                .write("new\n", check_mode)
                .expect_err("unsplittable");
            assert!(
                matches!(e, ConfigError::UnsplittableValidator { .. }),
                "{e}"
            );
        }
        assert_eq!(fs::read_to_string(&path).expect("read"), "old\n");
        assert_eq!(fs::read_dir(dir.path()).expect("ls").count(), 1);
    }

    #[test]
    fn a_shell_validate_checks_the_candidate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("my site.cfg");
        fs::write(&path, "old\n").expect("write");
        let file = ConfigFile::new(&path).validate_with("sh -c 'grep -q \"^ok\" \"$1\"' sh %s");
        let err = file.write("bad\n", false).expect_err("rejected");
        assert!(matches!(err, ConfigError::Rejected { .. }), "{err}");
        assert_eq!(fs::read_to_string(&path).expect("read"), "old\n");
        assert!(file.write("ok\n", false).expect("accepted").changed);
        assert_eq!(fs::read_to_string(&path).expect("read"), "ok\n");
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

    #[test]
    fn a_link_others_can_change_is_refused_and_a_trusted_one_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = dir.path().join("shadow");
        fs::write(&secret, "root:hash\n").expect("write");
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o777)).expect("chmod");
        let link = open.join("haproxy.cfg");
        std::os::unix::fs::symlink(&secret, &link).expect("link");
        let err = ConfigFile::new(&link).write("x\n", true).unwrap_err();
        assert!(matches!(err, ConfigError::UnsafeLink { .. }), "{err}");
        assert!(ConfigFile::new(&link).read_current().is_err());
        assert_eq!(fs::read_to_string(&secret).expect("read"), "root:hash\n");

        // The same link in a directory only we can write: followed, as
        // Ansible's atomic_move does; the link stays a link.
        let safe = dir.path().join("safe");
        fs::create_dir(&safe).expect("mkdir");
        fs::set_permissions(&safe, fs::Permissions::from_mode(0o755)).expect("chmod");
        let real = safe.join("real.cfg");
        fs::write(&real, "old\n").expect("write");
        let link = safe.join("link.cfg");
        std::os::unix::fs::symlink("real.cfg", &link).expect("link");
        let out = ConfigFile::new(&link)
            .write("new\n", false)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.changed && out.diff.before == "old\n");
        assert_eq!(fs::read_to_string(&real).expect("read"), "new\n");
        assert!(fs::symlink_metadata(&link)
            .expect("meta")
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_private_file_is_never_readable_by_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("haproxy.cfg");
        fs::write(&path, "old\n").expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let dir_path = dir.path().to_path_buf();
        // The checker copies the candidate with its mode: 0600 while checked.
        let out = ConfigFile::new(&path)
            .private(0o600)
            .validate_with(format!("cp --preserve=mode %s {}/seen", dir_path.display()))
            .write("stats auth u:secret\n", false)
            .expect("write");
        assert!(out.changed);
        let copied = fs::metadata(dir_path.join("seen")).expect("seen");
        assert_eq!(
            copied.mode() & 0o777,
            0o600,
            "the candidate was readable while checked"
        );
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
        // Same content, wrong mode: a change.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
        let out = ConfigFile::new(&path)
            .private(0o600)
            .write("stats auth u:secret\n", false)
            .expect("write");
        assert!(out.changed);
        assert_eq!(fs::metadata(&path).expect("meta").mode() & 0o777, 0o600);
    }

    #[test]
    fn stale_temp_files_go_and_fresh_ones_stay() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.cfg");
        let stale = dir.path().join(".a.cfg.AbC123.tmp");
        let fresh = dir.path().join(".a.cfg.XyZ789.tmp");
        let other = dir.path().join(".b.cfg.AbC123.tmp");
        for f in [&stale, &fresh, &other] {
            fs::write(f, "partial").expect("write");
        }
        let hour_ago = SystemTime::now() - Duration::from_secs(3600);
        for f in [&stale, &other] {
            File::options()
                .write(true)
                .open(f)
                .and_then(|h| h.set_modified(hour_ago))
                .expect("mtime");
        }
        ConfigFile::new(&path).write("x\n", false).expect("write");
        assert!(!stale.exists(), "a killed run's temp file stayed");
        assert!(fresh.exists() && other.exists());
    }

    #[test]
    fn restore_is_byte_exact() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("site.conf");
        let old: &[u8] = b"# caf\xe9 latin-1\n\xff\xfe\n";
        fs::write(&path, old).expect("write");
        let err = ConfigFile::new(&path)
            .check_in_place(|| Err(("apachectl configtest exited with 1".into(), "bad".into())))
            .write("new\n", false)
            .unwrap_err();
        assert!(matches!(err, ConfigError::Rejected { .. }));
        assert_eq!(fs::read(&path).expect("read"), old);
        ConfigFile::new(&path).write("new\n", false).expect("write");
        ConfigFile::new(&path).restore(Some(old)).expect("restore");
        assert_eq!(fs::read(&path).expect("read"), old);
    }

    #[test]
    fn a_failed_checker_is_named_with_its_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.cfg");
        let (checker, output) = run_check(&["sh", "-c", "exit 4"]).unwrap_err();
        assert_eq!(
            (checker.as_str(), output.as_str()),
            ("sh -c exit 4 exited with 4", "")
        );
        assert!(ConfigFile::new(&path)
            .validate_with("true %s")
            .write("x\n", false)
            .is_ok());
    }
}
