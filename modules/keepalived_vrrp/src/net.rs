//! What the host's network looks like, read from `ip -j` (iproute2's JSON).

use std::net::IpAddr;

use std::time::Duration;

use ansible_module::service;
use serde_json::Value;

/// How long one `ip` call may take.
const IP_TIMEOUT: Duration = Duration::from_secs(10);

/// One address on one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfAddr {
    pub ifname: String,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Parses `ip -j addr` output.
pub fn parse_addrs(json: &str) -> Result<Vec<IfAddr>, String> {
    let v: Value =
        serde_json::from_str(json).map_err(|e| format!("cannot read `ip -j addr` output: {e}"))?;
    let mut out = vec![];
    for link in v.as_array().into_iter().flatten() {
        let Some(ifname) = link["ifname"].as_str() else {
            continue;
        };
        for a in link["addr_info"].as_array().into_iter().flatten() {
            let (Some(local), Some(prefix)) = (a["local"].as_str(), a["prefixlen"].as_u64()) else {
                continue;
            };
            if let (Ok(addr), Ok(prefix)) = (local.parse(), u8::try_from(prefix)) {
                out.push(IfAddr {
                    ifname: ifname.to_string(),
                    addr,
                    prefix,
                });
            }
        }
    }
    Ok(out)
}

/// The host's addresses, all families.
pub fn host_addrs() -> Result<Vec<IfAddr>, String> {
    let out = service::run_bounded("ip", &["-j", "addr", "show"], IP_TIMEOUT).map_err(|f| f.msg)?;
    parse_addrs(&out)
}

/// The device `ip -j route get <addr>` names, unless it is loopback.
pub fn route_dev(addr: IpAddr) -> Option<String> {
    let out =
        service::run_bounded("ip", &["-j", "route", "get", &addr.to_string()], IP_TIMEOUT).ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    v.as_array()?
        .iter()
        .filter_map(|r| r["dev"].as_str())
        .find(|d| *d != "lo")
        .map(str::to_string)
}

/// Whether `addr` lies in `net/prefix`.
pub fn in_subnet(addr: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (addr, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The interface whose own subnet holds `vip` (addresses in `exclude`, the VIPs
/// themselves, do not count), with that subnet's prefix length.
pub fn subnet_iface(addrs: &[IfAddr], vip: IpAddr, exclude: &[IpAddr]) -> Option<(String, u8)> {
    addrs
        .iter()
        .filter(|a| !exclude.contains(&a.addr) && a.ifname != "lo")
        .filter(|a| !a.addr.is_loopback() && !is_link_local(a.addr))
        .find(|a| in_subnet(vip, a.addr, a.prefix))
        .map(|a| (a.ifname.clone(), a.prefix))
}

fn is_link_local(addr: IpAddr) -> bool {
    match addr {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"[{"ifindex":1,"ifname":"lo","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8}]},
      {"ifindex":8,"ifname":"eth0","addr_info":[{"family":"inet","local":"10.231.0.100","prefixlen":24},
        {"family":"inet","local":"10.231.0.20","prefixlen":24},
        {"family":"inet6","local":"fe80::216:3eff:fecd:2cff","prefixlen":64}]},
      {"ifindex":9,"ifname":"eth1","addr_info":[{"family":"inet","local":"192.168.5.2","prefixlen":28}]}]"#;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn reads_addresses() {
        let a = parse_addrs(SAMPLE).expect("parse");
        assert_eq!(a.len(), 5);
        assert_eq!(a[1].ifname, "eth0");
        assert_eq!(a[1].prefix, 24);
    }

    #[test]
    fn finds_the_interface_of_the_vip_subnet() {
        let a = parse_addrs(SAMPLE).expect("parse");
        assert_eq!(
            subnet_iface(&a, ip("10.231.0.20"), &[ip("10.231.0.20")]),
            Some(("eth0".into(), 24))
        );
        assert_eq!(
            subnet_iface(&a, ip("192.168.5.14"), &[]),
            Some(("eth1".into(), 28))
        );
        assert_eq!(subnet_iface(&a, ip("192.168.5.17"), &[]), None);
        assert_eq!(subnet_iface(&a, ip("127.0.0.5"), &[]), None);
    }

    #[test]
    fn subnet_math() {
        assert!(in_subnet(ip("10.0.0.255"), ip("10.0.0.1"), 24));
        assert!(!in_subnet(ip("10.0.1.0"), ip("10.0.0.1"), 24));
        assert!(in_subnet(ip("1.2.3.4"), ip("9.9.9.9"), 0));
        assert!(in_subnet(ip("fd00::5"), ip("fd00::1"), 64));
        assert!(!in_subnet(ip("fd00::5"), ip("10.0.0.1"), 0));
    }
}
