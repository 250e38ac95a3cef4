//! The zone-file syntax of everything the module writes: domain names (checked,
//! never escaped: a name that needs escaping is refused) and character strings
//! (escaped). Every name and text that reaches a zone file or knot.conf passes
//! through here.

use std::fmt;

use crate::syntax::show;

/// Longest name in presentation form without its final dot (RFC 1035 2.3.4:
/// 255 octets on the wire).
const MAX_NAME: usize = 253;
/// Longest label (RFC 1035 2.3.4).
const MAX_LABEL: usize = 63;

/// An absolute domain name in lower case, with its final dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name without its final dot (`web-01.vrrp.internal`).
    pub fn bare(&self) -> &str {
        self.0.trim_end_matches('.')
    }

    /// Whether `self` is `zone` or inside it.
    pub fn is_in(&self, zone: &Name) -> bool {
        self == zone || self.0.ends_with(&format!(".{}", zone.0))
    }

    /// How the name is written in `zone`'s file: `@` for the apex, relative
    /// inside the zone, absolute (final dot) outside it.
    pub fn in_file_of(&self, zone: &Name) -> String {
        if self == zone {
            "@".into()
        } else if let Some(rel) = self.0.strip_suffix(&format!(".{}", zone.0)) {
            rel.to_string()
        } else {
            self.0.clone()
        }
    }

    /// `label.self`; `label` must be a valid label (it is built by the module).
    pub fn child(&self, label: &str) -> Name {
        Name(format!("{label}.{}", self.0))
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One label: letters, digits and hyphens, no hyphen at either end (RFC 952 and
/// 1123, what a host name may be); a leading underscore is allowed too, for the
/// `_service` labels TXT and SRV records use.
fn label(option: &str, name: &str, label: &str) -> Result<(), String> {
    let why = if label.is_empty() {
        Some("it has an empty label (two dots in a row, or a dot at the start)".to_string())
    } else if label.len() > MAX_LABEL {
        Some(format!(
            "its label {label:?} is {} characters long (at most {MAX_LABEL})",
            label.len()
        ))
    } else if let Some(c) = label
        .chars()
        .enumerate()
        .find(|&(i, c)| !(c.is_ascii_alphanumeric() || c == '-' || (c == '_' && i == 0)))
        .map(|(_, c)| c)
    {
        Some(format!(
            "its label {label:?} holds {} (a label is letters, digits and '-')",
            show(c)
        ))
    } else if label.starts_with('-') || label.ends_with('-') {
        Some(format!(
            "its label {label:?} starts or ends with '-' (a host name label may not)"
        ))
    } else {
        None
    };
    match why {
        Some(why) => Err(format!("{option}: {name:?} is not a valid DNS name: {why}")),
        None => Ok(()),
    }
}

/// Checks every label of `text` (no final dot) and its length.
fn labels(option: &str, shown: &str, text: &str) -> Result<(), String> {
    if text.len() > MAX_NAME {
        return Err(format!(
            "{option}: {shown:?} is not a valid DNS name: it is {} characters long (at most {MAX_NAME})",
            text.len()
        ));
    }
    text.split('.').try_for_each(|l| label(option, shown, l))
}

/// A zone's name: `vrrp.internal` or `vrrp.internal.` (the same zone).
pub fn zone(option: &str, value: &str) -> Result<Name, String> {
    let text = value.strip_suffix('.').unwrap_or(value);
    if text.is_empty() {
        return Err(format!(
            "{option}: {value:?} is not a zone the module serves (the root zone is not)"
        ));
    }
    labels(option, value, text)?;
    Ok(Name(format!("{}.", text.to_ascii_lowercase())))
}

/// A name as a record's owner or target is written: `@` is the zone itself, a
/// name with a final dot is absolute, any other is relative to the zone. A
/// relative name that already ends with the zone's name is refused: it would
/// mean `web-01.vrrp.internal.vrrp.internal.`, never what was meant.
pub fn in_zone(option: &str, value: &str, zone: &Name) -> Result<Name, String> {
    if value == "@" {
        return Ok(zone.clone());
    }
    let name = match value.strip_suffix('.') {
        Some(abs) => {
            labels(option, value, abs)?;
            Name(format!("{}.", abs.to_ascii_lowercase()))
        }
        None => {
            labels(option, value, value)?;
            let lower = value.to_ascii_lowercase();
            if lower == zone.bare() || lower.ends_with(&format!(".{}", zone.bare())) {
                return Err(format!(
                    "{option}: {value:?} ends with the zone's name but has no final dot, so it \
                     would mean {lower}.{zone}; write it relative to the zone ({:?}) or with the \
                     final dot ({value:?} + \".\")",
                    zone_relative(&lower, zone)
                ));
            }
            zone.child(&lower)
        }
    };
    if name.bare().len() > MAX_NAME {
        return Err(format!(
            "{option}: {value:?} is not a valid DNS name: in zone {zone} it is {} characters long (at most {MAX_NAME})",
            name.bare().len()
        ));
    }
    Ok(name)
}

fn zone_relative(lower: &str, zone: &Name) -> String {
    lower
        .strip_suffix(zone.bare())
        .map(|r| r.trim_end_matches('.'))
        .filter(|r| !r.is_empty())
        .unwrap_or("@")
        .to_string()
}

/// The SOA contact (RNAME): a mailbox `user@domain` (as `user.domain.`; the
/// user part may not hold a dot) or a name as in [`in_zone`].
pub fn contact(option: &str, value: &str, zone: &Name) -> Result<Name, String> {
    match value.split_once('@') {
        Some((user, domain)) if !user.is_empty() && !domain.is_empty() => {
            label(option, value, user)?;
            let domain = self::zone(option, domain)?;
            Ok(domain.child(&user.to_ascii_lowercase()))
        }
        Some(_) if value != "@" => Err(format!(
            "{option}: {value:?} is neither a mailbox (user@domain) nor a DNS name"
        )),
        _ => in_zone(option, value, zone),
    }
}

/// A TTL or SOA timer: 0 to 2^31 - 1 seconds (RFC 2181 8).
pub fn seconds(option: &str, value: i64) -> Result<u32, String> {
    u32::try_from(value)
        .ok()
        .filter(|v| *v <= i32::MAX as u32)
        .ok_or_else(|| {
            format!(
                "{option} must be between 0 and {} seconds, got {value}",
                i32::MAX
            )
        })
}

/// A TXT value as zone-file character strings: split into strings of at most
/// 255 octets, each in double quotes with `"` and `\` escaped by a backslash
/// and every octet outside printable ASCII as `\DDD` (RFC 1035 5.1).
pub fn text(value: &str) -> String {
    value
        .as_bytes()
        .chunks(255)
        .map(|chunk| {
            let mut out = String::with_capacity(chunk.len() + 2);
            out.push('"');
            for &b in chunk {
                match b {
                    b'"' | b'\\' => {
                        out.push('\\');
                        out.push(b as char);
                    }
                    0x20..=0x7e => out.push(b as char),
                    _ => out.push_str(&format!("\\{b:03}")),
                }
            }
            out.push('"');
            out
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z() -> Name {
        zone("zone", "vrrp.internal").unwrap()
    }

    #[test]
    fn zone_names_take_an_optional_final_dot() {
        assert_eq!(z().as_str(), "vrrp.internal.");
        assert_eq!(zone("zone", "VRRP.Internal.").unwrap(), z());
        assert!(zone("zone", ".").unwrap_err().contains("root zone"));
        assert!(zone("zone", "vrrp..internal")
            .unwrap_err()
            .contains("empty label"));
    }

    #[test]
    fn names_inside_the_zone() {
        let zone = z();
        assert_eq!(in_zone("n", "@", &zone).unwrap(), zone);
        assert_eq!(
            in_zone("n", "Web-01", &zone).unwrap().as_str(),
            "web-01.vrrp.internal."
        );
        assert_eq!(
            in_zone("n", "web-01.vrrp.internal.", &zone)
                .unwrap()
                .in_file_of(&zone),
            "web-01"
        );
        assert_eq!(
            in_zone("n", "ns.example.", &zone)
                .unwrap()
                .in_file_of(&zone),
            "ns.example."
        );
        assert_eq!(zone.in_file_of(&zone), "@");
    }

    #[test]
    fn a_missing_final_dot_is_named() {
        let e = in_zone("records[0].name", "web-01.vrrp.internal", &z()).unwrap_err();
        assert!(
            e.starts_with("records[0].name: \"web-01.vrrp.internal\" ends with the zone's name but has no final dot")
                && e.contains("(\"web-01\")"),
            "{e}"
        );
        assert!(in_zone("n", "vrrp.internal", &z())
            .unwrap_err()
            .contains("(\"@\")"));
    }

    #[test]
    fn bad_labels_are_refused_with_the_reason() {
        for (bad, why) in [
            ("web 01", "holds a space"),
            ("web_01", "holds '_'"),
            ("-web", "starts or ends with '-'"),
            ("web-", "starts or ends with '-'"),
            ("a..b", "empty label"),
            ("web\n01", "holds U+000A"),
            ("wéb", "holds U+00E9"),
            ("a;b", "holds ';'"),
            ("a\"b", "holds '\"'"),
            ("$ORIGIN", "holds '$'"),
        ] {
            let e = in_zone("records[1].name", bad, &z()).unwrap_err();
            assert!(
                e.starts_with(&format!("records[1].name: {bad:?} is not a valid DNS name"))
                    && e.contains(why),
                "{bad}: {e}"
            );
        }
        assert!(in_zone("n", &"a".repeat(64), &z())
            .unwrap_err()
            .contains("64 characters"));
        let long = vec!["a".repeat(60); 4].join(".");
        assert!(in_zone("n", &long, &z())
            .unwrap_err()
            .contains("at most 253"));
        assert!(in_zone("n", "_dmarc", &z()).is_ok());
    }

    #[test]
    fn contacts() {
        let zone = z();
        assert_eq!(
            contact("c", "hostmaster", &zone).unwrap().as_str(),
            "hostmaster.vrrp.internal."
        );
        assert_eq!(
            contact("c", "admin@example.org", &zone).unwrap().as_str(),
            "admin.example.org."
        );
        assert!(contact("c", "first.last@example.org", &zone).is_err());
        assert!(contact("c", "@example.org", &zone).is_err());
    }

    #[test]
    fn timers_are_31_bit() {
        assert_eq!(seconds("ttl", 300), Ok(300));
        assert_eq!(
            seconds("ttl", -1),
            Err("ttl must be between 0 and 2147483647 seconds, got -1".into())
        );
        assert!(seconds("ttl", 1 << 31).is_err());
    }

    #[test]
    fn text_is_quoted_and_split() {
        assert_eq!(text("v=spf1 -all"), "\"v=spf1 -all\"");
        assert_eq!(text("a\"b\\c\nd"), "\"a\\\"b\\\\c\\010d\"");
        let long = text(&"x".repeat(300));
        assert_eq!(long.matches('"').count(), 4);
    }
}
