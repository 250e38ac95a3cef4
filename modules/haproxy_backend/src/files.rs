//! Reading and writing the config file.

use std::os::unix::fs::PermissionsExt;

use ansible_module::config_file::{run_checker, ConfigError};
use ansible_module::{ConfigFile, Fail, Module};

use crate::params::Params;

pub(crate) fn read_config(path: &str) -> Result<Option<String>, Fail> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Fail::new(format!("reading {path}: {e}"))),
    }
}

/// Writes the config (validated, atomically); `private` makes it root-only,
/// for a file that holds the stats password.
pub(crate) fn write_config(
    m: &mut Module,
    p: &Params,
    text: &str,
    private: bool,
) -> Result<bool, Fail> {
    let out = ConfigFile::new(&p.config_path)
        .validate_with(p.validate.as_str())
        .mode(if private { 0o600 } else { 0o644 })
        .write(text, m.check_mode())
        .map_err(|e| {
            let mut msg = e.to_string();
            if let ConfigError::Rejected { output, .. } = &e {
                if output.trim().is_empty() {
                    msg.push_str(&explain_rejection(&p.validate, &p.config_path, text));
                }
            }
            Fail::new(msg)
        })?;
    let mut changed = out.changed;
    if out.changed {
        m.add_diff(out.diff);
    }
    if private {
        if let Ok(meta) = std::fs::metadata(&p.config_path) {
            if meta.permissions().mode() & 0o077 != 0 {
                changed = true;
                if !m.check_mode() {
                    std::fs::set_permissions(
                        &p.config_path,
                        std::fs::Permissions::from_mode(0o600),
                    )
                    .map_err(|e| Fail::new(format!("chmod 0600 {}: {e}", p.config_path)))?;
                }
            }
        }
    }
    Ok(changed)
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
