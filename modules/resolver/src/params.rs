//! The module's options and their checks: every value that lands in
//! resolv.conf or the hosts file is checked here, before any file is read.

use std::net::IpAddr;

use ansible_module::syntax;
use serde::Deserialize;

// The project's one DNS-name check (label by label), the one dns_zone uses,
// so that a name dns_zone serves is exactly a name this module writes.
use ansible_module::dns_names as names;

/// The argument spec, in the shape of a Python module's `argument_spec`.
pub const SPEC: &str = r##"{
  "argument_spec": {
    "search": {"type": "str"},
    "nameservers": {"type": "list", "elements": "str"},
    "options": {"type": "list", "elements": "str", "default": ["timeout:1", "attempts:2"]},
    "resolv_conf": {"type": "path", "default": "/etc/resolv.conf"},
    "keep_dhclient": {"type": "bool", "default": false},
    "dhclient_hook": {"type": "path", "default": "/etc/dhcp/dhclient-enter-hooks.d/vrrp-lxd-resolver"},
    "hosts": {
      "type": "list", "elements": "dict", "default": [],
      "options": {
        "address": {"type": "str", "required": true},
        "name": {"type": "str", "required": true},
        "aliases": {"type": "list", "elements": "str", "default": []}
      }
    },
    "hosts_file": {"type": "path", "default": "/etc/hosts"},
    "hosts_state": {"type": "str", "choices": ["present", "absent"]},
    "marker": {"type": "str", "default": "# {mark} vrrp-lxd managed hosts"}
  },
  "required_by": {"nameservers": ["search"]},
  "supports_check_mode": true
}"##;

/// glibc reads at most this many `nameserver` lines (MAXNS in resolv.h); more
/// would be silently ignored.
pub const MAX_NAMESERVERS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HostParam {
    pub address: String,
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub search: Option<String>,
    pub nameservers: Option<Vec<String>>,
    pub options: Vec<String>,
    pub resolv_conf: String,
    pub keep_dhclient: bool,
    pub dhclient_hook: String,
    #[serde(default)]
    pub hosts: Vec<HostParam>,
    pub hosts_file: String,
    pub hosts_state: Option<State>,
    pub marker: String,
}

/// resolv.conf's content, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolv {
    pub search: String,
    pub nameservers: Vec<IpAddr>,
    pub options: Vec<String>,
}

/// One line of the hosts block: an address, its canonical name, then its
/// aliases (hosts(5)).
#[derive(Debug, Clone, PartialEq)]
pub struct HostLine {
    pub address: IpAddr,
    pub names: Vec<String>,
}

/// The hosts block wanted (present with its lines, or absent).
#[derive(Debug, Clone, PartialEq)]
pub struct HostsBlock {
    pub state: State,
    pub lines: Vec<HostLine>,
    pub begin: String,
    pub end: String,
}

/// What the options describe, checked.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub resolv: Option<Resolv>,
    pub hosts: Option<HostsBlock>,
}

impl Params {
    /// Every check, in option order; the first failure is the message.
    pub fn check(&self) -> Result<Wanted, String> {
        let search = self
            .search
            .as_deref()
            .map(|s| name("search", s))
            .transpose()?;
        let nameservers = self
            .nameservers
            .as_deref()
            .map(|list| {
                if list.len() > MAX_NAMESERVERS {
                    return Err(format!(
                        "nameservers: at most {MAX_NAMESERVERS} (the resolver reads no more), got {}",
                        list.len()
                    ));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, a)| address(&format!("nameservers[{i}]"), a))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let options = self
            .options
            .iter()
            .enumerate()
            .map(|(i, o)| resolv_option(&format!("options[{i}]"), o).map(str::to_string))
            .collect::<Result<Vec<_>, _>>()?;
        for (option, value) in [
            ("resolv_conf", &self.resolv_conf),
            ("dhclient_hook", &self.dhclient_hook),
            ("hosts_file", &self.hosts_file),
        ] {
            syntax::path(option, value).map_err(|e| e.msg)?;
        }
        let lines = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| host_line(i, h))
            .collect::<Result<Vec<_>, _>>()?;
        let (begin, end) = markers(&self.marker)?;
        let resolv = match (search, nameservers) {
            (Some(search), Some(nameservers)) if !nameservers.is_empty() => Some(Resolv {
                search,
                nameservers,
                options,
            }),
            _ => None,
        };
        let hosts = self.hosts_state.map(|state| HostsBlock {
            state,
            lines,
            begin,
            end,
        });
        Ok(Wanted { resolv, hosts })
    }
}

/// A domain name, checked label by label; kept as written (a converged file
/// stays byte for byte what it was).
fn name(option: &str, value: &str) -> Result<String, String> {
    names::zone(option, value)?;
    Ok(value.to_string())
}

fn address(option: &str, value: &str) -> Result<IpAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{option}: {value:?} is not an IP address"))
}

/// One word of resolv.conf's `options` line (`timeout:1`, `edns0`): the
/// resolver splits the line on blanks, and `#` or `;` would start a comment.
fn resolv_option<'a>(option: &str, value: &'a str) -> Result<&'a str, String> {
    if value.is_empty() {
        return Err(format!("{option} must not be empty"));
    }
    match value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_-:.".contains(*c)))
    {
        None => Ok(value),
        Some(c) => Err(format!(
            "{option} must not contain {} (it is one word of resolv.conf's options line), got: {value:?}",
            syntax::show(c)
        )),
    }
}

fn host_line(i: usize, h: &HostParam) -> Result<HostLine, String> {
    let address = address(&format!("hosts[{i}].address"), &h.address)?;
    let mut names = vec![name(&format!("hosts[{i}].name"), &h.name)?];
    for (j, alias) in h.aliases.iter().enumerate() {
        names.push(name(&format!("hosts[{i}].aliases[{j}]"), alias)?);
    }
    Ok(HostLine { address, names })
}

/// The block's first and last lines, as blockinfile makes them from
/// `marker`: `{mark}` becomes BEGIN and END. The marker is a comment of the
/// hosts file and stays on its line.
fn markers(marker: &str) -> Result<(String, String), String> {
    syntax::one_line("marker", marker).map_err(|e| e.msg)?;
    if !marker.starts_with('#') || marker.matches("{mark}").count() != 1 {
        return Err(format!(
            "marker must be a comment (start with '#') holding {{mark}} once, got: {marker:?}"
        ));
    }
    Ok((
        marker.replace("{mark}", "BEGIN"),
        marker.replace("{mark}", "END"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(extra: serde_json::Value) -> Params {
        let mut base = json!({
            "search": "vrrp.internal", "nameservers": ["10.231.0.10", "10.231.0.11"],
            "options": ["timeout:1", "attempts:2"], "resolv_conf": "/etc/resolv.conf",
            "keep_dhclient": true,
            "dhclient_hook": "/etc/dhcp/dhclient-enter-hooks.d/vrrp-lxd-resolver",
            "hosts": [{"address": "10.231.0.11", "name": "lb-01.vrrp.internal", "aliases": ["lb-01"]}],
            "hosts_file": "/etc/hosts", "hosts_state": "present",
            "marker": "# {mark} vrrp-lxd managed hosts"
        });
        for (k, v) in extra.as_object().expect("object") {
            base[k] = v.clone();
        }
        serde_json::from_value(base).expect("params")
    }

    #[test]
    fn ordinary_values_pass() {
        let w = params(json!({})).check().expect("valid");
        let r = w.resolv.expect("resolv");
        assert_eq!(r.search, "vrrp.internal");
        assert_eq!(r.nameservers.len(), 2);
        let h = w.hosts.expect("hosts");
        assert_eq!(h.begin, "# BEGIN vrrp-lxd managed hosts");
        assert_eq!(h.end, "# END vrrp-lxd managed hosts");
        assert_eq!(h.lines[0].names, ["lb-01.vrrp.internal", "lb-01"]);
    }

    #[test]
    fn no_nameservers_or_no_state_leaves_that_file_alone() {
        let w = params(json!({"nameservers": null, "hosts_state": null}))
            .check()
            .expect("valid");
        assert!(w.resolv.is_none() && w.hosts.is_none());
        let w = params(json!({"nameservers": []})).check().expect("valid");
        assert!(w.resolv.is_none());
    }

    /// What an attacker with a playbook variable would try, in every value
    /// that reaches a file.
    const HOSTILE: &[&str] = &[
        "\n", "\r", "\0", ";", "#", "\"", "'", "\\", "$(id)", "`id`", "{", "}", " ", "\t",
        "\u{2028}", "|", "&", ">", "*",
    ];

    #[test]
    fn hostile_values_are_refused_and_named() {
        for h in HOSTILE {
            let bad = format!("web{h}x");
            for (extra, option) in [
                (json!({"search": bad}), "search"),
                (
                    json!({"hosts": [{"address": "10.0.0.1", "name": bad, "aliases": []}]}),
                    "hosts[0].name",
                ),
                (
                    json!({"hosts": [{"address": "10.0.0.1", "name": "ok", "aliases": ["ok", bad]}]}),
                    "hosts[0].aliases[1]",
                ),
                (
                    json!({"hosts": [{"address": format!("10.0.0.1{h}"), "name": "ok", "aliases": []}]}),
                    "hosts[0].address",
                ),
                (
                    json!({"nameservers": [format!("10.0.0.1{h}")]}),
                    "nameservers[0]",
                ),
                (json!({"options": [format!("ndots:1{h}")]}), "options[0]"),
                (
                    json!({"resolv_conf": format!("/etc/resolv{h}.conf")}),
                    "resolv_conf",
                ),
                (
                    json!({"hosts_file": format!("/etc/hosts{h}")}),
                    "hosts_file",
                ),
            ] {
                let e = params(extra.clone()).check().expect_err(&extra.to_string());
                assert!(e.starts_with(option), "{extra}: {e}");
            }
        }
        for bad in [
            "# {mark}\nevil",
            "{mark} not a comment",
            "# no mark",
            "# {mark}{mark}",
        ] {
            assert!(params(json!({"marker": bad})).check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn messages_say_why() {
        for (extra, msg) in [
            (
                json!({"search": "bad zone"}),
                "search: \"bad zone\" is not a valid DNS name: its label \"bad zone\" holds a space",
            ),
            (
                json!({"hosts": [{"address": "10.0.0.1", "name": "web_01", "aliases": []}]}),
                "hosts[0].name: \"web_01\" is not a valid DNS name",
            ),
            (
                json!({"nameservers": ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]}),
                "nameservers: at most 3 (the resolver reads no more), got 4",
            ),
            (
                json!({"nameservers": ["10.0.0.300"]}),
                "nameservers[0]: \"10.0.0.300\" is not an IP address",
            ),
            (
                json!({"options": ["timeout:1 rotate"]}),
                "options[0] must not contain a space",
            ),
            (
                json!({"resolv_conf": "etc/resolv.conf"}),
                "resolv_conf must be an absolute path",
            ),
        ] {
            let e = params(extra.clone()).check().expect_err("refused");
            assert!(e.starts_with(msg), "{extra}: {e}");
        }
    }
}
