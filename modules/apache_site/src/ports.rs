//! `Listen` lines in `ports.conf`.
//!
//! A port that Debian's `ports.conf` already opens (80) needs nothing. For any
//! other, the module adds a block of two lines, a tag naming the sites that need
//! it and the `Listen` line:
//!
//! ```text
//! # apache_site: shop blog
//! Listen 8080
//! ```
//!
//! Each run removes the site from every tag and adds it where it is needed now;
//! a block whose tag lists no site is removed. Lines the module did not add are
//! never touched, so removing the last site that needed a port restores the file
//! as it was.

use std::net::IpAddr;

use crate::params::Listen;

const TAG: &str = "# apache_site:";

enum Item {
    Line(String),
    Block { sites: Vec<String>, listen: String },
}

/// `Listen [addr:]port [protocol]` -> (address, port).
fn parse_listen(arg: &str) -> Option<(Option<IpAddr>, u16)> {
    let spec = arg.split_whitespace().next()?;
    if let Ok(port) = spec.parse::<u16>() {
        return Some((None, port));
    }
    let (addr, port) = spec.rsplit_once(':')?;
    let port = port.parse::<u16>().ok()?;
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = addr.parse().ok()?;
    Some((if ip.is_unspecified() { None } else { Some(ip) }, port))
}

/// Whether a `Listen` argument already covers `want`.
fn covers(arg: &str, want: &Listen) -> bool {
    match parse_listen(arg) {
        Some((None, port)) => port == want.port,
        Some((Some(addr), port)) => port == want.port && want.address == Some(addr),
        None => false,
    }
}

fn directive_arg<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let t = line.trim();
    let (word, rest) = t.split_once(char::is_whitespace)?;
    word.eq_ignore_ascii_case(name).then_some(rest.trim())
}

fn parse(text: &str) -> Vec<Item> {
    let lines: Vec<&str> = text.lines().collect();
    let mut items = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        if let (Some(tag), Some(next)) = (line.strip_prefix(TAG), lines.get(i + 1)) {
            if let Some(arg) = directive_arg(next, "Listen") {
                items.push(Item::Block {
                    sites: tag.split_whitespace().map(str::to_string).collect(),
                    listen: arg.to_string(),
                });
                i += 2;
                continue;
            }
        }
        items.push(Item::Line(line.to_string()));
        i += 1;
    }
    items
}

/// `ports.conf` with `site` registered for `want` (or for nothing when `None`).
pub fn update(text: &str, site: &str, want: Option<&Listen>) -> String {
    let mut items = parse(text);
    for item in &mut items {
        if let Item::Block { sites, .. } = item {
            sites.retain(|s| s != site);
        }
    }
    if let Some(want) = want {
        // Only unconditional lines count: a Listen inside <IfModule> may be off.
        let mut depth = 0usize;
        let mut open_already = false;
        for item in &items {
            if let Item::Line(l) = item {
                let t = l.trim_start();
                if t.starts_with("</") {
                    depth = depth.saturating_sub(1);
                } else if t.starts_with('<') {
                    depth += 1;
                } else if depth == 0 {
                    if let Some(arg) = directive_arg(l, "Listen") {
                        open_already |= covers(arg, want);
                    }
                }
            }
        }
        if !open_already {
            let arg = want.listen_arg();
            let existing = items.iter_mut().find_map(|item| match item {
                Item::Block { sites, listen } if covers(listen, want) => Some(sites),
                _ => None,
            });
            match existing {
                Some(sites) => sites.push(site.to_string()),
                None => items.push(Item::Block {
                    sites: vec![site.to_string()],
                    listen: arg,
                }),
            }
        }
    }
    let mut out = String::with_capacity(text.len() + 64);
    for item in items {
        match item {
            Item::Line(l) => {
                out.push_str(&l);
                out.push('\n');
            }
            Item::Block { sites, listen } if !sites.is_empty() => {
                out.push_str(TAG);
                out.push(' ');
                out.push_str(&sites.join(" "));
                out.push_str("\nListen ");
                out.push_str(&listen);
                out.push('\n');
            }
            Item::Block { .. } => {}
        }
    }
    // A file without a final newline stays byte-identical when nothing changed.
    if out.trim_end_matches('\n') == text.trim_end_matches('\n') {
        return text.to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str =
        "# If you just change the port or add more ports here, you will likely also\n\
# have to change the VirtualHost statement in\n\
# /etc/apache2/sites-enabled/000-default.conf\n\
\n\
Listen 80\n\
\n\
<IfModule ssl_module>\n\
\tListen 443\n\
</IfModule>\n\
\n\
<IfModule mod_gnutls.c>\n\
\tListen 443\n\
</IfModule>\n";

    fn l(port: u16) -> Listen {
        Listen {
            address: None,
            port,
        }
    }

    #[test]
    fn port_80_needs_nothing() {
        assert_eq!(update(DEBIAN, "web", Some(&l(80))), DEBIAN);
        let specific = Listen {
            address: "10.0.0.5".parse().ok(),
            port: 80,
        };
        assert_eq!(update(DEBIAN, "web", Some(&specific)), DEBIAN);
    }

    #[test]
    fn conditional_listen_does_not_count() {
        let out = update(DEBIAN, "web", Some(&l(443)));
        assert!(
            out.ends_with("</IfModule>\n# apache_site: web\nListen 443\n"),
            "{out}"
        );
    }

    #[test]
    fn add_share_move_and_remove() {
        let a = update(DEBIAN, "a", Some(&l(8080)));
        assert_eq!(a, format!("{DEBIAN}# apache_site: a\nListen 8080\n"));
        assert_eq!(update(&a, "a", Some(&l(8080))), a, "idempotent");
        let ab = update(&a, "b", Some(&l(8080)));
        assert_eq!(ab, format!("{DEBIAN}# apache_site: a b\nListen 8080\n"));
        // a moves to 8081; b keeps 8080
        let moved = update(&ab, "a", Some(&l(8081)));
        assert_eq!(
            moved,
            format!("{DEBIAN}# apache_site: b\nListen 8080\n# apache_site: a\nListen 8081\n")
        );
        let gone = update(&update(&moved, "a", None), "b", None);
        assert_eq!(gone, DEBIAN);
    }

    #[test]
    fn specific_address_and_ipv6() {
        let want = Listen {
            address: "fd00::5".parse().ok(),
            port: 8443,
        };
        let out = update("Listen 80\n", "v6", Some(&want));
        assert_eq!(out, "Listen 80\n# apache_site: v6\nListen [fd00::5]:8443\n");
        assert_eq!(
            update("Listen 0.0.0.0:8443\n", "v6", Some(&want)),
            "Listen 0.0.0.0:8443\n"
        );
    }
}
