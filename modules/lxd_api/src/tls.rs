//! TLS for LXD's HTTPS listener: a client certificate, and the server
//! certificate either pinned (by file or SHA-256 fingerprint, the way `lxc remote
//! add` trusts a server) or verified against the public web PKI. There is no
//! mode that accepts any certificate.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// How to authenticate to an HTTPS LXD and how to trust it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM client certificate. Default: the `lxc` client's own
    /// (`~/.config/lxc/client.crt`, or the snap's), when it exists.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of the client certificate.
    pub client_key: Option<PathBuf>,
    /// PEM file holding the server's certificate (what `lxc remote add` stores
    /// in `servercerts/<remote>.crt`): only that exact certificate is accepted.
    pub server_cert: Option<PathBuf>,
    /// SHA-256 of the server certificate (DER), hex, colons and case ignored,
    /// optional `sha256:` prefix; `lxc info` and `lxc remote add` print it.
    pub server_cert_fingerprint: Option<String>,
}

impl TlsOptions {
    /// From a module's options (`client_cert`, `client_key`, `server_cert`,
    /// `server_cert_fingerprint`), where an empty string is the option not
    /// given (as a playbook's `default(omit, true)` leaves it).
    pub fn from_options(
        client_cert: Option<&str>,
        client_key: Option<&str>,
        server_cert: Option<&str>,
        server_cert_fingerprint: Option<&str>,
    ) -> TlsOptions {
        fn given(v: Option<&str>) -> Option<&str> {
            v.filter(|s| !s.is_empty())
        }
        TlsOptions {
            client_cert: given(client_cert).map(PathBuf::from),
            client_key: given(client_key).map(PathBuf::from),
            server_cert: given(server_cert).map(PathBuf::from),
            server_cert_fingerprint: given(server_cert_fingerprint).map(str::to_string),
        }
    }
}

/// SHA-256 of a DER certificate as lowercase hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// SHA-256 of the first certificate in a PEM file.
pub fn fingerprint_of_pem_file(path: &Path) -> Result<String> {
    let cert = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Config(format!("cannot read certificate {}: {e}", path.display())))?
        .next()
        .ok_or_else(|| {
            Error::Config(format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ))
        })?
        .map_err(|e| Error::Config(format!("cannot parse certificate {}: {e}", path.display())))?;
    Ok(fingerprint(cert.as_ref()))
}

/// `sha256:AB:CD...` -> `abcd...`: the 64 lower-case hex digits of a SHA-256
/// fingerprint however it was written; `None` unless it is one.
pub fn fingerprint_hex(fp: &str) -> Option<String> {
    let t = fp.trim();
    let t = t
        .strip_prefix("sha256:")
        .or_else(|| t.strip_prefix("SHA256:"))
        .unwrap_or(t);
    let hex: String = t
        .chars()
        .filter(|c| *c != ':' && !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase();
    (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then_some(hex)
}

fn normalize_fingerprint(fp: &str) -> Result<String> {
    fingerprint_hex(fp).ok_or_else(|| {
        Error::Config(format!(
            "server_cert_fingerprint must be the 64 hex digits of a SHA-256 fingerprint, got {fp:?}"
        ))
    })
}

/// What went wrong in the last handshake, kept so the client can name it
/// (the TLS stack reduces it to a generic error on the way up).
pub(crate) type HandshakeNote = Arc<Mutex<Option<String>>>;

#[derive(Debug)]
struct PinnedVerifier {
    pin: String,
    source: String,
    provider: Arc<CryptoProvider>,
    note: HandshakeNote,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        let got = fingerprint(end_entity.as_ref());
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            let msg = format!(
                "the server's certificate (sha256 {got}) does not match the pinned {} (sha256 {})",
                self.source, self.pin
            );
            if let Ok(mut n) = self.note.lock() {
                *n = Some(msg.clone());
            }
            Err(rustls::Error::General(msg))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn home_candidates() -> Vec<(PathBuf, PathBuf)> {
    let mut out = vec![];
    if let Some(conf) = std::env::var_os("LXD_CONF") {
        let d = PathBuf::from(conf);
        out.push((d.join("client.crt"), d.join("client.key")));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let h = PathBuf::from(home);
        for d in [
            h.join(".config/lxc"),
            h.join("snap/lxd/common/config"),
            h.join("snap/lxd/current/.config/lxc"),
        ] {
            out.push((d.join("client.crt"), d.join("client.key")));
        }
    }
    out
}

pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration for `opts`; `https` says whether TLS is
/// actually used (for the unix socket a plain default config is returned).
pub(crate) fn client_config(
    opts: &TlsOptions,
    https: bool,
) -> Result<(ClientConfig, HandshakeNote)> {
    let note: HandshakeNote = Arc::new(Mutex::new(None));
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("TLS set-up failed: {e}")))?;

    let pin = match (&opts.server_cert, &opts.server_cert_fingerprint) {
        (None, None) => None,
        (Some(file), None) => Some((
            fingerprint_of_pem_file(file)?,
            format!("certificate {}", file.display()),
        )),
        (None, Some(fp)) => Some((normalize_fingerprint(fp)?, "fingerprint".to_string())),
        (Some(file), Some(fp)) => {
            let a = fingerprint_of_pem_file(file)?;
            let b = normalize_fingerprint(fp)?;
            if a != b {
                return Err(Error::Config(format!(
                    "server_cert {} (sha256 {a}) and server_cert_fingerprint ({b}) name different certificates",
                    file.display()
                )));
            }
            Some((a, format!("certificate {}", file.display())))
        }
    };

    let builder = match pin {
        Some((pin, source)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier {
                pin,
                source,
                provider,
                note: note.clone(),
            })),
        None => {
            let mut roots = RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots)
        }
    };

    if !https {
        return Ok((builder.with_no_client_auth(), note));
    }

    let pair = match (&opts.client_cert, &opts.client_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Config(
                "client_cert and client_key go together: give both or neither".into(),
            ))
        }
        (None, None) => home_candidates()
            .into_iter()
            .find(|(c, k)| c.is_file() && k.is_file()),
    };
    let config = match pair {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot read client certificate {}: {e}",
                        cert.display()
                    ))
                })?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    Error::Config(format!(
                        "cannot parse client certificate {}: {e}",
                        cert.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(Error::Config(format!(
                    "client certificate {} holds no PEM certificate",
                    cert.display()
                )));
            }
            let key_der = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
                Error::Config(format!(
                    "cannot read client key {} (PEM private key expected): {e}",
                    key.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                Error::Config(format!(
                    "client certificate {} and key {} do not fit together: {e}",
                    cert.display(),
                    key.display()
                ))
            })?
        }
    };
    Ok((config, note))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_normalized() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(
            normalize_fingerprint(&format!("sha256:{fp}")).ok(),
            Some("ab".repeat(32))
        );
        assert!(normalize_fingerprint("abcd").is_err());
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn half_a_client_identity_is_refused() {
        let opts = TlsOptions {
            client_cert: Some("/nonexistent.crt".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&opts, true).err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("client_cert and client_key go together: give both or neither")
        );
    }

    #[test]
    fn missing_pin_file_is_a_config_error() {
        let opts = TlsOptions {
            server_cert: Some("/nonexistent/server.crt".into()),
            ..TlsOptions::default()
        };
        let err = client_config(&opts, true).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("cannot read certificate /nonexistent/server.crt")),
            "{err:?}"
        );
    }
}
