//! A zone as data, its file, its serial, and the reverse zones its addresses
//! give.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use ansible_module::dns_names::{self as names, Name};

/// What a record holds. Order: how records of one owner are listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Data {
    Ns(Name),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
    Ptr(Name),
    Txt(String),
}

impl Data {
    pub fn kind(&self) -> &'static str {
        match self {
            Data::Ns(_) => "NS",
            Data::A(_) => "A",
            Data::Aaaa(_) => "AAAA",
            Data::Cname(_) => "CNAME",
            Data::Ptr(_) => "PTR",
            Data::Txt(_) => "TXT",
        }
    }

    fn render(&self, origin: &Name) -> String {
        match self {
            Data::Ns(n) | Data::Cname(n) | Data::Ptr(n) => n.in_file_of(origin),
            Data::A(a) => a.to_string(),
            Data::Aaaa(a) => a.to_string(),
            Data::Txt(t) => names::text(t),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Record {
    pub owner: Name,
    pub data: Data,
    pub ttl: Option<u32>,
}

/// The SOA's fields other than the serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// The primary name server (MNAME): the first of the zone's name servers.
    pub primary: Name,
    /// The mailbox (RNAME).
    pub contact: Name,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    /// How long a resolver keeps a "no such name" answer (RFC 2308).
    pub negative_ttl: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub origin: Name,
    pub ttl: u32,
    pub soa: Soa,
    /// NS records and the rest; rendered in a fixed order whatever order they came in.
    pub records: BTreeSet<Record>,
}

/// The text after the serial on the SOA's serial line: how the module finds the
/// serial of a file it wrote.
const SERIAL_MARK: &str = "; serial";

impl Zone {
    /// The zone file with `serial`.
    pub fn render(&self, serial: u32) -> String {
        let o = &self.origin;
        let s = &self.soa;
        let mut out = format!(
            "; Managed by Ansible (dns_zone): written from the task's records; edits here are\n\
             ; replaced on the next run.\n\
             $ORIGIN {o}\n\
             $TTL {ttl}\n\
             @\tIN\tSOA\t{primary} {contact} (\n\
             \t\t{serial}\t{SERIAL_MARK}\n\
             \t\t{refresh}\t; refresh\n\
             \t\t{retry}\t; retry\n\
             \t\t{expire}\t; expire\n\
             \t\t{negative}\t; negative answers\n\
             \t\t)\n",
            ttl = self.ttl,
            primary = s.primary.in_file_of(o),
            contact = s.contact.in_file_of(o),
            refresh = s.refresh,
            retry = s.retry,
            expire = s.expire,
            negative = s.negative_ttl,
        );
        let mut records: Vec<&Record> = self.records.iter().collect();
        // The apex first (its NS records lead), then by name.
        records.sort_by_key(|r| {
            (
                r.owner != *o,
                r.owner.bare().rsplit('.').collect::<Vec<_>>(),
                &r.data,
            )
        });
        for r in records {
            let ttl = r.ttl.map(|t| format!("{t}\t")).unwrap_or_default();
            let _ = writeln!(
                out,
                "{}\t{ttl}IN\t{}\t{}",
                r.owner.in_file_of(o),
                r.data.kind(),
                r.data.render(o)
            );
        }
        out
    }

    /// The file name Knot reads the zone from (its `%s.zone` template).
    pub fn file_name(&self) -> String {
        format!("{}.zone", self.origin.bare())
    }
}

/// The serial of a zone file the module wrote (the number on the line marked
/// `; serial`).
pub fn serial_of(text: &str) -> Option<u32> {
    text.lines()
        .find(|l| l.trim_end().ends_with(SERIAL_MARK))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// The serial after `old` (RFC 1982: one more, wrapping past 2^32 - 1 to 0),
/// or `floor` (the time of the run, so every server that changes its copy in
/// one run gets the same serial) when that is later.
pub fn next_serial(old: Option<u32>, floor: u32) -> u32 {
    match old {
        None => floor.max(1),
        Some(old) => {
            let next = old.wrapping_add(1);
            // floor is "later" than old in serial arithmetic: less than 2^31 ahead.
            let ahead = floor.wrapping_sub(old);
            if ahead > 0 && ahead < 1 << 31 {
                floor
            } else {
                next
            }
        }
    }
}

/// The reverse zones (`C.B.A.in-addr.arpa.`, one per /24) for every A record of
/// `forward` whose owner is in `with_ptr`: a PTR per address, to the first owner
/// (in name order) that has it. Same SOA fields, TTL and name servers.
pub fn reverse_zones(forward: &Zone, with_ptr: &BTreeSet<Name>) -> Vec<Zone> {
    let mut by_zone: BTreeMap<Name, BTreeMap<u8, Name>> = BTreeMap::new();
    for r in &forward.records {
        if let Data::A(addr) = r.data {
            if !with_ptr.contains(&r.owner) {
                continue;
            }
            let [a, b, c, d] = addr.octets();
            let zone = reverse_v4(a, b, c);
            by_zone
                .entry(zone)
                .or_default()
                .entry(d)
                .or_insert_with(|| r.owner.clone());
        }
    }
    let ns: Vec<Data> = forward
        .records
        .iter()
        .filter(|r| r.owner == forward.origin && matches!(r.data, Data::Ns(_)))
        .map(|r| r.data.clone())
        .collect();
    by_zone
        .into_iter()
        .map(|(origin, ptrs)| {
            let mut records: BTreeSet<Record> = ns
                .iter()
                .map(|d| Record {
                    owner: origin.clone(),
                    data: d.clone(),
                    ttl: None,
                })
                .collect();
            records.extend(ptrs.into_iter().map(|(last, target)| Record {
                owner: origin.child(&last.to_string()),
                data: Data::Ptr(target),
                ttl: None,
            }));
            Zone {
                origin,
                ttl: forward.ttl,
                soa: forward.soa.clone(),
                records,
            }
        })
        .collect()
}

/// `c.b.a.in-addr.arpa.`: the /24 reverse zone of `a.b.c.0`.
fn reverse_v4(a: u8, b: u8, c: u8) -> Name {
    names::zone("reverse zone", &format!("{c}.{b}.{a}.in-addr.arpa"))
        .unwrap_or_else(|_| unreachable!("octets make valid labels"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        names::zone("t", s).unwrap()
    }

    fn sample() -> Zone {
        let origin = name("vrrp.internal");
        let rec = |owner: &str, data: Data| Record {
            owner: name(owner),
            data,
            ttl: None,
        };
        Zone {
            origin: origin.clone(),
            ttl: 300,
            soa: Soa {
                primary: name("lb-01.vrrp.internal"),
                contact: name("hostmaster.vrrp.internal"),
                refresh: 3600,
                retry: 600,
                expire: 1209600,
                negative_ttl: 60,
            },
            records: [
                rec(
                    "web-01.vrrp.internal",
                    Data::A("10.231.0.21".parse().unwrap()),
                ),
                rec(
                    "lb-01.vrrp.internal",
                    Data::A("10.231.0.11".parse().unwrap()),
                ),
                rec("vrrp.internal", Data::Ns(name("lb-01.vrrp.internal"))),
                rec("www.vrrp.internal", Data::A("10.231.0.10".parse().unwrap())),
                rec("vip.vrrp.internal", Data::A("10.231.0.10".parse().unwrap())),
                rec("vrrp.internal", Data::Txt("managed \"here\"".into())),
            ]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn renders_a_zone_file() {
        let text = sample().render(7);
        assert_eq!(
            text.lines().skip(2).collect::<Vec<_>>(),
            [
                "$ORIGIN vrrp.internal.",
                "$TTL 300",
                "@\tIN\tSOA\tlb-01 hostmaster (",
                "\t\t7\t; serial",
                "\t\t3600\t; refresh",
                "\t\t600\t; retry",
                "\t\t1209600\t; expire",
                "\t\t60\t; negative answers",
                "\t\t)",
                "@\tIN\tNS\tlb-01",
                "@\tIN\tTXT\t\"managed \\\"here\\\"\"",
                "lb-01\tIN\tA\t10.231.0.11",
                "vip\tIN\tA\t10.231.0.10",
                "web-01\tIN\tA\t10.231.0.21",
                "www\tIN\tA\t10.231.0.10",
            ]
        );
        assert_eq!(serial_of(&text), Some(7));
    }

    #[test]
    fn serials_move_forward() {
        assert_eq!(next_serial(None, 1_700_000_000), 1_700_000_000);
        assert_eq!(next_serial(Some(5), 1_700_000_000), 1_700_000_000);
        // Two changes within one second (or a clock behind): one more.
        assert_eq!(
            next_serial(Some(1_700_000_000), 1_700_000_000),
            1_700_000_001
        );
        assert_eq!(
            next_serial(Some(1_700_000_005), 1_700_000_000),
            1_700_000_006
        );
        assert_eq!(next_serial(Some(u32::MAX), 3), 3);
        assert_eq!(next_serial(Some(u32::MAX), 0), 0);
        assert_eq!(next_serial(Some(u32::MAX), u32::MAX), 0);
    }

    #[test]
    fn reverse_zones_per_slash_24() {
        let fwd = sample();
        let with_ptr: BTreeSet<Name> = fwd.records.iter().map(|r| r.owner.clone()).collect();
        let rev = reverse_zones(&fwd, &with_ptr);
        assert_eq!(rev.len(), 1);
        let text = rev[0].render(1);
        assert!(text.contains("$ORIGIN 0.231.10.in-addr.arpa.\n"), "{text}");
        assert!(text.contains("@\tIN\tNS\tlb-01.vrrp.internal.\n"), "{text}");
        assert!(
            text.contains("11\tIN\tPTR\tlb-01.vrrp.internal.\n"),
            "{text}"
        );
        assert!(
            text.contains("21\tIN\tPTR\tweb-01.vrrp.internal.\n"),
            "{text}"
        );
        // Two names on the VIP: the first in name order gets the PTR.
        assert!(text.contains("10\tIN\tPTR\tvip.vrrp.internal.\n"), "{text}");
        assert!(!text.contains("www"), "{text}");
        let none = reverse_zones(&fwd, &BTreeSet::new());
        assert!(none.is_empty());
    }
}
