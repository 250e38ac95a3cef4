//! Instances' IPv4 addresses from the DHCP leases of the LXD-managed networks
//! they are on, so that LXD need not enter every instance to read its state.
//!
//! `GET /1.0/instances?recursion=1` gives each instance's NICs (its expanded
//! devices: the `network`, or the `parent` of a bridged NIC, and the interface
//! `name` inside) and their MACs (`hwaddr`, else `volatile.<device>.hwaddr`);
//! `GET /1.0/networks/<name>/leases` gives what dnsmasq leased on a managed
//! bridge. A lease counts only when both its MAC and its host name are the
//! instance's (a lease left by a deleted instance, or one whose MAC now belongs
//! to another instance, never does), and only when there is exactly one such
//! IPv4 lease. Everything else needs the instance's state: see [`from_leases`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::Value;

use crate::config::{Config, Family};
use crate::instance::{null_default, Address, Instance, InstanceState, Nic};

/// One element of `GET /1.0/networks/<name>/leases`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Lease {
    /// The instance name for a `dynamic` or `static` lease (LXD gives dnsmasq
    /// each instance's name with its MAC).
    #[serde(default, deserialize_with = "null_default")]
    pub hostname: String,
    #[serde(default, deserialize_with = "null_default")]
    pub hwaddr: String,
    #[serde(default, deserialize_with = "null_default")]
    pub address: String,
    /// `dynamic`, `static`, `gateway` or `uplink`.
    #[serde(default, rename = "type", deserialize_with = "null_default")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_default")]
    pub location: String,
    /// Newer LXD names the project; 5.0 does not (it filters by the project
    /// asked for instead).
    #[serde(default, deserialize_with = "null_default")]
    pub project: String,
}

/// Parse the whole API answer (`{"type": "sync", "metadata": [...]}`) or the
/// bare list.
pub fn parse_leases(json: &str) -> Result<Vec<Lease>, serde_json::Error> {
    leases_from_value(serde_json::from_str(json)?)
}

/// [`parse_leases`] on an already parsed answer (or its `metadata`).
pub fn leases_from_value(value: Value) -> Result<Vec<Lease>, serde_json::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Answer {
        Envelope { metadata: Vec<Lease> },
        List(Vec<Lease>),
    }
    Ok(match serde_json::from_value::<Answer>(value)? {
        Answer::Envelope { metadata } | Answer::List(metadata) => metadata,
    })
}

/// What the inventory knows of one LXD-managed bridge: the prefix length of
/// its IPv4 subnet and its leases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkLeases {
    /// `24` for `ipv4.address: 10.231.0.1/24`.
    pub prefix: String,
    pub leases: Vec<Lease>,
}

impl NetworkLeases {
    /// From `GET /1.0/networks/<name>` and its leases; `None` unless it is a
    /// managed bridge with an IPv4 subnet (only those lease IPv4 addresses).
    pub fn new(network: &Value, leases: Vec<Lease>) -> Option<Self> {
        if !is_managed_bridge(network) {
            return None;
        }
        let cidr = network.pointer("/config/ipv4.address")?.as_str()?;
        let (_, prefix) = cidr.split_once('/')?;
        prefix.parse::<u8>().ok().filter(|p| *p <= 32)?;
        Some(Self {
            prefix: prefix.to_owned(),
            leases,
        })
    }
}

/// Whether `GET /1.0/networks/<name>` describes a bridge LXD manages (and so
/// runs dnsmasq on, whose leases it can list).
pub fn is_managed_bridge(network: &Value) -> bool {
    network.get("managed").and_then(Value::as_bool) == Some(true)
        && network.get("type").and_then(Value::as_str) == Some("bridge")
}

/// One NIC device of an instance, as its expanded devices describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicDevice {
    /// The device's key (`eth0`), which names its `volatile.*` keys.
    pub device: String,
    /// The interface name inside the instance: the device's `name`, else its key.
    pub interface: String,
    /// Lower case; empty when LXD has not picked one yet.
    pub hwaddr: String,
    /// The LXD network whose leases may hold its address: `network`, or the
    /// `parent` of a `bridged` NIC. `None` for macvlan, physical, routed, ...
    pub network: Option<String>,
}

/// The NIC devices of `inst`.
pub fn nic_devices(inst: &Instance) -> Vec<NicDevice> {
    inst.expanded_devices
        .iter()
        .filter(|(_, d)| d.get("type").map(String::as_str) == Some("nic"))
        .map(|(key, d)| {
            let get = |k: &str| d.get(k).map(String::as_str).filter(|v| !v.is_empty());
            let hwaddr = get("hwaddr")
                .or_else(|| inst.config_value(&format!("volatile.{key}.hwaddr")))
                .unwrap_or_default()
                .to_ascii_lowercase();
            NicDevice {
                device: key.clone(),
                interface: get("name").unwrap_or(key).to_owned(),
                hwaddr,
                network: nic_network(|k| get(k)).map(String::from),
            }
        })
        .collect()
}

/// The LXD network a NIC device is on (see [`NicDevice::network`]), from
/// its keys.
fn nic_network<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<&'a str> {
    get("network").or_else(|| {
        (get("nictype") == Some("bridged"))
            .then(|| get("parent"))
            .flatten()
    })
}

/// The networks the NICs of `profiles` (`GET /1.0/profiles?recursion=1`) are
/// on: the ones most instances' NICs come from, known before the instances
/// are listed.
pub fn profile_networks(profiles: &Value) -> BTreeSet<String> {
    let devices = profiles
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("devices")?.as_object())
        .flat_map(|d| d.values());
    devices
        .filter(|d| d.get("type").and_then(Value::as_str) == Some("nic"))
        .filter_map(|d| {
            nic_network(|k| d.get(k).and_then(Value::as_str).filter(|v| !v.is_empty()))
                .map(String::from)
        })
        .collect()
}

/// The networks whose leases may give addresses of `instances`: those their
/// NICs name (whether LXD manages them shows when they are asked).
pub fn networks<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> BTreeSet<String> {
    instances
        .into_iter()
        .filter(|i| may_use_leases(i))
        .flat_map(nic_devices)
        .filter_map(|n| n.network)
        .collect()
}

/// Containers only: inside a VM the guest names its interfaces (`enp5s0`),
/// so the device names say nothing about which address is on which.
fn may_use_leases(inst: &Instance) -> bool {
    inst.kind == "container"
}

/// The one IPv4 address leased on `net` to this NIC of `inst`: a `dynamic` or
/// `static` lease whose MAC is the NIC's and whose host name is the
/// instance's (and project, where LXD names it). `None` when there is no such
/// lease, or when two such leases disagree (the instance's state decides then).
pub fn lease_for(
    inst: &Instance,
    project: &str,
    nic: &NicDevice,
    net: &NetworkLeases,
) -> Option<Ipv4Addr> {
    if nic.hwaddr.is_empty() {
        return None;
    }
    let mut found: BTreeSet<Ipv4Addr> = net
        .leases
        .iter()
        .filter(|l| matches!(l.kind.as_str(), "dynamic" | "static"))
        .filter(|l| l.hwaddr.eq_ignore_ascii_case(&nic.hwaddr))
        .filter(|l| l.hostname.eq_ignore_ascii_case(&inst.name))
        .filter(|l| l.project.is_empty() || l.project == project)
        .filter_map(|l| l.address.parse::<Ipv4Addr>().ok())
        .collect();
    let first = found.pop_first()?;
    found.is_empty().then_some(first)
}

/// The state the leases tell for a running `inst` (of `project`, the one
/// listed): each NIC on a managed bridge with its leased address, as
/// `address/prefix`. `None` when they cannot say which address the state
/// would give `ansible_host`; then the instance's state is read:
/// - not a container, or `family` is `inet6` (the leases hold IPv4 only);
/// - the first interface of `cfg.interface` has no lease of its own: it is
///   not an LXD NIC (made inside the instance), it is macvlan or on an
///   unmanaged bridge, or its address did not come from this DHCP (not yet,
///   or set inside the instance).
pub fn from_leases(
    inst: &Instance,
    project: &str,
    cfg: &Config,
    networks: &BTreeMap<String, NetworkLeases>,
) -> Option<InstanceState> {
    if cfg.family != Family::Inet || !may_use_leases(inst) {
        return None;
    }
    let mut network = BTreeMap::new();
    for nic in nic_devices(inst) {
        let Some(net) = nic.network.as_deref().and_then(|n| networks.get(n)) else {
            continue;
        };
        let Some(address) = lease_for(inst, project, &nic, net) else {
            continue;
        };
        let host_name = inst
            .config_value(&format!("volatile.{}.host_name", nic.device))
            .unwrap_or_default()
            .to_owned();
        network.insert(
            nic.interface,
            Nic {
                addresses: vec![Address {
                    family: Family::Inet.as_str().into(),
                    address: address.to_string(),
                    netmask: net.prefix.clone(),
                    scope: "global".into(),
                }],
                hwaddr: nic.hwaddr,
                host_name,
                state: "up".into(),
                kind: "broadcast".into(),
            },
        );
    }
    if !network.contains_key(cfg.interface.first()?) {
        return None;
    }
    Some(InstanceState {
        status: inst.status.clone(),
        network,
    })
}

/// The instances whose state the inventory needs: running ones it lists.
pub fn wanted(instances: &[Instance], cfg: &Config) -> Vec<usize> {
    (0..instances.len())
        .filter(|&i| crate::inventory::is_listed(&instances[i], cfg) && instances[i].is_running())
        .collect()
}

/// Gives each of `wanted` (indices into `instances`, a `recursion=1`
/// listing of `project`) the state its leases tell ([`from_leases`]); returns
/// those whose state must be read instead.
pub fn fill_from_leases(
    instances: &mut [Instance],
    wanted: &[usize],
    project: &str,
    cfg: &Config,
    networks: &BTreeMap<String, NetworkLeases>,
) -> Vec<usize> {
    let mut unknown = Vec::new();
    for &i in wanted {
        let inst = &mut instances[i];
        match from_leases(inst, inst.project_or(project), cfg, networks) {
            Some(state) => inst.state = Some(state),
            None => unknown.push(i),
        }
    }
    unknown
}

/// Whether one `recursion=2` listing costs less than reading `unknown` of the
/// `running` instances' states one by one. LXD spends about the same on each
/// instance's state either way (0.76 s for 50 in one listing, 0.92 s for 50
/// requests, 8 at a time, on 2 CPUs), so the listing wins once more than half
/// need their state (a host where most instances are on macvlan): the worst
/// case stays what `address_source: state` costs, plus the `recursion=1`.
pub fn one_listing_is_cheaper(unknown: usize, running: usize) -> bool {
    unknown > 1 && unknown * 2 > running
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TypeFilter;
    use crate::instance::parse_answer;
    use crate::inventory::Inventory;
    use serde_json::json;

    #[test]
    fn profile_networks_are_those_its_nics_name() {
        let profiles = json!([
            {"name": "default", "devices": {
                "eth0": {"type": "nic", "network": "vrrpbr0"},
                "root": {"type": "disk", "path": "/", "pool": "p"}}},
            {"name": "own", "devices": {
                "eth1": {"type": "nic", "nictype": "bridged", "parent": "br1"},
                "eth2": {"type": "nic", "nictype": "macvlan", "parent": "eth0"},
                "eth3": {"type": "nic", "network": ""}}},
            {"name": "bare"}
        ]);
        let names: Vec<String> = profile_networks(&profiles).into_iter().collect();
        assert_eq!(names, ["br1", "vrrpbr0"]);
        assert!(profile_networks(&json!({"error": "x"})).is_empty());
    }

    // Recorded from LXD 5.0.2 in project `xpool`: xl-a (NIC from the profile,
    // `network: vrrpbr0`), xl-b (its own NIC, `nictype: bridged`, `parent:
    // vrrpbr0`), xl-c (stopped); the leases and the network as LXD listed them
    // (the network's `used_by` trimmed to these), and `recursion=2` a moment
    // later for comparison.
    const LISTING: &str = include_str!("../tests/fixtures/instances_recursion1_leases.json");
    const WITH_STATE: &str = include_str!("../tests/fixtures/instances_recursion2_leases.json");
    const LEASES: &str = include_str!("../tests/fixtures/leases_vrrpbr0.json");
    const NETWORK: &str = include_str!("../tests/fixtures/network_vrrpbr0.json");
    const PROJECT: &str = "xpool";

    fn network(leases: Vec<Lease>) -> BTreeMap<String, NetworkLeases> {
        let net: Value = serde_json::from_str(NETWORK).expect("fixture parses");
        let net = NetworkLeases::new(&net["metadata"], leases).expect("a managed bridge");
        BTreeMap::from([("vrrpbr0".to_owned(), net)])
    }

    fn recorded() -> (Vec<Instance>, BTreeMap<String, NetworkLeases>) {
        let instances = parse_answer(LISTING).expect("fixture parses");
        (
            instances,
            network(parse_leases(LEASES).expect("fixture parses")),
        )
    }

    fn instance(name: &str) -> Instance {
        let (instances, _) = recorded();
        instances
            .into_iter()
            .find(|i| i.name == name)
            .unwrap_or_else(|| panic!("{name} in the fixture"))
    }

    fn lease(hostname: &str, hwaddr: &str, address: &str, kind: &str) -> Lease {
        Lease {
            hostname: hostname.into(),
            hwaddr: hwaddr.into(),
            address: address.into(),
            kind: kind.into(),
            location: "none".into(),
            project: String::new(),
        }
    }

    const XL_A_MAC: &str = "00:16:3e:42:a4:25";

    /// The address xl-a gets from these leases (with the recorded network).
    fn xl_a_with(leases: Vec<Lease>) -> Option<String> {
        let inst = instance("xl-a");
        let state = from_leases(&inst, PROJECT, &Config::default(), &network(leases))?;
        Some(
            state
                .network
                .get("eth0")?
                .addresses
                .first()?
                .address
                .clone(),
        )
    }

    #[test]
    fn recorded_leases_give_every_output_field_the_state_gives_but_lxd_addresses() {
        let (mut instances, networks) = recorded();
        let cfg = Config {
            project: PROJECT.into(),
            ..Config::default()
        };
        let wanted = wanted(&instances, &cfg);
        assert_eq!(wanted.len(), 2, "xl-a and xl-b run, xl-c is stopped");
        let unknown = fill_from_leases(&mut instances, &wanted, PROJECT, &cfg, &networks);
        assert!(unknown.is_empty(), "both from their leases: {unknown:?}");

        let ours = Inventory::build(&instances, &cfg).list_json();
        let theirs = Inventory::build(&parse_answer(WITH_STATE).expect("parses"), &cfg).list_json();
        let strip = |v: &Value| {
            let mut v = v.clone();
            for hv in v["_meta"]["hostvars"].as_object_mut().into_iter().flatten() {
                hv.1.as_object_mut().map(|m| m.remove("lxd_addresses"));
            }
            v
        };
        assert_eq!(strip(&ours), strip(&theirs));
        let hv = &ours["_meta"]["hostvars"];
        assert_eq!(hv["xl-a"]["ansible_host"], "10.231.0.167");
        assert_eq!(hv["xl-b"]["ansible_host"], "10.231.0.187");
        assert_eq!(hv["xl-b"]["lxd_ip"], "10.231.0.187");
        assert!(hv["xl-c"].get("ansible_host").is_none());
        // The leased address only; the state lists the link-local IPv6 too.
        assert_eq!(
            hv["xl-a"]["lxd_addresses"],
            json!({"eth0": ["10.231.0.167/24"]})
        );
        assert_eq!(
            theirs["_meta"]["hostvars"]["xl-a"]["lxd_addresses"],
            json!({"eth0": ["10.231.0.167/24", "fe80::216:3eff:fe42:a425/64"]})
        );
        assert_eq!(hv["xl-c"]["lxd_addresses"], json!({}));
    }

    #[test]
    fn nics_from_the_network_or_a_bridged_parent_with_their_macs() {
        assert_eq!(
            nic_devices(&instance("xl-a")),
            [NicDevice {
                device: "eth0".into(),
                interface: "eth0".into(),
                hwaddr: XL_A_MAC.into(),
                network: Some("vrrpbr0".into()),
            }]
        );
        let b = nic_devices(&instance("xl-b"));
        assert_eq!(b[0].network.as_deref(), Some("vrrpbr0"));
        assert_eq!(b[0].hwaddr, "00:16:3e:1f:8f:0b");

        let mut inst = instance("xl-a");
        inst.expanded_devices = serde_json::from_value(json!({
            "lan": {"type": "nic", "nictype": "macvlan", "parent": "eth0"},
            "net1": {"type": "nic", "network": "other", "name": "eth1", "hwaddr": "00:16:3E:AA:BB:CC"},
            "root": {"type": "disk", "path": "/", "pool": "default"}
        }))
        .expect("devices");
        let nics = nic_devices(&inst);
        assert_eq!(nics.len(), 2, "{nics:?}");
        assert_eq!(nics[0].interface, "lan");
        assert_eq!(nics[0].network, None, "macvlan: no LXD leases");
        assert_eq!(nics[0].hwaddr, "", "no volatile.lan.hwaddr");
        assert_eq!(nics[1].interface, "eth1");
        assert_eq!(
            nics[1].hwaddr, "00:16:3e:aa:bb:cc",
            "the device's own, lower case"
        );
        assert_eq!(
            networks([&inst, &instance("xl-b")]),
            BTreeSet::from(["other".to_owned(), "vrrpbr0".to_owned()])
        );
    }

    #[test]
    fn only_a_lease_whose_mac_and_instance_match_counts() {
        let own = lease("xl-a", XL_A_MAC, "10.231.0.167", "dynamic");
        assert_eq!(
            xl_a_with(vec![own.clone()]).as_deref(),
            Some("10.231.0.167")
        );
        // The MAC as dnsmasq may write it, and a static lease (ipv4.address).
        let upper = lease("XL-A", &XL_A_MAC.to_uppercase(), "10.231.0.167", "dynamic");
        assert_eq!(xl_a_with(vec![upper]).as_deref(), Some("10.231.0.167"));
        let fixed = lease("xl-a", XL_A_MAC, "10.231.0.20", "static");
        assert_eq!(xl_a_with(vec![fixed]).as_deref(), Some("10.231.0.20"));

        let stale = [
            // A deleted instance of the same name: another MAC.
            lease("xl-a", "00:16:3e:00:00:01", "10.231.0.150", "dynamic"),
            // Another instance (or this one renamed): the MAC without the name.
            lease("xl-old", XL_A_MAC, "10.231.0.151", "dynamic"),
            // Neither.
            lease("gone", "00:16:3e:00:00:02", "10.231.0.152", "dynamic"),
            // The bridge itself, an IPv6 lease, an address that is no IPv4.
            lease("vrrpbr0.gw", "", "10.231.0.1", "gateway"),
            lease("xl-a", XL_A_MAC, "fd42::5", "dynamic"),
            lease("xl-a", XL_A_MAC, "", "dynamic"),
            lease("xl-a", XL_A_MAC, "10.231.0.153", "uplink"),
        ];
        assert_eq!(xl_a_with(stale.to_vec()), None, "no lease of its own");
        let mut with_own = stale.to_vec();
        with_own.push(own.clone());
        assert_eq!(xl_a_with(with_own).as_deref(), Some("10.231.0.167"));

        // Two leases of its own that disagree: the state decides.
        let other = lease("xl-a", XL_A_MAC, "10.231.0.168", "dynamic");
        assert_eq!(xl_a_with(vec![own.clone(), other]), None);
        // The same address twice (static and dynamic) is one.
        let same = lease("xl-a", XL_A_MAC, "10.231.0.167", "static");
        assert_eq!(
            xl_a_with(vec![own.clone(), same]).as_deref(),
            Some("10.231.0.167")
        );
        // Where LXD names the project, it must be the instance's.
        let mut elsewhere = own.clone();
        elsewhere.project = "default".into();
        assert_eq!(xl_a_with(vec![elsewhere]), None);
        let mut here = own;
        here.project = PROJECT.into();
        assert_eq!(xl_a_with(vec![here]).as_deref(), Some("10.231.0.167"));
    }

    #[test]
    fn the_state_is_read_where_the_leases_cannot_tell() {
        let (_, nets) = recorded();
        let a = instance("xl-a");
        let cfg = Config::default();
        assert!(from_leases(&a, PROJECT, &cfg, &nets).is_some());

        // Not a managed bridge (macvlan, unmanaged, unknown): not in the map.
        assert!(from_leases(&a, PROJECT, &cfg, &BTreeMap::new()).is_none());
        // No lease yet.
        assert!(from_leases(&a, PROJECT, &cfg, &network(Vec::new())).is_none());
        // A VM names its interfaces itself.
        let mut vm = a.clone();
        vm.kind = "virtual-machine".into();
        assert!(from_leases(&vm, PROJECT, &cfg, &nets).is_none());
        assert!(networks([&vm]).is_empty());
        // The leases hold IPv4 only.
        let v6 = Config {
            family: Family::Inet6,
            ..Config::default()
        };
        assert!(from_leases(&a, PROJECT, &v6, &nets).is_none());
        // An interface first in the list that is no LXD NIC (made inside the
        // instance) may hold the address: only the state shows.
        let mut eth9_first = Config {
            interface: vec!["eth9".into(), "eth0".into()],
            ..Config::default()
        };
        assert!(from_leases(&a, PROJECT, &eth9_first, &nets).is_none());
        eth9_first.interface.reverse();
        assert!(from_leases(&a, PROJECT, &eth9_first, &nets).is_some());
        // A macvlan NIC: no network to ask.
        let mut mv = a.clone();
        mv.expanded_devices.insert(
            "eth0".into(),
            BTreeMap::from([
                ("type".to_owned(), "nic".to_owned()),
                ("nictype".to_owned(), "macvlan".to_owned()),
                ("parent".to_owned(), "eth0".to_owned()),
            ]),
        );
        assert!(from_leases(&mv, PROJECT, &cfg, &nets).is_none());
    }

    #[test]
    fn most_states_unknown_is_one_listing_a_few_are_requests_of_their_own() {
        assert!(!one_listing_is_cheaper(0, 50));
        assert!(!one_listing_is_cheaper(1, 1), "one request of its own");
        assert!(!one_listing_is_cheaper(25, 50));
        assert!(one_listing_is_cheaper(26, 50));
        assert!(one_listing_is_cheaper(50, 50));
        assert!(one_listing_is_cheaper(2, 2));
    }

    #[test]
    fn only_running_listed_instances_are_looked_up() {
        let (instances, _) = recorded();
        let cfg = Config::default();
        let names = |w: Vec<usize>| -> Vec<String> {
            w.into_iter().map(|i| instances[i].name.clone()).collect()
        };
        assert_eq!(names(wanted(&instances, &cfg)), ["xl-a", "xl-b"]);
        let vms = Config {
            type_filter: TypeFilter::VirtualMachine,
            ..Config::default()
        };
        assert!(wanted(&instances, &vms).is_empty());
        let stopped = Config {
            state: vec!["stopped".into()],
            ..Config::default()
        };
        assert!(wanted(&instances, &stopped).is_empty());
    }

    #[test]
    fn only_managed_bridges_with_an_ipv4_subnet_lease_addresses() {
        let net: Value = serde_json::from_str(NETWORK).expect("parses");
        let net = &net["metadata"];
        assert_eq!(
            NetworkLeases::new(net, Vec::new()).map(|n| n.prefix),
            Some("24".to_owned())
        );
        let mut unmanaged = net.clone();
        unmanaged["managed"] = json!(false);
        assert!(NetworkLeases::new(&unmanaged, Vec::new()).is_none());
        let mut macvlan = net.clone();
        macvlan["type"] = json!("macvlan");
        assert!(NetworkLeases::new(&macvlan, Vec::new()).is_none());
        let mut no_v4 = net.clone();
        no_v4["config"]["ipv4.address"] = json!("none");
        assert!(NetworkLeases::new(&no_v4, Vec::new()).is_none());
        // What LXD answers for a host NIC it does not manage.
        let physical = json!({"config": {}, "name": "eth0", "type": "physical", "managed": false});
        assert!(!is_managed_bridge(&physical));
    }
}
