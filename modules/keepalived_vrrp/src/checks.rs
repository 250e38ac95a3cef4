//! From options to a checked instance. Everything keepalived would reject, or
//! accept and then quietly "correct" (priority 255 on a backup, `nopreempt` on a
//! master), is refused here with a message that says what to change; the config
//! file is not touched.

use std::net::IpAddr;

use ansible_module::syntax;

use crate::conf::{Check, Instance, NotifyScript, TrackedService, Vip};
use crate::net::{self, IfAddr};
use crate::params::{InitialState, Params, VrrpVersion};
use crate::track::Service;

/// A name keepalived reads as one word (an instance, a script, an
/// interface): `syntax::keepalived_word`, which names the offending
/// character, then this module's narrower rule (no `/`, at most 64), which
/// `what` explains.
fn name_word(option: &str, value: &str, what: impl FnOnce() -> String) -> Result<(), String> {
    syntax::keepalived_word(option, value).map_err(|f| f.msg)?;
    if value.len() > 64 || value.contains('/') {
        return Err(what());
    }
    Ok(())
}

/// A command keepalived runs, written as one double-quoted string.
fn check_script(option: &str, script: &str) -> Result<(), String> {
    syntax::keepalived_string(option, script)
        .map(|_| ())
        .map_err(|f| f.msg)
}

/// The options every state writes or reads by: the instance name (it marks
/// the block) and the file.
pub fn common(p: &Params) -> Result<(), String> {
    name_word("name", &p.name, || {
        format!(
            "name {:?} is not a valid vrrp_instance name (letters, digits, _ - . : @; at most 64)",
            p.name
        )
    })?;
    syntax::path("config_path", &p.config_path).map_err(|f| f.msg)?;
    Ok(())
}

/// One entry of `track_services`: a systemd service name, `.service` optional.
/// It names a drop-in directory, goes into `systemctl` argument lists, and
/// (escaped) into a file name and keepalived.conf, so it must be a unit name
/// and nothing more: letters, digits and `: - _ . \ @` (systemd's set), not
/// starting with `-` (an option to `systemctl`) or `.`, at most 255
/// characters with `.service`, an instance rather than a bare template.
pub fn service(value: &str) -> Result<Service, String> {
    const OPTION: &str = "track_services";
    if value.is_empty() {
        return Err(format!("{OPTION} must not hold an empty name"));
    }
    if let Some(c) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(*c)))
    {
        return Err(format!(
            "{OPTION} must not contain {} (a systemd unit name holds only letters, digits and \
             : - _ . \\ @), got: {value:?}",
            syntax::show(c)
        ));
    }
    let service = Service::named(value);
    let stem = service.stem();
    if stem.is_empty() {
        return Err(format!("{OPTION} entry {value:?} names no service"));
    }
    if service.unit().len() > 255 {
        return Err(format!(
            "{OPTION} entry {value:?} is too long: a unit name has at most 255 characters"
        ));
    }
    if stem.starts_with(['-', '.']) {
        return Err(format!(
            "{OPTION} entry {value:?} must not start with {}",
            syntax::show(stem.chars().next().unwrap_or('-'))
        ));
    }
    if let Some((prefix, instance)) = stem.split_once('@') {
        if prefix.is_empty() || instance.is_empty() {
            return Err(format!(
                "{OPTION} entry {value:?} is not a service: name a template's instance as \
                 NAME@INSTANCE (e.g. knot@main)"
            ));
        }
    }
    if service.is_haproxy() {
        return Err(format!(
            "{OPTION} lists haproxy, which track_haproxy tracks: remove it from {OPTION} and \
             keep track_haproxy: true"
        ));
    }
    Ok(service)
}

/// `track_services` as services with their files, sorted (their order does
/// not matter to keepalived, and a reordered list must not rewrite the file).
fn tracked_services(p: &Params, track_file: Option<&str>) -> Result<Vec<TrackedService>, String> {
    let mut out: Vec<TrackedService> = vec![];
    for name in &p.track_services {
        let service = service(name)?;
        if out.iter().any(|t| t.service == service) {
            return Err(format!("track_services lists {} twice", service.unit()));
        }
        let file = format!("{}/{}.down", p.services_dir(), service.file_tag());
        // Both escaped names are written unquoted: checked as any other.
        syntax::path(&format!("track_services {} file", service.unit()), &file)
            .map_err(|f| f.msg)?;
        syntax::keepalived_word(
            "track_services",
            &format!("{}_track_{}", p.name, service.conf_tag()),
        )
        .map_err(|f| f.msg)?;
        if track_file == Some(file.as_str()) {
            return Err(format!(
                "track_services: {} is tracked through {file}, which is track_file; point \
                 track_file at a file of its own",
                service.unit()
            ));
        }
        out.push(TrackedService { service, file });
    }
    out.sort_by(|a, b| a.service.cmp(&b.service));
    Ok(out)
}

fn parse_ip(what: &str, s: &str) -> Result<IpAddr, String> {
    // A trailing newline from a file lookup is harmless: only the parsed
    // address is written.
    let t = s.trim();
    syntax::keepalived_word(what, t).map_err(|f| f.msg)?;
    t.parse()
        .map_err(|_| format!("{what} {s:?} is not an IP address"))
}

/// One `virtual_ipaddress` entry as written: `ADDR[/PREFIX] [dev IFACE]`.
struct VipEntry {
    addr: IpAddr,
    prefix: Option<u8>,
    dev: Option<String>,
}

/// One `virtual_ipaddress` entry: `ADDR[/PREFIX] [dev IFACE]`.
fn parse_vip(entry: &str) -> Result<VipEntry, String> {
    // Split on blanks only: any other character stays in a word and is refused
    // there (the address is parsed, `dev` is a keepalived word).
    let mut words = entry.split([' ', '\t']).filter(|w| !w.is_empty());
    let Some(first) = words.next() else {
        return Err("virtual_ipaddress has an empty entry".into());
    };
    syntax::keepalived_word("virtual_ipaddress", first).map_err(|f| f.msg)?;
    let (addr, prefix) = match first.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (first, None),
    };
    let addr: IpAddr = addr.parse().map_err(|_| {
        format!("virtual_ipaddress entry {entry:?} is not an address (expected ADDR/PREFIX, e.g. 10.0.0.10/24)")
    })?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => None,
        Some(p) => Some(
            p.parse::<u8>()
                .ok()
                .filter(|p| (1..=max).contains(p))
                .ok_or_else(|| {
                    format!("virtual_ipaddress entry {entry:?}: prefix length must be 1..{max}")
                })?,
        ),
    };
    let dev = match (words.next(), words.next(), words.next()) {
        (None, _, _) => None,
        (Some("dev"), Some(d), None) => {
            interface_word("virtual_ipaddress dev", d)?;
            Some(d.to_string())
        }
        _ => {
            return Err(format!(
                "virtual_ipaddress entry {entry:?}: expected ADDR/PREFIX or ADDR/PREFIX dev IFACE"
            ))
        }
    };
    if addr.is_loopback() || addr.is_unspecified() || addr.is_multicast() {
        return Err(format!(
            "virtual_ipaddress entry {entry:?} is not a usable unicast address"
        ));
    }
    Ok(VipEntry { addr, prefix, dev })
}

/// An interface name as keepalived.conf holds it.
fn interface_word(option: &str, i: &str) -> Result<(), String> {
    name_word(option, i, || {
        format!("{option} {i:?} is not an interface name")
    })
}

/// Checks the options and resolves what the host decides (interface, prefix).
/// The checks run in the order of the sections below, so the first problem
/// in that order is the one reported.
pub fn instance(p: &Params, host: &[IfAddr]) -> Result<Instance, String> {
    common(p)?;
    let vrid = virtual_router_id(p)?;
    let priority = election(p)?;
    let advert_int = advert_int(p)?;
    let auth_pass = auth_pass(p)?;
    let entries = virtual_addresses(p)?;
    let interface = interface(p, host, &entries)?;
    let vip_addrs: Vec<IpAddr> = entries.iter().map(|v| v.addr).collect();
    let unicast = unicast(p, host, &vip_addrs)?;
    let tracked = tracking(p)?;
    let checks = scripts(p)?;
    let notify = notify(p)?;
    Ok(Instance {
        name: p.name.clone(),
        vrid,
        priority,
        initial_state: p.initial_state,
        nopreempt: p.nopreempt,
        preempt_delay: p.preempt_delay,
        vips: interface.vips(entries),
        interface: interface.name,
        advert_int,
        version: p.vrrp_version.number(),
        unicast_src_ip: unicast.src_ip,
        unicast_peer: unicast.peers,
        auth_pass,
        track_haproxy: p.track_haproxy,
        track_file: tracked.file,
        track_services: tracked.services,
        track_interface: p.track_interface.clone(),
        checks,
        notify,
    })
}

// ---- the router id and the election ----

fn virtual_router_id(p: &Params) -> Result<u8, String> {
    let vrid = p.virtual_router_id.unwrap_or_default();
    u8::try_from(vrid)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| format!("virtual_router_id must be 1..255, got {vrid}"))
}

/// The priority, checked with the options that decide who preempts whom:
/// keepalived would "correct" a priority 255 on a backup or `nopreempt` on
/// a master on its own.
fn election(p: &Params) -> Result<u8, String> {
    let master = p.initial_state == InitialState::Master;
    let priority = u8::try_from(p.priority)
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| format!("priority must be 1..255, got {}", p.priority))?;
    if priority == 255 && !master {
        return Err(
            "priority 255 means the address owner, which always starts as MASTER: \
                    use 1..254 with initial_state BACKUP"
                .into(),
        );
    }
    if priority == 255 && p.nopreempt {
        return Err(
            "nopreempt cannot work with priority 255 (the address owner always preempts): use 1..254"
                .into(),
        );
    }
    if p.nopreempt && master {
        return Err(
            "nopreempt needs initial_state BACKUP (keepalived ignores it on a MASTER); \
                    set initial_state: BACKUP on every node"
                .into(),
        );
    }
    if let Some(d) = p.preempt_delay {
        if p.nopreempt {
            return Err("preempt_delay and nopreempt exclude each other".into());
        }
        if master {
            return Err(
                "preempt_delay needs initial_state BACKUP (keepalived ignores it on a MASTER)"
                    .into(),
            );
        }
        if !(0..=1000).contains(&d) {
            return Err(format!("preempt_delay must be 0..1000 seconds, got {d}"));
        }
    }
    Ok(priority)
}

// ---- what the VRRP version allows ----

fn advert_int(p: &Params) -> Result<f64, String> {
    let advert_int = p.advert_int();
    match p.vrrp_version {
        VrrpVersion::V2 => {
            if advert_int.fract() != 0.0 || !(1.0..=255.0).contains(&advert_int) {
                return Err(format!(
                    "advert_int {advert_int} is not valid with vrrp_version 2: VRRP v2 advertises in whole \
                     seconds (1..255); use vrrp_version 3 for sub-second intervals"
                ));
            }
        }
        VrrpVersion::V3 => {
            let centis = advert_int * 100.0;
            if (centis - centis.round()).abs() > 1e-6 || !(1.0..=4095.0).contains(&centis.round()) {
                return Err(format!(
                    "advert_int {advert_int} is not valid with vrrp_version 3: use 0.01..40.95 seconds in steps of 0.01"
                ));
            }
        }
    }
    Ok(advert_int)
}

fn auth_pass(p: &Params) -> Result<Option<String>, String> {
    match p.auth_pass.as_deref() {
        None | Some("") => Ok(None),
        Some(_) if p.vrrp_version == VrrpVersion::V3 => Err(
            "auth_pass needs vrrp_version 2: VRRP v3 has no authentication \
                    (RFC 5798); remove auth_pass, or set vrrp_version: 2 on every node"
                .into(),
        ),
        // The message leaves the value out: it is a secret.
        Some(pw)
            if pw.len() > 8
                || pw.contains('/')
                || syntax::keepalived_word("auth_pass", pw).is_err() =>
        {
            Err(
                "auth_pass must be 1..8 characters (letters, digits, _ - . : @); keepalived \
                 uses only the first 8"
                    .into(),
            )
        }
        Some(pw) => Ok(Some(pw.to_string())),
    }
}

// ---- virtual addresses, all of one family ----

fn virtual_addresses(p: &Params) -> Result<Vec<VipEntry>, String> {
    if p.virtual_ipaddress.is_empty() {
        return Err("virtual_ipaddress needs at least one address".into());
    }
    let mut parsed: Vec<VipEntry> = vec![];
    for entry in &p.virtual_ipaddress {
        let v = parse_vip(entry)?;
        if parsed.iter().any(|e| e.addr == v.addr) {
            return Err(format!("virtual_ipaddress lists {} twice", v.addr));
        }
        parsed.push(v);
    }
    let v4 = parsed[0].addr.is_ipv4();
    if parsed.iter().any(|e| e.addr.is_ipv4() != v4) {
        return Err("virtual_ipaddress mixes IPv4 and IPv6: use one instance per family".into());
    }
    Ok(parsed)
}

// ---- the interface ----

/// The interface the instance runs on, and the prefix of its subnet that
/// holds the first VIP when the host has one.
struct Interface {
    name: String,
    subnet_prefix: Option<u8>,
}

impl Interface {
    /// The VIPs as written: a VIP without a prefix takes the subnet's (unless
    /// it names its own device), else a host prefix; without `dev`, it goes
    /// on this interface.
    fn vips(&self, entries: Vec<VipEntry>) -> Vec<Vip> {
        entries
            .into_iter()
            .map(|VipEntry { addr, prefix, dev }| Vip {
                addr,
                prefix: prefix
                    .or(self.subnet_prefix.filter(|_| dev.is_none()))
                    .unwrap_or(if addr.is_ipv4() { 32 } else { 128 }),
                dev: dev.unwrap_or_else(|| self.name.clone()),
            })
            .collect()
    }
}

/// The interface: given, or the one whose subnet holds the first VIP, or the
/// one the kernel routes the VIP through.
fn interface(p: &Params, host: &[IfAddr], vips: &[VipEntry]) -> Result<Interface, String> {
    let first = &vips[0];
    let vip_addrs: Vec<IpAddr> = vips.iter().map(|v| v.addr).collect();
    let found = match p.interface.as_deref().filter(|s| !s.is_empty()) {
        Some(i) => {
            interface_word("interface", i)?;
            let prefix = host
                .iter()
                .filter(|a| a.ifname == i && !vip_addrs.contains(&a.addr))
                .find(|a| net::in_subnet(first.addr, a.addr, a.prefix))
                .map(|a| a.prefix);
            Interface {
                name: i.to_string(),
                subnet_prefix: prefix,
            }
        }
        None => match net::subnet_iface(host, first.addr, &vip_addrs) {
            Some((i, prefix)) => Interface {
                name: i,
                subnet_prefix: Some(prefix),
            },
            None => {
                let name = first
                    .dev
                    .clone()
                    .or_else(|| net::route_dev(first.addr))
                    .ok_or_else(|| {
                        format!(
                            "cannot tell which interface carries {}: no interface has an \
                             address in its subnet and no route leads to it; set interface",
                            first.addr
                        )
                    })?;
                Interface {
                    name,
                    subnet_prefix: None,
                }
            }
        },
    };
    // Found on the host or named by the kernel, it is still written into the
    // file: the same rule as a given one.
    interface_word("interface", &found.name)?;
    Ok(found)
}

// ---- unicast: our source must be ours, peers must not be ----

struct Unicast {
    src_ip: Option<IpAddr>,
    /// Sorted.
    peers: Vec<IpAddr>,
}

fn unicast(p: &Params, host: &[IfAddr], vip_addrs: &[IpAddr]) -> Result<Unicast, String> {
    let v4 = vip_addrs[0].is_ipv4();
    let own = |a: &IpAddr| host.iter().any(|h| h.addr == *a) && !vip_addrs.contains(a);
    let src_ip = match p.unicast_src_ip.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => {
            let a = parse_ip("unicast_src_ip", s)?;
            if a.is_ipv4() != v4 {
                return Err(format!(
                    "unicast_src_ip {a} is not of the virtual addresses' family"
                ));
            }
            if !host.is_empty() && !own(&a) {
                return Err(format!("unicast_src_ip {a} is not an address of this host"));
            }
            Some(a)
        }
    };
    let mut peers = vec![];
    for s in &p.unicast_peer {
        let a = parse_ip("unicast_peer", s)?;
        if a.is_ipv4() != v4 {
            return Err(format!(
                "unicast_peer {a} is not of the virtual addresses' family"
            ));
        }
        if own(&a) || Some(a) == src_ip {
            return Err(format!(
                "unicast_peer includes {a}, which is this host's own address: list only the other nodes"
            ));
        }
        if vip_addrs.contains(&a) {
            return Err(format!(
                "unicast_peer includes {a}, which is a virtual address"
            ));
        }
        if peers.contains(&a) {
            return Err(format!("unicast_peer lists {a} twice"));
        }
        peers.push(a);
    }
    // keepalived does not care about their order; templated lists (a set
    // difference of inventory groups) come in any order, and a reordering must
    // not rewrite the file and reload.
    peers.sort();
    Ok(Unicast { src_ip, peers })
}

// ---- tracking ----

/// What the instance tracks through files.
struct Tracked {
    /// HAProxy's tracked file, or the user's.
    file: Option<String>,
    services: Vec<TrackedService>,
}

fn tracking(p: &Params) -> Result<Tracked, String> {
    let file = p.track_file().map(str::to_string);
    if let Some(f) = &file {
        // Written unquoted into keepalived.conf, the haproxy.service drop-in's
        // shell commands and a tmpfiles.d line.
        syntax::path("track_file", f).map_err(|fail| fail.msg)?;
    }
    let services = tracked_services(p, file.as_deref())?;
    if let Some(d) = p
        .track_haproxy_stop_delay
        .filter(|d| !(0.0..=30.0).contains(d))
    {
        return Err(format!(
            "track_haproxy_stop_delay must be 0..30 seconds, got {d}"
        ));
    }
    for i in &p.track_interface {
        interface_word("track_interface", i)?;
    }
    Ok(Tracked { file, services })
}

// ---- scripts: vrrp_script and notify ----

fn scripts(p: &Params) -> Result<Vec<Check>, String> {
    let mut checks: Vec<Check> = vec![];
    for (n, s) in p.vrrp_script.iter().enumerate() {
        let short = s.name.clone().unwrap_or_else(|| format!("script{}", n + 1));
        let name = format!("{}_{short}", p.name);
        name_word("vrrp_script name", &short, || {
            format!(
                "vrrp_script name {short:?} is not a valid name (letters, digits, _ - . : @; at most 64)"
            )
        })?;
        if checks.iter().any(|c| c.name == name) {
            return Err(format!("vrrp_script name {short:?} is used twice"));
        }
        check_script(&format!("vrrp_script {short} script"), &s.script)?;
        if s.interval < 1 {
            return Err(format!(
                "vrrp_script {short}: interval is whole seconds, at least 1 (got {}); for faster \
                 reaction use track_file",
                s.interval
            ));
        }
        if !(-253..=253).contains(&s.weight) {
            return Err(format!(
                "vrrp_script {short}: weight must be -253..253, got {}",
                s.weight
            ));
        }
        for (k, v) in [("fall", s.fall), ("rise", s.rise), ("timeout", s.timeout)] {
            if v.is_some_and(|v| v < 1) {
                return Err(format!("vrrp_script {short}: {k} must be at least 1"));
            }
        }
        checks.push(Check {
            name,
            script: s.script.clone(),
            interval: s.interval,
            weight: s.weight,
            fall: s.fall,
            rise: s.rise,
            timeout: s.timeout,
        });
    }
    Ok(checks)
}

fn notify(p: &Params) -> Result<Vec<NotifyScript>, String> {
    let mut notify = vec![];
    for entry in p.notify.clone().unwrap_or_default().entries() {
        check_script(entry.option, entry.script)?;
        notify.push(NotifyScript {
            keyword: entry.keyword,
            script: entry.script.to_string(),
        });
    }
    Ok(notify)
}

/// Keys the module writes into `global_defs` itself whenever a block runs a
/// script; set by hand they would contradict it.
const MANAGED_GLOBAL_DEFS: [&str; 2] = ["enable_script_security", "script_user"];

/// `global_defs` as the lines to write, sorted by key so a reordered dict does
/// not rewrite the file; `None` when the option is not given (the file's own
/// lines stay). A key is a keepalived keyword (`vrrp_rt_priority`); its value
/// is a string of words, a number, or `null`/`true` for a bare keyword
/// (`vrrp_no_swap`); `false` leaves the key out. Block keywords (`{ }`) and
/// quoting are refused: `keepalived -t` then judges what the words mean.
pub fn global_defs(p: &Params) -> Result<Option<Vec<String>>, String> {
    use serde_json::Value;
    let Some(map) = &p.global_defs else {
        return Ok(None);
    };
    let mut lines = vec![];
    for (key, value) in map {
        let option = format!("global_defs.{key}");
        if key.is_empty()
            || !key.starts_with(|c: char| c.is_ascii_lowercase())
            || !key
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(format!(
                "global_defs key {key:?} is not a keepalived keyword (lower-case letters, digits \
                 and _, starting with a letter)"
            ));
        }
        if MANAGED_GLOBAL_DEFS.contains(&key.as_str()) {
            return Err(format!(
                "{option} is written by the module whenever a vrrp_script or notify script is \
                 set; leave it out"
            ));
        }
        let words = match value {
            Value::Null | Value::Bool(true) => String::new(),
            Value::Bool(false) => continue,
            Value::Number(n) => n.to_string(),
            Value::String(s) => {
                syntax::one_line(&option, s).map_err(|f| f.msg)?;
                for word in s.split_whitespace() {
                    syntax::keepalived_word(&option, word).map_err(|f| f.msg)?;
                }
                s.split_whitespace().collect::<Vec<_>>().join(" ")
            }
            Value::Array(_) | Value::Object(_) => {
                return Err(format!(
                    "{option} must be a string, a number, true, false or null; keepalived blocks \
                     ({{ ... }}) cannot be set here"
                ))
            }
        };
        lines.push(if words.is_empty() {
            key.clone()
        } else {
            format!("{key} {words}")
        });
    }
    lines.sort();
    Ok(Some(lines))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::{json, Value};

    pub(crate) fn host() -> Vec<IfAddr> {
        net::parse_addrs(
            r#"[{"ifname":"lo","addr_info":[{"local":"127.0.0.1","prefixlen":8}]},
                {"ifname":"eth0","addr_info":[{"local":"10.231.0.101","prefixlen":24}]}]"#,
        )
        .expect("addrs")
    }

    /// Params as the module gets them after validation (defaults filled in).
    pub(crate) fn params(extra: Value) -> Params {
        let mut base = json!({
            "name": "VI_1", "state": "present", "virtual_router_id": 120, "priority": 100,
            "initial_state": "BACKUP", "nopreempt": false, "preempt_delay": null,
            "interface": null, "virtual_ipaddress": ["10.231.0.20/24"], "advert_int": null,
            "vrrp_version": 3, "unicast_src_ip": null, "unicast_peer": [], "auth_pass": null,
            "track_haproxy": true, "track_haproxy_stop_delay": null, "track_file": null,
            "track_services": [], "track_interface": [], "vrrp_script": [], "notify": null,
            "config_path": "/etc/keepalived/keepalived.conf"
        });
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                b.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).expect("params")
    }

    fn err(extra: Value) -> String {
        instance(&params(extra), &host()).expect_err("must fail")
    }

    /// A bool for an int option is an int to Ansible (Python's `True` is 1),
    /// at the top and inside `vrrp_script`, and 1.0 for a float option:
    /// `Module::parse` turns it into a number, so the options check as
    /// numbers rather than failing as "parameters do not match the module's
    /// types".
    #[test]
    fn a_bool_for_an_int_option_is_a_number() {
        let args = json!({
            "name": "VI_1", "virtual_router_id": true, "priority": true,
            "preempt_delay": false, "advert_int": true,
            "virtual_ipaddress": ["10.231.0.20/24"],
            "vrrp_script": [{"name": "chk", "script": "true", "interval": true,
                             "weight": false, "fall": true}],
        });
        let spec = ansible_module::ModuleSpec::from_json(crate::params::SPEC);
        let (out, failed) = ansible_module::execute(
            "keepalived_vrrp",
            &spec,
            args.as_object().cloned().unwrap_or_default(),
            |m| {
                let p: Params = m.parse()?;
                let i = instance(&p, &host()).map_err(ansible_module::Fail::new)?;
                m.set("conf", i.render());
                Ok(())
            },
        );
        assert!(!failed, "{out:?}");
        let conf = out["conf"].as_str().unwrap_or_default();
        for line in [
            "    virtual_router_id 1\n",
            "    priority 1\n",
            "    preempt_delay 0\n",
            "    advert_int 1\n",
            "    interval 1\n    weight 0\n    fall 1\n",
        ] {
            assert!(conf.contains(line), "{line:?} in {conf}");
        }
        // What the task was given is shown as given, as Ansible shows it.
        assert_eq!(out["invocation"]["module_args"]["priority"], json!(true));
    }

    #[test]
    fn defaults_resolve_interface_and_prefix() {
        let i = instance(
            &params(json!({"virtual_ipaddress": ["10.231.0.20"]})),
            &host(),
        )
        .expect("ok");
        assert_eq!(i.interface, "eth0");
        assert_eq!(i.vips[0].prefix, 24);
        assert_eq!(i.advert_int, 0.1);
        assert_eq!(i.version, 3);
        assert_eq!(
            i.track_file.as_deref(),
            Some("/run/keepalived/haproxy.down")
        );
    }

    #[test]
    fn bad_addresses() {
        assert!(
            err(json!({"virtual_ipaddress": ["10.231.0.300/24"]})).contains("is not an address")
        );
        assert!(err(json!({"virtual_ipaddress": ["vip.example/24"]})).contains("is not an address"));
        assert!(err(json!({"virtual_ipaddress": ["10.231.0.20/33"]})).contains("prefix length"));
        assert!(
            err(json!({"virtual_ipaddress": ["10.231.0.20/24", "fd00::1/64"]})).contains("mixes")
        );
        assert!(err(json!({"virtual_ipaddress": []})).contains("at least one"));
    }

    #[test]
    fn ranges() {
        assert!(err(json!({"virtual_router_id": 0})).contains("1..255"));
        assert!(err(json!({"virtual_router_id": 256})).contains("1..255"));
        assert!(err(json!({"priority": 0})).contains("priority must be 1..255"));
        assert!(err(json!({"priority": 300})).contains("priority must be 1..255"));
        assert!(err(json!({"priority": 255})).contains("use 1..254"));
        instance(
            &params(json!({"priority": 255, "initial_state": "MASTER"})),
            &host(),
        )
        .expect("owner");
        assert!(err(json!({"nopreempt": true, "initial_state": "MASTER"})).contains("BACKUP"));
        assert!(err(json!({"preempt_delay": 2000})).contains("0..1000"));
    }

    #[test]
    fn versions_and_auth() {
        assert!(err(json!({"auth_pass": "secret"})).contains("vrrp_version 2"));
        assert!(err(json!({"vrrp_version": 2, "advert_int": 0.1})).contains("whole"));
        assert!(err(json!({"advert_int": 0.005})).contains("0.01"));
        let i = instance(
            &params(json!({"vrrp_version": 2, "auth_pass": "secret"})),
            &host(),
        )
        .expect("v2");
        assert_eq!(i.advert_int, 1.0);
        assert!(i.render().contains("auth_pass secret"));
        assert!(err(json!({"vrrp_version": 2, "auth_pass": "muchtoolong"})).contains("1..8"));
    }

    #[test]
    fn peers() {
        assert!(
            err(json!({"unicast_peer": ["10.231.0.102", "10.231.0.101"]})).contains("own address")
        );
        assert!(err(json!({"unicast_peer": ["10.231.0.999"]})).contains("not an IP"));
        assert!(
            err(json!({"unicast_src_ip": "10.231.0.55"})).contains("not an address of this host")
        );
        let i = instance(
            &params(json!({"unicast_src_ip": "10.231.0.101", "unicast_peer": ["10.231.0.102"]})),
            &host(),
        )
        .expect("ok");
        assert!(i
            .render()
            .contains("unicast_peer {\n        10.231.0.102\n    }"));
    }

    /// The peers a rendered block lists read back as they were given.
    #[test]
    fn unicast_peers_read_back_from_the_file() {
        let i = instance(
            &params(json!({"unicast_src_ip": "10.231.0.101",
                           "unicast_peer": ["10.231.0.102", "10.231.0.103"]})),
            &host(),
        )
        .expect("ok");
        let text = crate::conf::render_file(
            &[crate::conf::Block {
                name: i.name.clone(),
                text: i.render(),
            }],
            &[],
        );
        let parsed = crate::conf::parse(&text);
        let peers: Vec<String> = parsed.blocks[0]
            .unicast_peers()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(peers, ["10.231.0.102", "10.231.0.103"]);
    }

    #[test]
    fn scripts() {
        let i = instance(
            &params(json!({"track_haproxy": false, "vrrp_script": [
                {"name": "chk_haproxy", "script": "killall -0 haproxy", "interval": 2, "weight": 2,
                 "fall": null, "rise": null, "timeout": null}]})),
            &host(),
        )
        .expect("ok");
        assert!(i.track_file.is_none());
        let text = i.render();
        assert!(
            text.contains("vrrp_script VI_1_chk_haproxy {\n    script \"killall -0 haproxy\""),
            "{text}"
        );
        assert!(err(
            json!({"vrrp_script": [{"name": null, "script": "echo \"x\"", "interval": 1,
            "weight": 0, "fall": null, "rise": null, "timeout": null}]})
        )
        .contains("must not contain '\"'"));
    }

    #[test]
    fn tracked_services() {
        let i = instance(
            &params(json!({"track_services": ["knot", "apache2.service", "dns@main"]})),
            &host(),
        )
        .expect("ok");
        let got: Vec<(&str, &str)> = i
            .track_services
            .iter()
            .map(|t| (t.service.unit(), t.file.as_str()))
            .collect();
        // Sorted, beside HAProxy's file.
        assert_eq!(
            got,
            [
                ("apache2.service", "/run/keepalived/apache2.down"),
                ("dns@main.service", "/run/keepalived/dns@main.down"),
                ("knot.service", "/run/keepalived/knot.down"),
            ]
        );
        // Beside a track_file of one's own; in the default directory when
        // HAProxy is not tracked.
        let i = instance(
            &params(json!({"track_file": "/run/lb/ha.state", "track_services": ["knot"]})),
            &host(),
        )
        .expect("ok");
        assert_eq!(i.track_services[0].file, "/run/lb/knot.down");
        let i = instance(
            &params(json!({"track_haproxy": false, "track_file": "/run/lb/x",
                "track_services": ["knot"]})),
            &host(),
        )
        .expect("ok");
        assert_eq!(i.track_services[0].file, "/run/keepalived/knot.down");
        assert!(i.render().contains(
            "    track_file {\n        VI_1_track weight 0\n        VI_1_track_knot weight -1\n    }\n"
        ));
    }

    #[test]
    fn service_names_are_unit_names() {
        for (bad, why) in [
            ("", "track_services must not hold an empty name"),
            ("../knot", "track_services must not contain '/'"),
            ("knot;reboot", "track_services must not contain ';'"),
            ("knot dns", "track_services must not contain a space"),
            ("knot\n", "track_services must not contain U+000A"),
            ("kn\u{f6}t", "track_services must not contain U+00F6"),
            ("$(reboot)", "track_services must not contain '$'"),
            (".service", "names no service"),
            ("-knot", "must not start with '-'"),
            (".knot", "must not start with '.'"),
            ("knot@", "name a template's instance"),
            ("@main", "name a template's instance"),
            ("haproxy", "which track_haproxy tracks"),
            ("haproxy.service", "which track_haproxy tracks"),
        ] {
            let e = err(json!({ "track_services": [bad] }));
            assert!(e.contains(why), "{bad:?}: {e}");
            assert!(e.starts_with("track_services"), "{bad:?}: {e}");
        }
        let long = "k".repeat(247);
        assert!(service(&long).is_ok());
        assert!(err(json!({ "track_services": [format!("{long}k")] })).contains("at most 255"));
        assert!(err(json!({"track_services": ["knot", "knot.service"]}))
            .contains("lists knot.service twice"));
        assert!(err(
            json!({"track_file": "/run/keepalived/knot.down", "track_services": ["knot"]})
        )
        .contains("which is track_file"));
        for ok in [
            "knot",
            "knot.service",
            r"a:b\x2dc",
            "dns@main",
            "unbound-1.x_y",
        ] {
            assert!(service(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn global_defs_become_sorted_lines() {
        let p = params(json!({"global_defs": {
            "vrrp_rt_priority": 50, "vrrp_no_swap": null, "enable_traps": false,
            "router_id": "  lb1 ", "vrrp_garp_interval": 0.001, "vrrp_no_swap2": true,
            "vrrp_mcast_group4": "224.0.0.18"}}));
        assert_eq!(
            global_defs(&p).expect("ok").expect("given"),
            [
                "router_id lb1",
                "vrrp_garp_interval 0.001",
                "vrrp_mcast_group4 224.0.0.18",
                "vrrp_no_swap",
                "vrrp_no_swap2",
                "vrrp_rt_priority 50",
            ]
        );
        assert_eq!(global_defs(&params(json!({}))).expect("ok"), None);
        let empty = params(json!({"global_defs": {}}));
        assert_eq!(global_defs(&empty).expect("ok"), Some(vec![]));
    }

    #[test]
    fn global_defs_refuse_what_would_break_the_file() {
        let refused = |defs: Value| {
            global_defs(&params(json!({ "global_defs": defs }))).expect_err("must fail")
        };
        assert!(refused(json!({"Router_ID": "x"})).contains("not a keepalived keyword"));
        assert!(refused(json!({"router id": "x"})).contains("not a keepalived keyword"));
        assert!(refused(json!({"9lives": 1})).contains("not a keepalived keyword"));
        assert!(refused(json!({"router_id": "lb1\nvrrp_strict"})).contains("U+000A"));
        assert!(refused(json!({"router_id": "lb1 }"})).contains("global_defs.router_id"));
        assert!(refused(json!({"router_id": "\"lb1\""})).contains("global_defs.router_id"));
        assert!(refused(json!({"router_id": "a#b"})).contains("global_defs.router_id"));
        assert!(refused(json!({"notification_email": ["a@b"]})).contains("blocks"));
        assert!(refused(json!({"script_user": "nobody"})).contains("written by the module"));
    }
}
