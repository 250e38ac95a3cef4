//! Reading and writing the config file.

use std::os::unix::fs::MetadataExt;

use ansible_module::config_file::{resolve_target, run_checker, ConfigError};
use ansible_module::{ConfigFile, Fail, Module};

use crate::config;
use crate::params::Params;

/// The config file as a run found it: the bytes (put back exactly on a
/// rollback), the text the module works on, and the file's mode.
#[derive(Debug, Clone)]
pub(crate) struct Old {
    pub(crate) bytes: Vec<u8>,
    pub(crate) text: String,
    pub(crate) mode: u32,
}

pub(crate) fn config_error(e: ConfigError) -> Fail {
    match e {
        ConfigError::UnsafeLink { path, reason } => {
            Fail::new(format!("refusing to use {}: {reason}", path.display()))
        }
        e => Fail::new(e.to_string()),
    }
}

/// Reads the config file (never through a link another user controls) and
/// hides the secrets it holds from everything the module returns.
pub(crate) fn read_config(m: &mut Module, path: &str) -> Result<Option<Old>, Fail> {
    let Some(bytes) = ConfigFile::new(path).read_current().map_err(config_error)? else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(&bytes).into_owned();
    for secret in config::secrets(&text) {
        m.hide(secret);
    }
    let mode = resolve_target(std::path::Path::new(path))
        .ok()
        .and_then(|t| std::fs::symlink_metadata(t).ok())
        .map_or(0o600, |meta| meta.mode() & 0o7777);
    Ok(Some(Old { bytes, text, mode }))
}

/// Hides the secrets kept beside the config (the stats password and the
/// cookie key files), whether or not this run uses them: a diff of the
/// config shows them otherwise.
pub(crate) fn hide_kept_secrets(m: &mut Module, p: &Params) {
    for path in [&p.stats.password_file, &p.cookie.key_file] {
        if let Ok(Some(secret)) = crate::secret::read(path) {
            if secret != p.backend() && crate::secret::check("secret", &secret).is_ok() {
                m.hide(secret);
            }
        }
    }
}

/// Writes the config (validated, atomically); a file that holds a secret
/// (the stats password, a cookie key) is root-only from its first byte.
/// Returns whether it changed (content or mode).
pub(crate) fn write_config(m: &mut Module, p: &Params, text: &str) -> Result<bool, Fail> {
    let file = ConfigFile::new(&p.config_path).validate_with(p.validate.as_str());
    let file = if config::holds_secret(text) {
        file.private(0o600)
    } else {
        file.mode(0o644)
    };
    let out = file.write(text, m.check_mode()).map_err(|e| {
        if let ConfigError::Rejected { output, .. } = &e {
            let mut msg = e.to_string();
            if output.trim().is_empty() {
                msg.push_str(&explain_rejection(&p.validate, &p.config_path, text));
            }
            msg.push_str(&origins(p, text, &msg));
            return Fail::new(msg);
        }
        config_error(e)
    })?;
    if out.changed {
        m.add_diff(out.diff);
    }
    Ok(out.changed)
}

/// Another file a run wrote beside the config (the TLS certificate), and
/// how to put it back.
#[derive(Debug, Clone)]
pub(crate) struct Undo {
    pub(crate) path: String,
    pub(crate) mode: u32,
    /// `None`: there was no file.
    pub(crate) bytes: Option<Vec<u8>>,
}

impl Undo {
    /// Puts the bytes back exactly (or removes the file there was not).
    pub(crate) fn restore(&self) -> Result<(), Fail> {
        ConfigFile::new(&self.path)
            .private(self.mode)
            .restore(self.bytes.as_deref())
            .map_err(config_error)
    }
}

/// Puts the file back as it was before this run wrote it (byte for byte,
/// with its mode; removed if there was none).
pub(crate) fn restore_config(p: &Params, old: Option<&Old>) -> Result<(), Fail> {
    let file = ConfigFile::new(&p.config_path);
    let file = match old {
        Some(o) => file.private(o.mode),
        None => file,
    };
    file.restore(old.map(|o| o.bytes.as_slice()))
        .map_err(config_error)
}

/// Runs the checker on the live file (the config did not change, but a
/// file it loads did: a certificate).
pub(crate) fn check_live(p: &Params) -> Result<(), Fail> {
    let text = std::fs::read_to_string(&p.config_path).unwrap_or_default();
    run_checker(&p.validate, std::path::Path::new(&p.config_path)).map_err(|(checker, output)| {
        let mut msg = format!(
            "failed to validate {} with the files it loads: `{checker}`, nothing was reloaded:\n{output}",
            p.config_path
        );
        if output.trim().is_empty() {
            msg.push_str(&explain_rejection(&p.validate, &p.config_path, &text));
        }
        msg.push_str(&origins(p, &text, &msg));
        Fail::new(msg)
    })
}

/// For each line of `text` that `haproxy -c` names in `output`
/// (`[file:LINE]`) and that an option wrote (an `extra` line, the TLS bind),
/// a line saying which option it is.
fn origins(p: &Params, text: &str, output: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    // (option, the line or the start of the line it writes)
    let mut given: Vec<(String, String)> = p
        .extra
        .lines()
        .into_iter()
        .map(|(o, l)| (o, l.trim().to_string()))
        .collect();
    if let Some(t) = &p.frontend.tls {
        given.push((
            "frontend.tls.bind or frontend.tls.certificate".into(),
            format!("bind {} ssl crt {} ", t.bind, t.certificate),
        ));
    }
    let mut out = String::new();
    let mut seen = std::collections::BTreeSet::new();
    for part in output.split(':').skip(1) {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        if digits.is_empty() || !part[digits.len()..].starts_with(']') {
            continue;
        }
        let Some(n) = digits.parse::<usize>().ok().filter(|n| *n > 0) else {
            continue;
        };
        let Some(line) = lines.get(n - 1).map(|l| l.trim()) else {
            continue;
        };
        let from = |l: &String| l == line || (l.ends_with(' ') && line.starts_with(l.as_str()));
        if let Some((option, _)) = given.iter().find(|(_, l)| from(l)) {
            if seen.insert(n) {
                out.push_str(&format!("\nline {n} comes from {option}: {line:?}"));
            }
        }
    }
    out
}

/// `haproxy -c -q` says nothing about why it rejects a file: check the same
/// text again without `-q` to have the reason.
pub(crate) fn explain_rejection(validate: &str, config_path: &str, text: &str) -> String {
    let loud: Vec<&str> = validate.split_whitespace().filter(|w| *w != "-q").collect();
    if loud.len() == validate.split_whitespace().count() {
        return String::new();
    }
    let dir = std::path::Path::new(config_path)
        .parent()
        .unwrap_or(std::path::Path::new("/tmp"));
    let Ok(mut tmp) = tempfile::Builder::new()
        .prefix(".haproxy-check.")
        .tempfile_in(dir)
    else {
        return String::new();
    };
    if std::io::Write::write_all(&mut tmp, text.as_bytes()).is_err() {
        return String::new();
    }
    match run_checker(&loud.join(" "), tmp.path()) {
        Err((_, output)) => output.replace(&tmp.path().display().to_string(), config_path),
        Ok(()) => String::new(),
    }
}
