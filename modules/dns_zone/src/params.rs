//! The module's options and the checks that turn them into zones: every value
//! that ends up in a zone file or knot.conf is checked here, before anything on
//! the host is read or written.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ansible_module::syntax;
use serde::Deserialize;

use crate::knot::ServerConfig;
use crate::zone::{self, Data, Record, Soa, Zone};
use ansible_module::dns_names::{self as names, Name};

/// The argument spec, in the shape of a Python module's `argument_spec`.
pub const SPEC: &str = r#"{
  "argument_spec": {
    "zone": {"type": "str", "required": true, "aliases": ["name", "domain"]},
    "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
    "records": {
      "type": "list", "elements": "dict", "default": [],
      "options": {
        "name": {"type": "str", "required": true},
        "type": {"type": "str", "default": "A", "choices": ["A", "AAAA", "CNAME", "TXT"]},
        "value": {"type": "str", "required": true},
        "ttl": {"type": "int"},
        "ptr": {"type": "bool", "default": true}
      }
    },
    "nameservers": {"type": "list", "elements": "str", "default": []},
    "ttl": {"type": "int", "default": 300},
    "soa": {
      "type": "dict", "apply_defaults": true,
      "options": {
        "contact": {"type": "str", "default": "hostmaster"},
        "refresh": {"type": "int", "default": 3600},
        "retry": {"type": "int", "default": 600},
        "expire": {"type": "int", "default": 1209600},
        "negative_ttl": {"type": "int", "default": 30}
      }
    },
    "serial": {"type": "int"},
    "reverse": {"type": "bool", "default": true},
    "listen": {"type": "list", "elements": "str", "default": ["0.0.0.0"]},
    "port": {"type": "int", "default": 53},
    "zone_dir": {"type": "path", "default": "/etc/knot/zones"},
    "config_path": {"type": "path", "default": "/etc/knot/knot.conf"},
    "reload": {"type": "bool", "default": true}
  },
  "required_if": [["state", "present", ["nameservers"]]],
  "supports_check_mode": true
}"#;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Kind {
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
    #[serde(rename = "CNAME")]
    Cname,
    #[serde(rename = "TXT")]
    Txt,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RecordParam {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub value: String,
    pub ttl: Option<i64>,
    pub ptr: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SoaParam {
    pub contact: String,
    pub refresh: i64,
    pub retry: i64,
    pub expire: i64,
    pub negative_ttl: i64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub zone: String,
    pub state: State,
    #[serde(default)]
    pub records: Vec<RecordParam>,
    #[serde(default)]
    pub nameservers: Vec<String>,
    pub ttl: i64,
    pub soa: SoaParam,
    pub serial: Option<i64>,
    pub reverse: bool,
    pub listen: Vec<String>,
    pub port: i64,
    pub zone_dir: String,
    pub config_path: String,
    pub reload: bool,
}

/// What the options describe, checked: the zones to serve and the server's
/// configuration.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub zones: Vec<Zone>,
    pub server: ServerConfig,
    /// The serial a changed zone gets at least.
    pub serial_floor: u32,
}

impl Params {
    /// Every check, in option order; the first failure is the message.
    pub fn check(&self, now: u32) -> Result<Wanted, String> {
        let origin = names::zone("zone", &self.zone)?;
        syntax::path("zone_dir", &self.zone_dir).map_err(|e| e.msg)?;
        syntax::path("config_path", &self.config_path).map_err(|e| e.msg)?;
        let ttl = names::seconds("ttl", self.ttl)?;
        let port = u16::try_from(self.port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("port must be between 1 and 65535, got {}", self.port))?;
        let listen = self
            .listen
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<IpAddr>().map_err(|_| {
                    format!(
                        "listen[{i}]: {a:?} is not an IP address (0.0.0.0 is every IPv4 address)"
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if listen.is_empty() && self.state == State::Present {
            return Err("listen must name at least one address".into());
        }
        let serial_floor = match self.serial {
            None => now,
            Some(s) => u32::try_from(s)
                .map_err(|_| format!("serial must be between 0 and 4294967295, got {s}"))?,
        };
        let zones = if self.state == State::Present {
            self.zones(&origin, ttl)?
        } else {
            Vec::new()
        };
        let server = ServerConfig {
            listen,
            port,
            zone_dir: self.zone_dir.clone(),
            zones: zones.iter().map(|z| z.origin.clone()).collect(),
        };
        Ok(Wanted {
            zones,
            server,
            serial_floor,
        })
    }

    /// The forward zone, then its reverse zones.
    fn zones(&self, origin: &Name, ttl: u32) -> Result<Vec<Zone>, String> {
        let mut records = BTreeSet::new();
        let mut nameservers = Vec::new();
        for (i, ns) in self.nameservers.iter().enumerate() {
            let name = names::in_zone(&format!("nameservers[{i}]"), ns, origin)?;
            records.insert(Record {
                owner: origin.clone(),
                data: Data::Ns(name.clone()),
                ttl: None,
            });
            nameservers.push(name);
        }
        let mut with_ptr = BTreeSet::new();
        for (i, r) in self.records.iter().enumerate() {
            let record = record(i, r, origin)?;
            if r.ptr {
                with_ptr.insert(record.owner.clone());
            }
            records.insert(record);
        }
        let soa = &self.soa;
        let forward = Zone {
            origin: origin.clone(),
            ttl,
            soa: Soa {
                primary: nameservers[0].clone(),
                contact: names::contact("soa.contact", &soa.contact, origin)?,
                refresh: names::seconds("soa.refresh", soa.refresh)?,
                retry: names::seconds("soa.retry", soa.retry)?,
                expire: names::seconds("soa.expire", soa.expire)?,
                negative_ttl: names::seconds("soa.negative_ttl", soa.negative_ttl)?,
            },
            records,
        };
        let mut zones = vec![forward];
        if self.reverse {
            let reverse = zone::reverse_zones(&zones[0], &with_ptr);
            zones.extend(reverse);
        }
        Ok(zones)
    }
}

fn record(i: usize, r: &RecordParam, origin: &Name) -> Result<Record, String> {
    let at = |field: &str| format!("records[{i}].{field}");
    let owner = names::in_zone(&at("name"), &r.name, origin)?;
    if !owner.is_in(origin) {
        return Err(format!(
            "{}: {:?} is outside zone {origin}; a zone holds only names that end with it",
            at("name"),
            r.name
        ));
    }
    let value = &r.value;
    let data =
        match r.kind {
            Kind::A => Data::A(value.parse().map_err(|_| {
                format!("{}: {value:?} is not an IPv4 address (type A)", at("value"))
            })?),
            Kind::Aaaa => Data::Aaaa(value.parse().map_err(|_| {
                format!(
                    "{}: {value:?} is not an IPv6 address (type AAAA)",
                    at("value")
                )
            })?),
            Kind::Cname => Data::Cname(names::in_zone(&at("value"), value, origin)?),
            Kind::Txt => Data::Txt(value.clone()),
        };
    let ttl = r.ttl.map(|t| names::seconds(&at("ttl"), t)).transpose()?;
    Ok(Record { owner, data, ttl })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(extra: serde_json::Value) -> Params {
        let mut base = json!({
            "zone": "vrrp.internal", "state": "present",
            "records": [
                {"name": "lb-01", "type": "A", "value": "10.231.0.11", "ttl": null, "ptr": true},
                {"name": "www", "type": "A", "value": "10.231.0.10", "ttl": 60, "ptr": true}
            ],
            "nameservers": ["lb-01"], "ttl": 300,
            "soa": {"contact": "hostmaster", "refresh": 3600, "retry": 600, "expire": 1209600, "negative_ttl": 30},
            "serial": null, "reverse": true, "listen": ["0.0.0.0"], "port": 53,
            "zone_dir": "/etc/knot/zones", "config_path": "/etc/knot/knot.conf", "reload": true
        });
        for (k, v) in extra.as_object().unwrap() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn a_zone_and_its_reverse() {
        let w = params(json!({})).check(1_700_000_000).unwrap();
        assert_eq!(w.zones.len(), 2);
        assert_eq!(w.server.zones[1].as_str(), "0.231.10.in-addr.arpa.");
        assert_eq!(w.serial_floor, 1_700_000_000);
        let text = w.zones[0].render(1);
        assert!(text.contains("www\t60\tIN\tA\t10.231.0.10\n"), "{text}");
    }

    #[test]
    fn bad_values_name_the_option() {
        for (extra, msg) in [
            (json!({"ttl": -1}), "ttl must be between 0 and 2147483647 seconds, got -1"),
            (json!({"zone": "bad zone"}), "zone: \"bad zone\" is not a valid DNS name"),
            (
                json!({"records": [{"name": "web_01", "type": "A", "value": "10.0.0.1", "ttl": null, "ptr": true}]}),
                "records[0].name: \"web_01\" is not a valid DNS name",
            ),
            (
                json!({"records": [{"name": "a", "type": "A", "value": "10.0.0.300", "ttl": null, "ptr": true}]}),
                "records[0].value: \"10.0.0.300\" is not an IPv4 address (type A)",
            ),
            (
                json!({"records": [{"name": "a", "type": "A", "value": "10.0.0.3", "ttl": -5, "ptr": true}]}),
                "records[0].ttl must be between 0 and 2147483647 seconds, got -5",
            ),
            (
                json!({"records": [{"name": "x.example.", "type": "A", "value": "10.0.0.3", "ttl": null, "ptr": true}]}),
                "records[0].name: \"x.example.\" is outside zone vrrp.internal.",
            ),
            (
                json!({"records": [{"name": "w", "type": "CNAME", "value": "lb-01.vrrp.internal", "ttl": null, "ptr": true}]}),
                "records[0].value: \"lb-01.vrrp.internal\" ends with the zone's name but has no final dot",
            ),
            (json!({"listen": ["10.0.0.1;"]}), "listen[0]: \"10.0.0.1;\" is not an IP address"),
            (json!({"port": 0}), "port must be between 1 and 65535, got 0"),
            (json!({"zone_dir": "/etc/knot/zones\n"}), "zone_dir must not contain U+000A"),
            (json!({"serial": -1}), "serial must be between 0 and 4294967295, got -1"),
        ] {
            let e = params(extra.clone()).check(1).unwrap_err();
            assert!(e.starts_with(msg), "{extra}: {e}");
        }
    }

    #[test]
    fn absent_needs_no_records() {
        let w = params(json!({"state": "absent", "nameservers": []}))
            .check(1)
            .unwrap();
        assert!(w.zones.is_empty() && w.server.zones.is_empty());
    }
}
