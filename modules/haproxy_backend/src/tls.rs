//! The certificate HAProxy serves over HTTPS (`frontend.tls`): a PEM with
//! the certificate chain and its private key, at `frontend.tls.certificate`.
//!
//! Given as `certificate_content`, the module writes it there (0600 from its
//! first byte, through the same validated, atomic write as every file), so a
//! rotation is one task run: the config is checked by `haproxy -c` with the
//! new file in place, HAProxy reloaded, and the old bytes put back if either
//! fails. Given only as a path, the file is the caller's; the module reads it
//! to notice a change (see `applied`), never to show it. The diff and every
//! message describe a certificate by count and fingerprint; key material is
//! masked wherever it could appear.

use std::os::unix::fs::MetadataExt;

use ansible_module::config_file::resolve_target;
use ansible_module::{ConfigFile, Diff, Fail, Module};

use crate::applied::fingerprint;
use crate::files::{config_error, Undo};
use crate::params::Tls;

/// `(begin line, end line)` of each PEM block in `text`.
fn blocks(text: &str) -> Vec<(String, Vec<&str>)> {
    let mut out = vec![];
    let mut current: Option<(String, Vec<&str>)> = None;
    for line in text.lines().map(str::trim) {
        if let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            current = Some((label.to_string(), vec![line]));
        } else if let Some((label, mut lines)) = current.take() {
            lines.push(line);
            if line == format!("-----END {label}-----") {
                out.push((label, lines));
            } else {
                current = Some((label, lines));
            }
        }
    }
    out
}

fn is_key(label: &str) -> bool {
    label.ends_with("PRIVATE KEY")
}

/// `certificate_content`: PEM text holding at least one certificate and a
/// private key (HAProxy's `crt` file). The refusal never shows the value.
pub fn check_pem(option: &str, content: &str) -> Result<(), Fail> {
    if let Some(c) = content
        .chars()
        .find(|c| !(c.is_ascii_graphic() || c.is_ascii_whitespace()))
    {
        return Err(Fail::new(format!(
            "{option} must be PEM text (printable ASCII); it holds {}",
            ansible_module::syntax::show(c)
        )));
    }
    let found = blocks(content);
    let certs = found.iter().filter(|(l, _)| l == "CERTIFICATE").count();
    let keys = found.iter().filter(|(l, _)| is_key(l)).count();
    if certs == 0 || keys != 1 {
        return Err(Fail::new(format!(
            "{option} must hold a PEM certificate (and its chain) and exactly one private key, as HAProxy's crt file does; it holds {certs} certificate(s) and {keys} private key(s)"
        )));
    }
    if found.iter().any(|(l, _)| l == "ENCRYPTED PRIVATE KEY") {
        return Err(Fail::new(format!(
            "{option} holds an encrypted private key: HAProxy cannot ask for its passphrase at a reload; give the key unencrypted (the file is root-only)"
        )));
    }
    Ok(())
}

/// The key material in `text`: each private key block, and each of its lines
/// on its own, to be masked wherever it could appear.
pub fn key_material(text: &str) -> Vec<String> {
    let mut out = vec![];
    for (label, lines) in blocks(text) {
        if is_key(&label) {
            out.push(lines.join("\n"));
            out.extend(
                lines
                    .iter()
                    .filter(|l| !l.starts_with("-----") && l.len() >= 8)
                    .map(|l| l.to_string()),
            );
        }
    }
    out
}

/// A PEM as the diff shows it: how many certificates, a fingerprint of the
/// certificates (public), and whether a key is there (never the key).
pub fn describe(bytes: Option<&[u8]>) -> String {
    let Some(bytes) = bytes else {
        return String::new();
    };
    let text = String::from_utf8_lossy(bytes);
    let found = blocks(&text);
    let certs: Vec<String> = found
        .iter()
        .filter(|(l, _)| l == "CERTIFICATE")
        .map(|(_, lines)| lines.join("\n"))
        .collect();
    let keys = found.iter().filter(|(l, _)| is_key(l)).count();
    format!(
        "{} certificate(s), fingerprint {}\n{}\n",
        certs.len(),
        fingerprint(&certs.join("\n")),
        if keys > 0 {
            "private key: present (not shown)"
        } else {
            "private key: none in this file"
        }
    )
}

/// The certificate file of a run: what is there now, and what the run
/// writes (with `certificate_content`).
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub(crate) path: String,
    before: Option<Vec<u8>>,
    mode: u32,
    /// The content to write, ending in a newline.
    content: Option<String>,
}

impl Cert {
    /// Reads the file (never through a link another user controls) and
    /// masks its key material and the given content in everything the run
    /// returns. Without `certificate_content` the file must be there
    /// (check mode only warns: an earlier task may not have put it there yet).
    pub(crate) fn load(m: &mut Module, tls: &Tls) -> Result<Cert, Fail> {
        let path = tls.certificate.clone();
        let file = ConfigFile::new(&path);
        let before = file.read_current().map_err(config_error)?;
        let mode = resolve_target(std::path::Path::new(&path))
            .ok()
            .and_then(|t| std::fs::symlink_metadata(t).ok())
            .map_or(0o600, |meta| meta.mode() & 0o7777);
        if let Some(bytes) = &before {
            for secret in key_material(&String::from_utf8_lossy(bytes)) {
                m.hide(secret);
            }
        }
        let content = tls.certificate_content.as_ref().map(|c| {
            m.hide(c.clone());
            for secret in key_material(c) {
                m.hide(secret);
            }
            let mut c = c.trim_end().to_string();
            c.push('\n');
            c
        });
        if content.is_none() && before.is_none() {
            let msg = format!(
                "frontend.tls.certificate {path} does not exist on the load balancer: put the PEM (certificate chain and private key) there first, or give frontend.tls.certificate_content"
            );
            if !m.check_mode() {
                return Err(Fail::new(msg));
            }
            m.warn(msg);
        }
        Ok(Cert {
            path,
            before,
            mode,
            content,
        })
    }

    /// Whether this run writes new content (not only a mode).
    pub(crate) fn content_changes(&self) -> bool {
        self.content
            .as_ref()
            .is_some_and(|c| self.before.as_deref() != Some(c.as_bytes()))
    }

    /// Writes the content (root-only, 0600) when it differs or the file is
    /// not root-only; reports a diff that shows no key. Nothing is written in
    /// check mode. Returns whether the content changed.
    pub(crate) fn write(&self, m: &mut Module) -> Result<bool, Fail> {
        let Some(content) = &self.content else {
            return Ok(false);
        };
        let out = ConfigFile::new(&self.path)
            .private(0o600)
            .write(content, m.check_mode())
            .map_err(config_error)?;
        if out.changed {
            m.set_changed(true);
            m.add_diff(Diff::new(
                self.path.clone(),
                describe(self.before.as_deref()),
                describe(Some(content.as_bytes())),
            ));
        }
        Ok(self.content_changes())
    }

    /// How to put the file back as it was before this run.
    pub(crate) fn undo(&self) -> Undo {
        Undo {
            path: self.path.clone(),
            mode: self.mode,
            bytes: self.before.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ\nAbCdEf==\n-----END CERTIFICATE-----\n";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\nSeCrEtSeCrEt1234\n-----END PRIVATE KEY-----\n";

    #[test]
    fn a_pem_needs_a_certificate_and_one_key() {
        let both = format!("{CERT}{KEY}");
        assert!(check_pem("o", &both).is_ok());
        assert!(check_pem("o", &format!("{KEY}{CERT}{CERT}")).is_ok());
        for bad in [
            CERT.to_string(),
            KEY.to_string(),
            format!("{CERT}{KEY}{KEY}"),
            "not a pem".to_string(),
            format!("{CERT}-----BEGIN PRIVATE KEY-----\nabc\n"),
        ] {
            let e = check_pem("frontend.tls.certificate_content", &bad).expect_err(&bad);
            assert!(
                e.msg
                    .starts_with("frontend.tls.certificate_content must hold"),
                "{}",
                e.msg
            );
            assert!(!e.msg.contains("SeCrEt"), "{}", e.msg);
        }
        let e = check_pem("o", &format!("{CERT}{KEY}\u{0}")).expect_err("nul");
        assert!(e.msg.contains("U+0000") && !e.msg.contains("SeCrEt"));
        let enc = format!(
            "{CERT}-----BEGIN ENCRYPTED PRIVATE KEY-----\nabc\n-----END ENCRYPTED PRIVATE KEY-----\n"
        );
        assert!(check_pem("o", &enc)
            .expect_err("encrypted")
            .msg
            .contains("passphrase"));
    }

    #[test]
    fn the_description_shows_no_key() {
        let both = format!("{CERT}{KEY}");
        let d = describe(Some(both.as_bytes()));
        assert!(d.starts_with("1 certificate(s), fingerprint "), "{d}");
        assert!(d.contains("private key: present (not shown)"), "{d}");
        assert!(!d.contains("SeCrEt") && !d.contains("MIG"), "{d}");
        assert_eq!(describe(None), "");
        // Same certificate, another key: the same public fingerprint.
        let other = format!("{CERT}{}", KEY.replace("SeCrEt", "Other"));
        assert_eq!(d, describe(Some(other.as_bytes())));
        let material = key_material(&both);
        assert!(material.iter().any(|s| s.contains("SeCrEtSeCrEt1234")));
        assert!(material.iter().all(|s| !s.contains("CERTIFICATE")));
    }
}
