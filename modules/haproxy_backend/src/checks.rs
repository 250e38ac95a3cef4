//! Input checks that Ansible's argument spec cannot express. Each failure names
//! the option and the value, and happens before anything is touched.
//!
//! Every string option that reaches haproxy.cfg, a command line or a runtime
//! API command passes one of these (see [`options`]): names and addresses
//! their own strict checks, every other word `syntax::haproxy_word`, paths
//! `syntax::path`, the `validate` command line `syntax::one_line`. Values the
//! module reads back from haproxy.cfg pass the same checks before they go
//! into a runtime command ([`from_file`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

use ansible_module::{syntax, Fail};

use crate::config::BackendInfo;
use crate::params::{Balance, Params, Stickiness};

/// Every option of a run, whatever its level: refuses before anything is
/// read, written or sent.
pub fn options(p: &Params) -> Result<(), Fail> {
    name("name", &p.name)?;
    if let Some(server) = &p.server {
        name("server", server)?;
    }
    if let Some(a) = &p.address {
        address("address", a)?;
    }
    if let Some(v) = p.port {
        port("port", v)?;
    }
    if let Some(v) = p.weight {
        weight("weight", v)?;
    }
    if p.wait_timeout < 0 {
        return Err(Fail::new(format!(
            "wait_timeout must be 0 or more seconds, got: {}",
            p.wait_timeout
        )));
    }
    let given = p.servers.as_deref().unwrap_or_default();
    unique("server names", given.iter().map(|s| s.name.as_str()))?;
    for s in given {
        name("servers.name", &s.name)?;
        address(&format!("servers.address of server {}", s.name), &s.address)?;
        port(&format!("servers.port of server {}", s.name), s.port)?;
        weight(&format!("servers.weight of server {}", s.name), s.weight)?;
    }

    let hc = &p.health_check;
    if hc.method.is_empty() || !hc.method.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(Fail::new(format!(
            "health_check.method must be an HTTP method in capitals, got: {:?}",
            hc.method
        )));
    }
    expect_status(hc.expect_status)?;
    if !(1..=100).contains(&hc.rise) || !(1..=100).contains(&hc.fall) {
        return Err(Fail::new(
            "health_check.rise and health_check.fall must be between 1 and 100",
        ));
    }
    name("frontend.name", &p.frontend.name)?;
    for (option, value) in [
        ("health_check.path", &hc.path),
        ("health_check.interval", &hc.interval),
        ("frontend.bind", &p.frontend.bind),
        ("cookie.name", &p.cookie.name),
        ("stats.bind", &p.stats.bind),
        ("stats.uri", &p.stats.uri),
        ("stats.user", &p.stats.user),
        ("timeouts.connect", &p.timeouts.connect),
        ("timeouts.client", &p.timeouts.client),
        ("timeouts.server", &p.timeouts.server),
        ("timeouts.http_request", &p.timeouts.http_request),
        ("timeouts.queue", &p.timeouts.queue),
    ] {
        syntax::haproxy_word(option, value)?;
    }
    if let Some(key) = &p.cookie.key {
        // A secret: the refusal does not show it.
        crate::secret::check("cookie.key", key)?;
    }
    if p.stats.user.contains(':') {
        return Err(Fail::new(format!(
            "stats.user must not contain ':' (it separates the user from the password in `stats auth`), got: {:?}",
            p.stats.user
        )));
    }
    for (option, value) in [
        ("config_path", &p.config_path),
        ("admin_socket", &p.admin_socket),
        ("stats.password_file", &p.stats.password_file),
        ("cookie.key_file", &p.cookie.key_file),
    ] {
        syntax::path(option, value)?;
    }
    syntax::one_line("validate", &p.validate)?;
    if !p.validate.split_whitespace().any(|w| w.contains("%s")) {
        return Err(Fail::new(format!(
            "validate must contain %s (the candidate file's path), got: {:?}",
            p.validate
        )));
    }
    if p.stickiness == Stickiness::Source
        && !matches!(p.balance, Balance::Source | Balance::Roundrobin)
    {
        return Err(Fail::new(format!(
            "stickiness=source hashes the client address (balance source); it conflicts with balance={}",
            p.balance
        )));
    }
    Ok(())
}

pub fn expect_status(value: i64) -> Result<u16, Fail> {
    u16::try_from(value)
        .ok()
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| {
            Fail::new(format!(
                "health_check.expect_status must be an HTTP status (100-599), got: {value}"
            ))
        })
}

/// What the module read back from `path` about a backend, before any of it
/// goes into a runtime API command: the same checks as the options.
pub fn from_file(info: &BackendInfo, path: &str) -> Result<(), Fail> {
    let why = |e: Fail| {
        Fail::new(format!(
            "{} (read from {path}; run the module without server to rewrite the file)",
            e.msg
        ))
    };
    for s in &info.servers {
        name(&format!("a server name in {path}"), &s.name).map_err(why)?;
        address(
            &format!("the address of server {} in {path}", s.name),
            &s.address,
        )
        .map_err(why)?;
    }
    for w in info.default_server.split_whitespace() {
        syntax::haproxy_word(&format!("default-server in {path}"), w).map_err(why)?;
    }
    if let Some(key) = &info.cookie_key {
        syntax::haproxy_word(&format!("the dynamic-cookie-key in {path}"), key)
            .map_err(|e| why(Fail::new(e.msg.replace(&format!("{key:?}"), "********"))))?;
    }
    Ok(())
}

/// Backend, frontend and server names: HAProxy's identifier characters.
pub fn name(what: &str, value: &str) -> Result<(), Fail> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "{what} must be 1-64 characters of letters, digits, '_', '-', '.' or ':', got: {value:?}"
        )))
    }
}

/// An IPv4 or IPv6 address, or a DNS name (resolved when HAProxy starts).
pub fn address(what: &str, value: &str) -> Result<(), Fail> {
    if value.parse::<IpAddr>().is_ok() || is_dns_name(value) {
        return Ok(());
    }
    Err(Fail::new(format!(
        "{what} must be an IPv4 or IPv6 address or a DNS name, got: {value:?}"
    )))
}

fn is_dns_name(value: &str) -> bool {
    let labels: Vec<&str> = value.trim_end_matches('.').split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    // An all-numeric last label is a mistyped address (10.0.0.300), not a name.
    value.len() <= 253
        && labels.iter().all(label_ok)
        && labels
            .last()
            .is_some_and(|l| !l.chars().all(|c| c.is_ascii_digit()))
}

pub fn port(what: &str, value: i64) -> Result<u16, Fail> {
    match u16::try_from(value) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(Fail::new(format!(
            "{what} must be between 1 and 65535, got: {value}"
        ))),
    }
}

pub fn weight(what: &str, value: i64) -> Result<u16, Fail> {
    match u16::try_from(value) {
        Ok(w) if w <= 256 => Ok(w),
        _ => Err(Fail::new(format!(
            "{what} must be between 0 and 256, got: {value}"
        ))),
    }
}

pub fn unique<'a>(what: &str, names: impl IntoIterator<Item = &'a str>) -> Result<(), Fail> {
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<&str> = names.into_iter().filter(|n| !seen.insert(*n)).collect();
    if dups.is_empty() {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "duplicate {what}: {}",
            dups.into_iter().collect::<Vec<_>>().join(", ")
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["10.231.0.5", "2001:db8::1", "web-01.example", "web1"] {
            assert!(address("a", ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.300",
            "",
            "web_1",
            "a b",
            "-x.example",
            "10.0.0.1:80",
        ] {
            assert!(address("a", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_weights_names() {
        assert!(port("p", 0).is_err() && port("p", 65536).is_err());
        assert_eq!(port("p", 8080).ok(), Some(8080));
        assert!(weight("w", 257).is_err() && weight("w", -1).is_err());
        assert!(name("n", "web/1").is_err() && name("n", "web-1").is_ok());
        let err = unique("server names", ["a", "b", "a"]).unwrap_err();
        assert_eq!(err.msg, "duplicate server names: a");
    }
}
