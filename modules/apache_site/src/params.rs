//! The module's options and the checks that turn them into a [`Site`]: every
//! value that ends up in Apache's configuration is checked here, before anything
//! on the host is touched.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use ansible_module::syntax::{self, show};
use serde::Deserialize;

use crate::conf::{self, Item};

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
    "extra_config": {"type": "str"},
    "unneeded_services": {"type": "list", "elements": "str", "default": []},
    "services_only": {"type": "bool", "default": false}
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

/// Debian's `APACHE_LOG_DIR`.
pub const LOG_DIR: &str = "/var/log/apache2";

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
    /// Services stopped and disabled (a web node does not run them).
    #[serde(default)]
    pub unneeded_services: Vec<String>,
    /// Only the services: Apache running and enabled, `unneeded_services`
    /// stopped; the site's files are compared, not written.
    #[serde(default)]
    pub services_only: bool,
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

fn from_fail(f: ansible_module::Fail) -> InvalidInput {
    InvalidInput(f.msg)
}

// One function per place a value lands; the checks in `Params::into_site` and
// the rendering in `render` both go through them.

/// The site name: the file name `sites-available/<name>.conf`, the tag in
/// ports.conf and the comment at the top of the vhost.
pub fn site_name(name: &str) -> Result<&str, InvalidInput> {
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
    Ok(name)
}

/// A path as the one double-quoted argument of `DocumentRoot` and
/// `<Directory>`: a clean absolute path (see [`clean_absolute`]), quoted by
/// `syntax::apache_quoted`.
pub fn quoted_path(option: &str, path: &Path) -> Result<String, InvalidInput> {
    let text = path.to_str().ok_or_else(|| {
        bad(format!(
            "{option} must be valid UTF-8, got: {:?}",
            path.display()
        ))
    })?;
    let clean = clean_absolute(option, text)?;
    if clean.as_os_str() != path.as_os_str() {
        return Err(bad(format!(
            "{option} must be written without '.', '//' or a trailing '/', got: {text:?}"
        )));
    }
    syntax::apache_quoted(option, text).map_err(from_fail)
}

/// The variable Debian's envvars sets to the log directory.
pub const LOG_DIR_VAR: &str = "${APACHE_LOG_DIR}";

/// A log target as the first argument of `ErrorLog` and `CustomLog`: `${APACHE_LOG_DIR}`
/// followed by a clean absolute path, or a clean absolute path (the rules of
/// [`clean_absolute`]; it stays unquoted as Debian writes it, so it holds no
/// blank, quote or `$` either). Returns the normalised target.
pub fn log_target(option: &str, value: &str) -> Result<String, InvalidInput> {
    let refuse = || {
        bad(format!(
            "{option} must be an absolute path or start with ${{APACHE_LOG_DIR}}/, without spaces, quotes or '..', got: {value:?}"
        ))
    };
    let (prefix, rest) = match value.strip_prefix(LOG_DIR_VAR) {
        Some(rest) => (LOG_DIR_VAR, rest),
        None => ("", value),
    };
    if !rest.starts_with('/') || rest.split('/').any(|c| c == "..") {
        return Err(refuse());
    }
    let clean = clean_absolute(option, rest).map_err(|_| refuse())?;
    let clean = clean.to_str().ok_or_else(refuse)?;
    if clean == "/" || !safe_path_chars(clean) {
        return Err(refuse());
    }
    syntax::apache_quoted(option, clean).map_err(from_fail)?;
    Ok(format!("{prefix}{clean}"))
}

/// A literal between single quotes in the `SetEnvIfExpr "..."` expression:
/// printable ASCII without either quote, backslash (an escape), `$` (a
/// back-reference), `{` `}` `#` or backtick, and `%` only as a `%XX` escape
/// (`%{VAR}` would be a variable).
pub fn expr_literal<'a>(option: &str, value: &'a str) -> Result<&'a str, InvalidInput> {
    let bytes = value.as_bytes();
    let hex = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_hexdigit);
    for (i, c) in value.char_indices() {
        let ok = (c.is_ascii_graphic() && !"'\"\\$%{}#`".contains(c))
            || (c == '%' && hex(i + 1) && hex(i + 2));
        if !ok {
            return Err(bad(format!(
                "{option} must not contain {} (it is matched inside a quoted Apache expression), got: {value:?}",
                show(c)
            )));
        }
    }
    Ok(value)
}

/// `extra_config`: raw directives by design, but they stay inside the site's
/// `<VirtualHost>`. Refused: NUL, CR and other control characters except tab
/// and newline, U+0085/U+2028/U+2029; a line that opens or closes a
/// `<VirtualHost>`, closes a section it did not open, or leaves one open; a
/// `${...}` in a line's first word (Apache expands it before reading the
/// line); a backslash at the end (Apache would join `</VirtualHost>` to that
/// line); `<Macro>` and a `Use` argument with `<` or `>` (a macro expands into
/// lines). `apachectl configtest` judges the rest.
pub fn check_extra_config(value: &str) -> Result<(), InvalidInput> {
    let refuse = |line: usize, why: String| {
        bad(format!(
            "extra_config line {line}: {why}; extra_config stays inside the site's <VirtualHost>"
        ))
    };
    if let Some(c) = value.chars().find(|c| {
        (c.is_control() && !matches!(c, '\n' | '\t')) || matches!(c, '\u{2028}' | '\u{2029}')
    }) {
        return Err(bad(format!(
            "extra_config must not contain {} (only tabs and newlines among control and line-separator characters), got: {value:?}",
            show(c)
        )));
    }
    let mut rendered = crate::render::extra_lines(value).join("\n");
    rendered.push('\n');
    let (lines, open_end) = conf::logical_lines(&rendered);
    if open_end {
        return Err(refuse(
            lines.last().map_or(1, |l| l.number + 1),
            "it ends with a backslash, which would join the closing </VirtualHost> to it".into(),
        ));
    }
    let mut open: Vec<(String, usize)> = Vec::new();
    for line in &lines {
        let n = line.number + 1;
        let (first, _) = conf::getword_conf(&line.text);
        if !line.text.starts_with('#') && first.contains("${") {
            return Err(refuse(
                n,
                format!("the first word {first:?} holds a ${{...}} variable, which Apache expands before it reads the line"),
            ));
        }
        match conf::item(&line.text) {
            Item::Open(name, _) => {
                if name.eq_ignore_ascii_case("VirtualHost") || name.eq_ignore_ascii_case("Macro") {
                    return Err(refuse(n, format!("<{name}> is not allowed inside a site")));
                }
                open.push((name, n));
            }
            Item::Close(None) => {
                return Err(refuse(n, format!("{first:?} is a closing tag without '>'")));
            }
            Item::Close(Some(name)) => match open.pop() {
                Some((o, _)) if o.eq_ignore_ascii_case(&name) => {}
                Some((o, at)) => {
                    return Err(refuse(
                        n,
                        format!("</{name}> does not close <{o}> of line {at}"),
                    ))
                }
                None => {
                    return Err(refuse(
                        n,
                        format!("</{name}> closes a section extra_config did not open"),
                    ))
                }
            },
            Item::Directive(name, args)
                if name.eq_ignore_ascii_case("Use")
                    && args.iter().any(|a| a.contains(['<', '>'])) =>
            {
                return Err(refuse(
                    n,
                    "a macro argument with '<' or '>' could open or close a section".into(),
                ));
            }
            _ => {}
        }
    }
    match open.pop() {
        Some((name, at)) => Err(refuse(at, format!("<{name}> is not closed"))),
        None => Ok(()),
    }
}

/// Whether a user other than root and us owns the file `meta` describes.
fn foreign_owner(meta: &fs::Metadata) -> bool {
    meta.uid() != 0 && meta.uid() != euid()
}

fn euid() -> u32 {
    // The process's own /proc entry is owned by its effective uid.
    fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(0)
}

/// Whether a user other than root and us can change the entries of the
/// directory `meta` describes (sticky or not: a name that does not exist yet
/// can be taken by anyone there).
fn others_can_write(meta: &fs::Metadata) -> bool {
    foreign_owner(meta) || (meta.mode() & 0o020 != 0 && meta.gid() != 0) || meta.mode() & 0o002 != 0
}

/// Apache opens its log files as root and follows links: a log file in a
/// directory another user can write (or reached through a link another user
/// can change) could be a link they planted to any file on the host. Walks
/// `path` as the kernel resolves it; parts that do not exist yet are fine
/// below a directory only root can write.
pub fn check_log_location(option: &str, path: &Path) -> Result<(), InvalidInput> {
    let unsafe_dir = |dir: &Path, meta: &fs::Metadata| {
        bad(format!(
            "{option} {}: {} can be changed by other users (mode {:o}, owner {}); Apache opens its logs as root and would follow a link planted there, so put the log in a directory only root can write",
            path.display(),
            dir.display(),
            meta.mode() & 0o7777,
            meta.uid()
        ))
    };
    let trusted = |dir: &Path| -> Result<(), InvalidInput> {
        match fs::metadata(dir) {
            Ok(meta) if others_can_write(&meta) => Err(unsafe_dir(dir, &meta)),
            _ => Ok(()),
        }
    };
    let mut pending: Vec<std::ffi::OsString> = path
        .components()
        .rev()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            _ => None,
        })
        .collect();
    let mut cur = PathBuf::from("/");
    let mut links = 0;
    while let Some(name) = pending.pop() {
        if name == ".." {
            cur.pop();
            continue;
        }
        let next = cur.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(m) => m,
            // Nothing further exists: whoever can write `cur` decides the rest.
            Err(_) => return trusted(&cur),
        };
        if meta.file_type().is_symlink() {
            trusted(&cur)?;
            if foreign_owner(&meta) {
                return Err(unsafe_dir(&next, &meta));
            }
            links += 1;
            let target = fs::read_link(&next).map_err(|e| {
                bad(format!(
                    "{option}: reading the link {}: {e}",
                    next.display()
                ))
            })?;
            if links > 40 {
                return Err(bad(format!(
                    "{option} {}: too many levels of symbolic links",
                    path.display()
                )));
            }
            if target.is_absolute() {
                cur = PathBuf::from("/");
            }
            for c in target.components().rev() {
                match c {
                    Component::Normal(n) => pending.push(n.to_os_string()),
                    Component::ParentDir => pending.push("..".into()),
                    _ => {}
                }
            }
            continue;
        }
        if pending.is_empty() {
            // The log file itself, in `cur`.
            return trusted(&cur);
        }
        if !meta.is_dir() {
            return Ok(());
        }
        cur = next;
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

/// A DNS name (or `*` wildcards in labels, as `ServerAlias` allows): one bare
/// word of `ServerName` / `ServerAlias`.
pub fn host_name<'a>(
    option: &str,
    value: &'a str,
    wildcard: bool,
) -> Result<&'a str, InvalidInput> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || (wildcard && "*?".contains(c)))
    };
    let ok = !value.is_empty() && value.len() <= 253 && value.split('.').all(label_ok);
    if ok {
        Ok(value)
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

/// The health check's method: capitals only, and a literal of the expression.
pub fn health_check_method(method: &str) -> Result<&str, InvalidInput> {
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(bad(format!(
            "health_check.method must be an HTTP method in capitals (OPTIONS, HEAD, GET), got: {method:?}"
        )));
    }
    expr_literal("health_check.method", method)
}

/// The health check's path split into the path (matched against the decoded
/// `REQUEST_URI`, so no `%`) and the query string (after the first `?`),
/// each a literal of the expression.
pub fn health_check_path(path: &str) -> Result<(&str, Option<&str>), InvalidInput> {
    let (p, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let shape_ok = p.starts_with('/')
        && !p.contains('%')
        && !query.is_some_and(|q| q.contains('?'))
        && path.chars().all(|c| c.is_ascii_graphic());
    if !shape_ok {
        return Err(bad(format!(
            "health_check.path must be a URL path starting with '/' (a query string may follow '?') without quotes, spaces, '#' or '%' in the path, got: {path:?}"
        )));
    }
    expr_literal("health_check.path", p)?;
    if let Some(q) = query {
        expr_literal("health_check.path", q)?;
    }
    Ok((p, query))
}

fn check_health_check(p: Option<&HealthCheckParams>) -> Result<HealthCheck, InvalidInput> {
    let method = p
        .and_then(|h| h.method.clone())
        .unwrap_or_else(|| "OPTIONS".into());
    let path = p.and_then(|h| h.path.clone()).unwrap_or_else(|| "/".into());
    let log = p.and_then(|h| h.log).unwrap_or(false);
    health_check_method(&method)?;
    health_check_path(&path)?;
    Ok(HealthCheck { method, path, log })
}

/// A module name as `a2enmod` takes it; it becomes the file names
/// `mods-{available,enabled}/<name>.{load,conf}`.
pub fn module_name(name: &str) -> Result<String, InvalidInput> {
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

/// Where a log target is on the host: `${APACHE_LOG_DIR}` as Debian's
/// envvars sets it.
pub fn log_path(target: &str, log_dir: &str) -> PathBuf {
    match target.strip_prefix(LOG_DIR_VAR) {
        Some(rest) => PathBuf::from(format!("{log_dir}{rest}")),
        None => PathBuf::from(target),
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
        site_name(&self.name)?;
        let port = check_port(self.port)?;
        let address = check_listen_address(self.listen_address.as_deref())?;
        if let Some(s) = &self.server_name {
            host_name("server_name", s, false)?;
        }
        for a in &self.server_aliases {
            host_name("server_aliases", a, true)?;
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
        quoted_path("document_root", &document_root)?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|p| parse_proxy(p))
            .collect::<Result<Vec<_>, _>>()?;
        let health_check = check_health_check(self.health_check.as_ref())?;
        let mut modules = Vec::new();
        for m in &self.modules {
            let m = module_name(m)?;
            if !modules.contains(&m) {
                modules.push(m);
            }
        }
        let access_log = log_target("access_log", &self.access_log)?;
        let error_log = log_target("error_log", &self.error_log)?;
        if self.state == State::Present {
            check_log_location("access_log", &log_path(&access_log, LOG_DIR))?;
            check_log_location("error_log", &log_path(&error_log, LOG_DIR))?;
        }
        if let Some(extra) = &self.extra_config {
            check_extra_config(extra)?;
        }
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
            access_log,
            error_log,
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

    #[test]
    fn extra_config_stays_inside_the_virtual_host() {
        for ok in [
            "Header set X-Site web",
            "<Directory /srv/x>\n  Require all denied\n</Directory>\n",
            "<IfModule mod_headers.c>\n<Location /a>\nHeader set A b\n</location>\n</IfModule>",
            "RewriteRule ^/a$ /b \\\n  [R=301,L]",
            "# </VirtualHost> in a comment",
            "CustomLog ${APACHE_LOG_DIR}/other.log combined",
            "Use Defaults web",
        ] {
            assert!(
                check_extra_config(ok).is_ok(),
                "{ok:?}: {:?}",
                check_extra_config(ok)
            );
        }
        for (bad, why) in [
            (
                "</VirtualHost>\n<VirtualHost *:80>",
                "</VirtualHost> closes a section",
            ),
            (
                "Header set A b\n</virtualhost>",
                "line 2: </virtualhost> closes",
            ),
            (
                "<VirtualHost *:81>\n</VirtualHost>",
                "<VirtualHost> is not allowed",
            ),
            (
                "<Directory /a>\n</Location>",
                "does not close <Directory> of line 1",
            ),
            ("<Directory /a>", "<Directory> is not closed"),
            (
                "</Directory>\n<Directory />",
                "closes a section extra_config did not open",
            ),
            ("<\\\n/VirtualHost>", "closes a section"),
            ("\"</VirtualHost>\"", "closes a section"),
            ("</VirtualHost", "closing tag without '>'"),
            ("Header set A b \\", "ends with a backslash"),
            ("Header set A b \\\n\n", "ends with a backslash"),
            ("${CLOSE}", "holds a ${...} variable"),
            ("<Macro M $x>\n$x\n</Macro>", "<Macro> is not allowed"),
            ("Use M </VirtualHost>", "macro argument"),
        ] {
            let e = check_extra_config(bad).expect_err(bad).0;
            assert!(e.starts_with("extra_config line "), "{bad:?}: {e}");
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        for c in ['\0', '\r', '\u{0b}', '\u{2028}', '\u{2029}', '\u{85}'] {
            let e = check_extra_config(&format!("Header set A b{c}c")).expect_err("control");
            assert!(e.0.starts_with("extra_config must not contain U+"), "{e}");
        }
        let e = err(
            serde_json::json!({"extra_config": "</VirtualHost>\nInclude /etc/shadow\n<VirtualHost *:80>"}),
        );
        assert!(e.starts_with("extra_config line 1: </VirtualHost>"), "{e}");
    }

    #[test]
    fn health_check_literals_cannot_leave_their_quotes() {
        for bad in [
            "/a'b",
            "/a\"b",
            "/a\\b",
            "/a$1",
            "/a%{X}",
            "/h?x=%{REMOTE_ADDR}",
            "/h?x=$0",
            "/a{b}",
            "/a`b",
            "/h?x=%4",
            "/h?x=%zz",
            "/a b",
            "/a#b",
            "/a%20b",
        ] {
            let e = err(serde_json::json!({"health_check": {"path": bad}}));
            assert!(e.starts_with("health_check.path must"), "{bad:?}: {e}");
        }
        let site = params(serde_json::json!({"health_check": {"path": "/h?q=a%20b&x=1"}}))
            .into_site()
            .expect("a %XX escape in the query");
        assert_eq!(site.health_check.path, "/h?q=a%20b&x=1");
        assert!(err(serde_json::json!({"health_check": {"method": "GE'T"}}))
            .starts_with("health_check.method"));
    }

    #[test]
    fn log_targets_are_clean_paths() {
        let site = params(
            serde_json::json!({"access_log": "${APACHE_LOG_DIR}/./a//b.log",
                                             "error_log": "/var/log/apache2/e.log"}),
        )
        .into_site()
        .expect("site");
        assert_eq!(site.access_log, "${APACHE_LOG_DIR}/a/b.log");
        assert_eq!(site.error_log, "/var/log/apache2/e.log");
        for bad in [
            "${APACHE_LOG_DIR}",
            "${APACHE_LOG_DIR}/",
            "${APACHE_LOG_DIR}x/a",
            "${HOME}/a",
            "/var/log/a b",
            "/var/log/a\nInclude /etc/shadow",
            "|/bin/logger",
            "syslog:local0",
            "relative.log",
            "/var/log/\"a",
            "/var/log/${X}",
            "/",
        ] {
            let e = err(serde_json::json!({"access_log": bad}));
            assert!(e.starts_with("access_log "), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_log_where_other_users_can_plant_a_link_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let open = dir.path().join("open");
        fs::create_dir(&open).expect("mkdir");
        fs::set_permissions(&open, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let safe = dir.path().join("safe");
        fs::create_dir(&safe).expect("mkdir");
        // A link planted in the open directory, and the plain case of a new file there.
        std::os::unix::fs::symlink("/etc/shadow", open.join("planted.log")).expect("link");
        for p in [
            open.join("planted.log"),
            open.join("new.log"),
            open.join("sub/x.log"),
        ] {
            let e = check_log_location("access_log", &p).expect_err("open dir");
            assert!(e.0.contains("can be changed by other users"), "{e}");
        }
        // A link in a safe directory that leads into the open one.
        std::os::unix::fs::symlink(&open, safe.join("to-open")).expect("link");
        assert!(check_log_location("access_log", &safe.join("to-open/x.log")).is_err());
        // A link in the open directory that leads to a safe one: it can be re-pointed.
        std::os::unix::fs::symlink(&safe, open.join("to-safe")).expect("link");
        assert!(check_log_location("access_log", &open.join("to-safe/x.log")).is_err());
        assert!(check_log_location("access_log", &safe.join("x.log")).is_ok());
        assert!(check_log_location("access_log", &safe.join("new/dir/x.log")).is_ok());
        std::os::unix::fs::symlink("x.log", safe.join("link.log")).expect("link");
        assert!(check_log_location("access_log", &safe.join("link.log")).is_ok());
        // Only a present site is checked (an absent one writes no log).
        let planted = open.join("planted.log").display().to_string();
        let e = err(serde_json::json!({"access_log": planted}));
        assert!(e.starts_with("access_log "), "{e}");
        assert!(
            params(serde_json::json!({"access_log": planted, "state": "absent"}))
                .into_site()
                .is_ok()
        );
    }
}
