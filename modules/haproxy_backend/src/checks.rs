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

use crate::config::{self, BackendInfo};
use crate::params::{Balance, Params, Stickiness, Tls, Weight};

/// Every option of a run, whatever its level: refuses before anything is
/// read, written or sent.
pub fn options(p: &Params) -> Result<(), Fail> {
    target(p)?;
    waits(p)?;
    servers(p)?;
    health_check_and_retry(p)?;
    words_and_secrets(p)?;
    conflicting_services(p)?;
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
    if let Some(tls) = &p.frontend.tls {
        self::tls(tls)?;
    }
    for (option, line) in p.extra.lines() {
        extra_line(&option, line)?;
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

/// `name`, `server`, `address`, `port`, `weight`: what the run acts on.
fn target(p: &Params) -> Result<(), Fail> {
    match (&p.name, &p.server) {
        // Required but for a server-level run, which then acts on every
        // backend that has the server (as community.general.haproxy does).
        (None, None) => return Err(Fail::new("missing required arguments: name")),
        (Some(n), _) => name("name", n)?,
        (None, Some(_)) => {}
    }
    if let Some(server) = &p.server {
        name("server", server)?;
    }
    if let Some(a) = &p.address {
        address("address", a)?;
        if p.name.is_none() {
            return Err(Fail::new(
                "address adds the server to one backend: give name (or backend) with it",
            ));
        }
    }
    if let Some(v) = p.port {
        port("port", v)?;
    }
    if let Some(v) = &p.weight {
        weight_option(v)?;
    }
    Ok(())
}

/// `wait_timeout`, `wait_interval`, `wait_retries`.
fn waits(p: &Params) -> Result<(), Fail> {
    if p.wait_timeout < 0 {
        return Err(Fail::new(format!(
            "wait_timeout must be 0 or more seconds, got: {}",
            p.wait_timeout
        )));
    }
    if let Some(v) = p.wait_interval.filter(|v| *v < 0) {
        return Err(Fail::new(format!(
            "wait_interval must be 0 or more seconds, got: {v}"
        )));
    }
    if let Some(v) = p.wait_retries.filter(|v| *v < 1) {
        return Err(Fail::new(format!(
            "wait_retries must be 1 or more, got: {v}"
        )));
    }
    Ok(())
}

/// `servers`: unique names, each entry checked.
fn servers(p: &Params) -> Result<(), Fail> {
    let given = p.servers.as_deref().unwrap_or_default();
    unique("server names", given.iter().map(|s| s.name.as_str()))?;
    for s in given {
        name("servers.name", &s.name)?;
        address(&format!("servers.address of server {}", s.name), &s.address)?;
        port(&format!("servers.port of server {}", s.name), s.port)?;
        weight(&format!("servers.weight of server {}", s.name), s.weight)?;
    }
    Ok(())
}

/// `health_check` and `retry`.
fn health_check_and_retry(p: &Params) -> Result<(), Fail> {
    let hc = &p.health_check;
    method("health_check.method", &hc.method)?;
    expect_status(hc.expect_status)?;
    for (option, value, min, max) in [
        ("health_check.rise", hc.rise, 1, 100),
        ("health_check.fall", hc.fall, 1, 100),
        ("health_check.error_limit", hc.error_limit, 1, 1000),
        ("retry.retries", p.retry.retries, 0, 100),
        ("retry.redispatch", p.retry.redispatch, -100, 100),
    ] {
        if !(min..=max).contains(&value) {
            return Err(Fail::new(format!(
                "{option} must be between {min} and {max}, got: {value}"
            )));
        }
    }
    for (i, m) in p.retry.replay_methods.iter().enumerate() {
        method(&format!("retry.replay_methods[{i}]"), m)?;
    }
    Ok(())
}

/// Every option that is one word of haproxy.cfg, and the secrets.
fn words_and_secrets(p: &Params) -> Result<(), Fail> {
    let hc = &p.health_check;
    name("frontend.name", &p.frontend.name)?;
    for (option, value) in [
        ("health_check.path", &hc.path),
        ("health_check.interval", &hc.interval),
        ("health_check.fast_interval", &hc.fast_interval),
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
    if let Some(password) = &p.stats.password {
        crate::secret::check("stats.password", password)?;
    }
    Ok(())
}

/// `conflicting_services`: unit names, unique, never HAProxy itself, and only
/// with the backend.
fn conflicting_services(p: &Params) -> Result<(), Fail> {
    for (i, unit) in p.conflicting_services.iter().enumerate() {
        ansible_module::units::unit_name(&format!("conflicting_services[{i}]"), unit)?;
        if ansible_module::units::service_unit(unit)
            == ansible_module::units::service_unit(crate::ops::UNIT)
        {
            return Err(Fail::new(format!(
                "conflicting_services lists {unit}, the service this module keeps running"
            )));
        }
    }
    unique(
        "conflicting_services",
        p.conflicting_services.iter().map(String::as_str),
    )?;
    if p.server.is_some() && !p.conflicting_services.is_empty() {
        return Err(Fail::new(
            "conflicting_services goes with the backend (without server): HAProxy's ports are the backend level's business",
        ));
    }
    Ok(())
}

/// `frontend.tls`: every value one word of haproxy.cfg, the bind an address
/// and port, the certificate a path (and its content, when given, a PEM
/// certificate with its key).
pub fn tls(t: &Tls) -> Result<(), Fail> {
    bind_address("frontend.tls.bind", &t.bind)?;
    syntax::path("frontend.tls.certificate", &t.certificate)?;
    for (option, value) in [
        ("frontend.tls.ciphers", &t.ciphers),
        ("frontend.tls.ciphersuites", &t.ciphersuites),
    ] {
        syntax::haproxy_word(option, value)?;
    }
    if !(0..=i64::from(i32::MAX)).contains(&t.hsts) {
        return Err(Fail::new(format!(
            "frontend.tls.hsts must be 0 (off) or the seconds browsers keep to HTTPS (up to {}), got: {}",
            i32::MAX,
            t.hsts
        )));
    }
    if let Some(content) = &t.certificate_content {
        crate::tls::check_pem("frontend.tls.certificate_content", content)?;
    }
    Ok(())
}

/// What a `bind` line listens on, as one word: comma-separated
/// `[ipv4@|ipv6@]<address>:<port>[-<port>]` (the address empty, `*`, an IP
/// address, a bracketed IPv6 address or a DNS name), or `unix@<path>` /
/// `abns@<name>`.
pub fn bind_address(option: &str, value: &str) -> Result<(), Fail> {
    syntax::haproxy_word(option, value)?;
    let bad = || {
        Fail::new(format!(
            "{option} must be an address and port HAProxy listens on (`*:443`, `10.231.0.10:443`, `[::]:443`, several separated by commas), got: {value:?}"
        ))
    };
    for item in value.split(',') {
        if let Some(rest) = item
            .strip_prefix("unix@")
            .or_else(|| item.strip_prefix("abns@"))
        {
            if rest.is_empty() {
                return Err(bad());
            }
            continue;
        }
        let item = item
            .strip_prefix("ipv4@")
            .or_else(|| item.strip_prefix("ipv6@"))
            .unwrap_or(item);
        let (addr, ports) = item.rsplit_once(':').ok_or_else(bad)?;
        let port_ok = |p: &str| p.parse::<u16>().is_ok_and(|p| p > 0);
        let ports_ok = match ports.split_once('-') {
            Some((a, b)) => port_ok(a) && port_ok(b),
            None => port_ok(ports),
        };
        let bare = addr.trim_start_matches('[').trim_end_matches(']');
        let addr_ok = addr.is_empty()
            || addr == "*"
            || (addr.starts_with('[') == addr.ends_with(']') && bare.parse::<IpAddr>().is_ok())
            || (!addr.contains(':') && is_dns_name(addr));
        if !(ports_ok && addr_ok) {
            return Err(bad());
        }
    }
    Ok(())
}

/// Directives the module writes itself in the backend, from its options: an
/// extra line may not set them (the module reads them back from the file).
const BACKEND_OWNED: &[(&str, &str)] = &[
    ("server", "servers (or server)"),
    ("server-template", "servers (or server)"),
    ("default-server", "health_check"),
    ("balance", "balance"),
    ("dynamic-cookie-key", "cookie.key"),
    ("retries", "retry.retries"),
    ("retry-on", "retry.conditions"),
];

/// One line of `extra.<section>`: it stays on its line and inside its
/// section. HAProxy reads a section keyword anywhere on a line's first word
/// (indented, quoted or escaped), and `.if`/`.endif` blocks could switch off
/// the module's own lines; both are refused. What it means is left to
/// `haproxy -c`.
pub fn extra_line(option: &str, line: &str) -> Result<(), Fail> {
    syntax::one_line(option, line)?;
    let first = line.split_whitespace().next().unwrap_or_default();
    if first.starts_with('#') {
        return Ok(());
    }
    let keyword: String = first
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '\\'))
        .collect::<String>()
        .to_ascii_lowercase();
    if keyword.starts_with('.') {
        return Err(Fail::new(format!(
            "{option} must not be a '.' directive (`.if`, `.endif`, ...: a conditional block can switch off the lines around it), got: {line:?}"
        )));
    }
    if keyword.contains('$') {
        return Err(Fail::new(format!(
            "{option} must not start with a variable ('$'): HAProxy would read a keyword from the environment, got: {line:?}"
        )));
    }
    if config::SECTION_KEYWORDS.contains(&keyword.as_str()) {
        return Err(Fail::new(format!(
            "{option} must not start a section ({keyword:?}): extra lines go inside the section they are listed under, got: {line:?}"
        )));
    }
    if option.starts_with("extra.backend") {
        if let Some((_, owner)) = BACKEND_OWNED.iter().find(|(k, _)| *k == keyword) {
            return Err(Fail::new(format!(
                "{option} must not set {keyword:?}: the module writes it from {owner}, got: {line:?}"
            )));
        }
    }
    Ok(())
}

/// An HTTP method: a token of capitals (`GET`, `PROPFIND`), one word of
/// haproxy.cfg.
pub fn method(option: &str, value: &str) -> Result<(), Fail> {
    if value.is_empty() || value.len() > 32 || !value.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(Fail::new(format!(
            "{option} must be an HTTP method in capitals, got: {value:?}"
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

/// The `weight` option: an int (or a string of one) from 0 to 256, or a
/// percentage from `0%` to `100%` of the server's configured weight, as
/// `community.general.haproxy` takes it. Only the number parsed from it ever
/// reaches haproxy.cfg or a runtime command.
pub fn weight_option(value: &serde_json::Value) -> Result<Weight, Fail> {
    use serde_json::Value;
    let bad = || {
        Fail::new(format!(
            "weight must be a number from 0 to 256 or a percentage of the configured weight from 0% to 100% (\"50%\"), got: {}",
            match value {
                Value::String(s) => format!("{s:?}"),
                other => other.to_string(),
            }
        ))
    };
    let digits = |s: &str| -> Option<i64> {
        let s = s.trim();
        let d = s.strip_prefix('+').unwrap_or(s);
        if d.is_empty() || d.len() > 6 || !d.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        d.parse().ok()
    };
    let absolute = |n: i64| weight("weight", n).map(Weight::Absolute);
    match value {
        // Python's True is 1, as for an int option.
        Value::Bool(b) => absolute(i64::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => absolute(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 1e6 => absolute(f as i64),
            _ => Err(bad()),
        },
        Value::String(s) => match s.trim().strip_suffix('%') {
            Some(pct) => match digits(pct) {
                Some(n) if n <= 100 => Ok(Weight::Percent(u16::try_from(n).map_err(|_| bad())?)),
                Some(n) => Err(Fail::new(format!(
                    "weight as a percentage must be from 0% to 100% (of the configured weight), got: {n}%"
                ))),
                None => Err(bad()),
            },
            None => digits(s).map_or_else(|| Err(bad()), absolute),
        },
        _ => Err(bad()),
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
    fn bind_addresses() {
        for ok in [
            "*:443",
            ":443",
            "10.231.0.10:443",
            "[::]:443",
            "[2001:db8::1]:8443",
            "lb.example:443",
            "*:443,*:8443",
            "ipv6@:443",
            "*:8000-8010",
            "unix@/run/h.sock",
        ] {
            assert!(bind_address("b", ok).is_ok(), "{ok}");
        }
        for bad in [
            "443",
            "*:0",
            "*:70000",
            "*:",
            "nonsense",
            "*:443 ssl",
            "[::1:443",
            "*:443,",
            "unix@",
            "10.0.0.300:443",
        ] {
            let e = bind_address("frontend.tls.bind", bad).expect_err(bad);
            assert!(e.msg.starts_with("frontend.tls.bind must"), "{}", e.msg);
        }
    }

    #[test]
    fn extra_lines_stay_in_their_section() {
        for ok in [
            "acl is_api path_beg /api",
            "http-request deny deny_status 429 if { sc_http_req_rate(0) gt 100 }",
            "stick-table type ip size 100k expire 30s store http_req_rate(10s)",
            "# a comment",
            "",
            "option http-keep-alive",
            "tune.ssl.default-dh-param 2048",
        ] {
            assert!(extra_line("extra.frontend[0]", ok).is_ok(), "{ok}");
        }
        for (bad, needle) in [
            ("acl a path /\nbackend evil", "must not contain U+000A"),
            ("backend evil", "must not start a section (\"backend\")"),
            ("  listen evil", "must not start a section"),
            ("\"frontend\" evil", "must not start a section"),
            ("fr\\ontend evil", "must not start a section"),
            ("GLOBAL", "must not start a section"),
            ("log-forward x", "must not start a section"),
            (".if 0", "'.' directive"),
            ("\"${SECTION}\" x", "variable"),
            ("a\u{2028}b", "U+2028"),
        ] {
            let e = extra_line("extra.frontend[2]", bad).expect_err(bad);
            assert!(
                e.msg.starts_with("extra.frontend[2] must") && e.msg.contains(needle),
                "{bad:?}: {}",
                e.msg
            );
        }
        let e = extra_line("extra.backend[0]", "server evil 10.0.0.66:80").expect_err("server");
        assert!(e.msg.contains("from servers"), "{}", e.msg);
        assert!(extra_line("extra.frontend[0]", "server-state-file x").is_ok());
        assert!(extra_line("extra.backend[0]", "http-request set-header X-A b").is_ok());
    }

    #[test]
    fn ports_weights_names() {
        assert!(port("p", 0).is_err() && port("p", 65536).is_err());
        assert_eq!(port("p", 8080).ok(), Some(8080));
        assert!(weight("w", 257).is_err() && weight("w", -1).is_err());
        assert!(name("n", "web/1").is_err() && name("n", "web-1").is_ok());
        assert_eq!(
            weight_option(&serde_json::json!(10)).ok(),
            Some(Weight::Absolute(10))
        );
        let err = unique("server names", ["a", "b", "a"]).unwrap_err();
        assert_eq!(err.msg, "duplicate server names: a");
    }

    /// `weight` as community.general.haproxy takes it: an int, a string of
    /// one, or a percentage; anything else is refused naming the option,
    /// and only the parsed number goes on.
    #[test]
    fn weights_absolute_and_percent() {
        use serde_json::json;
        for (v, want) in [
            (json!(0), Weight::Absolute(0)),
            (json!(256), Weight::Absolute(256)),
            (json!("10"), Weight::Absolute(10)),
            (json!(" 10 "), Weight::Absolute(10)),
            (json!(true), Weight::Absolute(1)),
            (json!(20.0), Weight::Absolute(20)),
            (json!("50%"), Weight::Percent(50)),
            (json!("0%"), Weight::Percent(0)),
            (json!("100%"), Weight::Percent(100)),
            (json!("+7%"), Weight::Percent(7)),
        ] {
            assert_eq!(weight_option(&v).ok(), Some(want), "{v}");
        }
        for (v, needle) in [
            (json!(257), "between 0 and 256"),
            (json!(-1), "between 0 and 256"),
            (json!("257"), "between 0 and 256"),
            (json!("101%"), "from 0% to 100%"),
            (json!("-5%"), "got: \"-5%\""),
            (json!("5.5%"), "got: \"5.5%\""),
            (json!("%"), "got: \"%\""),
            (json!("50 %x"), "got:"),
            (json!("1e3"), "got:"),
            (json!(2.5), "got: 2.5"),
            (json!([1]), "got: [1]"),
            (json!({"a": 1}), "got:"),
            (json!("10;shutdown sessions server web/a"), "got:"),
            (json!("10\nset server web/a state maint"), "got:"),
            (json!("50%%"), "got:"),
            (json!("9999999999%"), "got:"),
        ] {
            let e = weight_option(&v).expect_err(&v.to_string());
            assert!(
                e.msg.starts_with("weight ") && e.msg.contains(needle),
                "{v}: {}",
                e.msg
            );
        }
    }
}
