//! The module's options and the checks that turn them into a [`Site`]: every
//! value that ends up in Apache's configuration is checked here, before anything
//! on the host is touched.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The argument spec, in the shape of a Python module's `argument_spec`.
pub const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str", "required": true},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "port": {"type": "int", "default": 80},
    "listen_address": {"type": "str"},
    "server_name": {"type": "str"},
    "server_aliases": {"type": "list", "elements": "str", "default": []},
    "document_root": {"type": "path"},
    "allowed_roots": {"type": "list", "elements": "path", "default": ["/var/www", "/srv"]},
    "index_content": {"type": "str"},
    "manage_index": {"type": "bool", "default": true},
    "trusted_proxies": {"type": "list", "elements": "str", "default": []},
    "proxy_trust": {"type": "str", "default": "internal", "choices": ["internal", "trusted"]},
    "health_check": {
      "type": "dict",
      "apply_defaults": true,
      "options": {
        "method": {"type": "str", "default": "OPTIONS"},
        "path": {"type": "str", "default": "/"},
        "log": {"type": "bool", "default": false}
      }
    },
    "enabled": {"type": "bool", "default": true},
    "modules": {"type": "list", "elements": "str", "default": []},
    "default_site": {"type": "str", "default": "auto", "choices": ["auto", "disable", "keep"]},
    "access_log": {"type": "str", "default": "${APACHE_LOG_DIR}/access.log"},
    "error_log": {"type": "str", "default": "${APACHE_LOG_DIR}/error.log"},
    "extra_config": {"type": "str"}
  },
  "supports_check_mode": true
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProxyTrust {
    /// `RemoteIPInternalProxy`: the proxies may report private client addresses.
    Internal,
    /// `RemoteIPTrustedProxy`: private addresses in the header are not believed.
    Trusted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultSite {
    Auto,
    Disable,
    Keep,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthCheckParams {
    pub method: Option<String>,
    pub path: Option<String>,
    pub log: Option<bool>,
}

/// The validated options, as Ansible's argument validation leaves them.
#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub name: String,
    pub state: State,
    pub port: i64,
    pub listen_address: Option<String>,
    pub server_name: Option<String>,
    #[serde(default)]
    pub server_aliases: Vec<String>,
    pub document_root: Option<String>,
    #[serde(default)]
    pub allowed_roots: Vec<String>,
    pub index_content: Option<String>,
    pub manage_index: bool,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub proxy_trust: ProxyTrust,
    pub health_check: Option<HealthCheckParams>,
    pub enabled: bool,
    #[serde(default)]
    pub modules: Vec<String>,
    pub default_site: DefaultSite,
    pub access_log: String,
    pub error_log: String,
    pub extra_config: Option<String>,
}

/// Where Apache listens for the site: `None` address means every address (`*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    pub address: Option<IpAddr>,
    pub port: u16,
}

impl Listen {
    /// As Apache writes it in `Listen` and `<VirtualHost>`: `80`, `10.0.0.5:80`,
    /// `[fd00::5]:80`.
    pub fn listen_arg(&self) -> String {
        match self.address {
            None => self.port.to_string(),
            Some(IpAddr::V4(a)) => format!("{a}:{}", self.port),
            Some(IpAddr::V6(a)) => format!("[{a}]:{}", self.port),
        }
    }

    pub fn vhost_arg(&self) -> String {
        match self.address {
            None => format!("*:{}", self.port),
            Some(_) => self.listen_arg(),
        }
    }
}

/// A proxy address or network, kept as the user wrote it once it parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub method: String,
    pub path: String,
    pub log: bool,
}

/// The site the user asked for, every value checked.
#[derive(Debug, Clone)]
pub struct Site {
    pub name: String,
    pub state: State,
    pub listen: Listen,
    pub server_name: Option<String>,
    pub server_aliases: Vec<String>,
    pub document_root: PathBuf,
    pub index_content: Option<String>,
    pub manage_index: bool,
    pub trusted_proxies: Vec<Proxy>,
    pub proxy_trust: ProxyTrust,
    pub health_check: HealthCheck,
    pub enabled: bool,
    pub modules: Vec<String>,
    pub default_site: DefaultSite,
    pub access_log: String,
    pub error_log: String,
    pub extra_config: Option<String>,
}

/// A bad option value; the message names the option and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidInput(pub String);

fn bad(msg: String) -> InvalidInput {
    InvalidInput(msg)
}

/// Characters allowed in paths written into the configuration: no quotes,
/// spaces, `$` (variable expansion) or control characters.
fn safe_path_chars(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/@+~".contains(c))
}

fn check_name(name: &str) -> Result<(), InvalidInput> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if name.is_empty() || !ok_chars || name.starts_with(['.', '-']) {
        return Err(bad(format!(
            "name must be a site name of letters, digits, '.', '_' and '-' (not starting with '.' or '-'), got: {name:?}"
        )));
    }
    if name.ends_with(".conf") {
        return Err(bad(format!(
            "name is the site name without .conf (the file is sites-available/<name>.conf), got: {name:?}"
        )));
    }
    Ok(())
}

fn check_port(port: i64) -> Result<u16, InvalidInput> {
    u16::try_from(port)
        .ok()
        .filter(|p| *p >= 1)
        .ok_or_else(|| bad(format!("port must be between 1 and 65535, got: {port}")))
}

fn check_listen_address(addr: Option<&str>) -> Result<Option<IpAddr>, InvalidInput> {
    match addr.map(str::trim) {
        None | Some("" | "*") => Ok(None),
        Some(a) => a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(Some)
            .map_err(|_| {
                bad(format!(
                    "listen_address must be an IPv4 or IPv6 address or '*', got: {a:?}"
                ))
            }),
    }
}

/// A DNS name (or `*` wildcards in labels, as `ServerAlias` allows).
fn check_host_name(option: &str, value: &str, wildcard: bool) -> Result<(), InvalidInput> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (wildcard && "*?".contains(c)))
    };
    let ok = !value.is_empty() && value.len() <= 253 && value.split('.').all(label_ok);
    if ok {
        Ok(())
    } else {
        Err(bad(format!(
            "{option} must be a host name (letters, digits, '-' and '.'), got: {value:?}"
        )))
    }
}

/// An IPv4/IPv6 address or network in CIDR notation.
pub fn parse_proxy(value: &str) -> Result<Proxy, InvalidInput> {
    let v = value.trim();
    let invalid = || {
        bad(format!(
            "trusted_proxies entries must be IP addresses or networks (10.231.0.11, 10.231.0.0/24, fd00::/64), got: {value:?}"
        ))
    };
    let (addr, prefix) = match v.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (v, None),
    };
    let ip: IpAddr = addr.parse().map_err(|_| invalid())?;
    if let Some(p) = prefix {
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits: u8 = p
            .parse()
            .ok()
            .filter(|b| *b <= max && p.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(invalid)?;
        return Ok(Proxy(format!("{ip}/{bits}")));
    }
    Ok(Proxy(ip.to_string()))
}

fn check_health_check(p: Option<&HealthCheckParams>) -> Result<HealthCheck, InvalidInput> {
    let method = p
        .and_then(|h| h.method.clone())
        .unwrap_or_else(|| "OPTIONS".into());
    let path = p.and_then(|h| h.path.clone()).unwrap_or_else(|| "/".into());
    let log = p.and_then(|h| h.log).unwrap_or(false);
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(bad(format!(
            "health_check.method must be an HTTP method in capitals (OPTIONS, HEAD, GET), got: {method:?}"
        )));
    }
    let (p, query) = path.split_once('?').unwrap_or((&path, ""));
    let path_ok = p.starts_with('/')
        && p.chars()
            .all(|c| c.is_ascii_graphic() && !"'\"\\#%".contains(c))
        && query
            .chars()
            .all(|c| c.is_ascii_graphic() && !"'\"\\#?".contains(c));
    if !path_ok {
        return Err(bad(format!(
            "health_check.path must be a URL path starting with '/' (a query string may follow '?') without quotes, spaces or '#', got: {path:?}"
        )));
    }
    Ok(HealthCheck { method, path, log })
}

fn check_module_name(name: &str) -> Result<String, InvalidInput> {
    let n = name.trim();
    let n = n.strip_prefix("mod_").unwrap_or(n);
    let n = n.strip_suffix(".load").unwrap_or(n);
    if n.is_empty()
        || !n
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(bad(format!(
            "modules entries must be Apache module names as a2enmod takes them (rewrite, headers, proxy_http), got: {name:?}"
        )));
    }
    Ok(n.to_string())
}

fn check_log_target(option: &str, value: &str) -> Result<(), InvalidInput> {
    let rest = value
        .strip_prefix("${APACHE_LOG_DIR}/")
        .or_else(|| value.strip_prefix('/'));
    match rest {
        Some(r) if !r.is_empty() && safe_path_chars(r) && !r.split('/').any(|c| c == "..") => {
            Ok(())
        }
        _ => Err(bad(format!(
            "{option} must be an absolute path or start with ${{APACHE_LOG_DIR}}/, without spaces, quotes or '..', got: {value:?}"
        ))),
    }
}

/// A clean absolute path: no `.`/`..` components, nothing Apache would expand.
fn clean_absolute(option: &str, value: &str) -> Result<PathBuf, InvalidInput> {
    let p = Path::new(value);
    if !p.is_absolute() {
        return Err(bad(format!(
            "{option} must be an absolute path, got: {value:?}"
        )));
    }
    if !safe_path_chars(value) {
        return Err(bad(format!(
            "{option} may hold only letters, digits and ._-/@+~ (it is written into the Apache configuration), got: {value:?}"
        )));
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(bad(format!(
                    "{option} must not contain '..', got: {value:?}"
                )))
            }
        }
    }
    Ok(out)
}

/// The document root must lie strictly below one of the allowed roots, also
/// after resolving the symlinks of the part that already exists (so a link
/// inside /var/www cannot point the site at /etc).
pub fn check_document_root(root: &Path, allowed: &[PathBuf]) -> Result<(), InvalidInput> {
    let under = |p: &Path, roots: &[PathBuf]| roots.iter().any(|r| p.starts_with(r) && p != r);
    let list = || {
        allowed
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !under(root, allowed) {
        return Err(bad(format!(
            "document_root {} is outside the allowed roots ({}); put the site below one of them or extend allowed_roots",
            root.display(),
            list()
        )));
    }
    let resolved = resolve_existing(root);
    let allowed_resolved: Vec<PathBuf> = allowed.iter().map(|r| resolve_existing(r)).collect();
    if !under(&resolved, &allowed_resolved) {
        return Err(bad(format!(
            "document_root {} resolves to {} through a symbolic link, which is outside the allowed roots ({})",
            root.display(),
            resolved.display(),
            list()
        )));
    }
    Ok(())
}

/// Canonicalises the longest existing prefix of `p` and appends the rest.
fn resolve_existing(p: &Path) -> PathBuf {
    let mut existing = p.to_path_buf();
    let mut rest = Vec::new();
    loop {
        if let Ok(c) = existing.canonicalize() {
            let mut out = c;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return out;
        }
        match (
            existing.file_name().map(|n| n.to_os_string()),
            existing.parent(),
        ) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                existing = parent.to_path_buf();
            }
            _ => return p.to_path_buf(),
        }
    }
}

impl Params {
    /// Checks every option; the first problem is returned, nothing is touched.
    pub fn into_site(self) -> Result<Site, InvalidInput> {
        check_name(&self.name)?;
        let port = check_port(self.port)?;
        let address = check_listen_address(self.listen_address.as_deref())?;
        if let Some(s) = &self.server_name {
            check_host_name("server_name", s, false)?;
        }
        for a in &self.server_aliases {
            check_host_name("server_aliases", a, true)?;
        }
        let allowed = self
            .allowed_roots
            .iter()
            .map(|r| clean_absolute("allowed_roots", r))
            .collect::<Result<Vec<_>, _>>()?;
        if allowed.iter().any(|r| r == Path::new("/")) {
            return Err(bad(
                "allowed_roots must not contain / (that would allow any directory)".into(),
            ));
        }
        let document_root = match &self.document_root {
            Some(d) => clean_absolute("document_root", d)?,
            None => PathBuf::from("/var/www").join(&self.name),
        };
        if self.state == State::Present {
            check_document_root(&document_root, &allowed)?;
        }
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| parse_proxy(p))
            .collect::<Result<Vec<_>, _>>()?;
        let health_check = check_health_check(self.health_check.as_ref())?;
        let mut modules = Vec::new();
        for m in &self.modules {
            let m = check_module_name(m)?;
            if !modules.contains(&m) {
                modules.push(m);
            }
        }
        check_log_target("access_log", &self.access_log)?;
        check_log_target("error_log", &self.error_log)?;
        Ok(Site {
            name: self.name,
            state: self.state,
            listen: Listen { address, port },
            server_name: self.server_name,
            server_aliases: self.server_aliases,
            document_root,
            index_content: self.index_content,
            manage_index: self.manage_index,
            trusted_proxies,
            proxy_trust: self.proxy_trust,
            health_check,
            enabled: self.enabled,
            modules,
            default_site: self.default_site,
            access_log: self.access_log,
            error_log: self.error_log,
            extra_config: self.extra_config,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: serde_json::Value) -> Params {
        let mut base = serde_json::json!({
            "name": "web", "state": "present", "port": 80, "listen_address": null,
            "server_name": null, "server_aliases": [], "document_root": null,
            "allowed_roots": ["/var/www", "/srv"], "index_content": null,
            "manage_index": true, "trusted_proxies": [], "proxy_trust": "internal",
            "health_check": {"method": "OPTIONS", "path": "/", "log": false},
            "enabled": true, "modules": [], "default_site": "auto",
            "access_log": "${APACHE_LOG_DIR}/access.log",
            "error_log": "${APACHE_LOG_DIR}/error.log", "extra_config": null
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).expect("params")
    }

    fn err(extra: serde_json::Value) -> String {
        params(extra).into_site().expect_err("should fail").0
    }

    #[test]
    fn defaults_make_a_site_under_var_www() {
        let site = params(serde_json::json!({})).into_site().expect("site");
        assert_eq!(site.document_root, PathBuf::from("/var/www/web"));
        assert_eq!(site.listen.vhost_arg(), "*:80");
        assert_eq!(site.health_check.method, "OPTIONS");
    }

    #[test]
    fn document_root_outside_allowed_roots_is_refused() {
        let e = err(serde_json::json!({"document_root": "/etc/apache2"}));
        assert!(
            e.contains("outside the allowed roots (/var/www, /srv)"),
            "{e}"
        );
        let e = err(serde_json::json!({"document_root": "/var/www/../etc"}));
        assert!(e.contains("'..'"), "{e}");
        let e = err(serde_json::json!({"document_root": "/var/www"}));
        assert!(e.contains("outside the allowed roots"), "{e}");
        let e = err(serde_json::json!({"document_root": "/var/www/a b"}));
        assert!(e.contains("may hold only"), "{e}");
        assert!(params(serde_json::json!({"document_root": "/srv/site/"}))
            .into_site()
            .is_ok());
    }

    #[test]
    fn symlink_escaping_the_allowed_root_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        std::fs::create_dir(&root).expect("mkdir");
        std::os::unix::fs::symlink("/etc", root.join("evil")).expect("symlink");
        let e = check_document_root(&root.join("evil/site"), std::slice::from_ref(&root))
            .expect_err("escape");
        assert!(e.0.contains("through a symbolic link"), "{e}");
        assert!(check_document_root(&root.join("good/site"), &[root]).is_ok());
    }

    #[test]
    fn port_range_is_checked() {
        assert_eq!(
            err(serde_json::json!({"port": 70000})),
            "port must be between 1 and 65535, got: 70000"
        );
        assert!(err(serde_json::json!({"port": 0})).contains("between 1 and 65535"));
    }

    #[test]
    fn proxies_must_be_addresses_or_networks() {
        assert_eq!(
            parse_proxy("10.231.0.0/24").expect("net"),
            Proxy("10.231.0.0/24".into())
        );
        assert_eq!(
            parse_proxy(" fd00::1 ").expect("v6"),
            Proxy("fd00::1".into())
        );
        for bad in [
            "lb-01",
            "10.0.0.300",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "",
            "1.2.3.4 5.6.7.8",
        ] {
            assert!(parse_proxy(bad).is_err(), "{bad} accepted");
        }
        let e = err(serde_json::json!({"trusted_proxies": ["10.231.0.11", "evil host"]}));
        assert!(e.contains("\"evil host\""), "{e}");
    }

    #[test]
    fn names_and_modules_are_checked() {
        assert!(err(serde_json::json!({"name": "../x"})).contains("site name"));
        assert!(err(serde_json::json!({"name": "x.conf"})).contains("without .conf"));
        assert!(err(serde_json::json!({"modules": ["re write"]})).contains("a2enmod"));
        let site = params(serde_json::json!({"modules": ["mod_headers", "headers", "rewrite"]}))
            .into_site()
            .expect("site");
        assert_eq!(site.modules, vec!["headers", "rewrite"]);
    }

    #[test]
    fn listen_address_and_health_check_are_checked() {
        let site = params(serde_json::json!({"listen_address": "fd00::5", "port": 8080}))
            .into_site()
            .expect("site");
        assert_eq!(site.listen.listen_arg(), "[fd00::5]:8080");
        assert!(err(serde_json::json!({"listen_address": "web-01"})).contains("listen_address"));
        assert!(
            err(serde_json::json!({"health_check": {"method": "opt ions"}})).contains("method")
        );
        assert!(err(serde_json::json!({"health_check": {"path": "/x'y"}})).contains("path"));
        assert!(err(serde_json::json!({"health_check": {"path": "health"}})).contains("path"));
        assert!(
            params(serde_json::json!({"health_check": {"path": "/health?full=1"}}))
                .into_site()
                .is_ok()
        );
        assert!(err(serde_json::json!({"access_log": "/var/log/../x"})).contains("access_log"));
    }
}
