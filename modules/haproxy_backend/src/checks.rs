//! Input checks that Ansible's argument spec cannot express. Each failure names
//! the option and the value, and happens before anything is touched.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ansible_module::Fail;

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

/// One word of a config line: no blanks, no comment sign, no control characters.
pub fn word(what: &str, value: &str) -> Result<(), Fail> {
    let ok = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '#' || c == '"' || c == '\'');
    if ok {
        Ok(())
    } else {
        Err(Fail::new(format!(
            "{what} must be one word without blanks, quotes or '#', got: {value:?}"
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
        assert!(word("w", "*:80").is_ok() && word("w", "*:80 # x").is_err());
        let err = unique("server names", ["a", "b", "a"]).unwrap_err();
        assert_eq!(err.msg, "duplicate server names: a");
    }
}
