//! DNS over UDP for tests and benchmarks: one query, and a bounded query
//! loop that counts lost queries and latency. Like the HTTP probe, it only
//! talks to loopback or addresses the kernel routes through the given bridge.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use serde::Serialize;

use crate::probe::{check_route, ms, paced, Outage, MAX_DURATION};

/// What a server answered.
#[derive(Debug, Clone)]
pub struct Answer {
    /// `NoError`, `NXDomain`, `Refused`, ...
    pub rcode: String,
    /// A and AAAA data in the answer section.
    pub addresses: Vec<IpAddr>,
    /// PTR, CNAME and NS targets in the answer section (with their final dot).
    pub names: Vec<String>,
    /// The SOA serial, for an SOA query.
    pub serial: Option<u32>,
    pub authoritative: bool,
    pub elapsed: Duration,
}

/// One query of `kind` (`A`, `PTR`, `SOA`, ...) for `name` to `server`:53,
/// with no retry. The server's address must be routed through `bridge`.
pub fn query(
    server: IpAddr,
    bridge: &str,
    name: &str,
    kind: &str,
    timeout: Duration,
) -> Result<Answer> {
    check_route(server, bridge)?;
    let socket = UdpSocket::bind(if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })?;
    socket.set_read_timeout(Some(timeout))?;
    ask(&socket, SocketAddr::new(server, 53), name, kind)
}

/// `query` through the project's bridge with a 2 s timeout, for tests: a
/// query that gets no answer panics, naming it.
pub fn expect_answer(server: IpAddr, name: &str, kind: &str) -> Answer {
    query(server, &crate::bridge(), name, kind, Duration::from_secs(2))
        .unwrap_or_else(|e| panic!("{kind} {name} at {server}: {e}"))
}

/// The serial `server` serves for `zone` (no final dot), for tests.
pub fn serial(server: IpAddr, zone: &str) -> u32 {
    expect_answer(server, &format!("{zone}."), "SOA")
        .serial
        .unwrap_or_else(|| panic!("no SOA for {zone} at {server}"))
}

/// The name to ask for a PTR of `addr` (`21.0.231.10.in-addr.arpa.`).
pub fn reverse_name(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(a) => {
            let [w, x, y, z] = a.octets();
            format!("{z}.{y}.{x}.{w}.in-addr.arpa.")
        }
        IpAddr::V6(a) => {
            let nibbles: Vec<String> = a
                .octets()
                .iter()
                .rev()
                .flat_map(|b| [format!("{:x}", b & 0xf), format!("{:x}", b >> 4)])
                .collect();
            format!("{}.ip6.arpa.", nibbles.join("."))
        }
    }
}

fn ask(socket: &UdpSocket, server: SocketAddr, name: &str, kind: &str) -> Result<Answer> {
    let qname = Name::from_str(name).with_context(|| format!("bad name {name:?}"))?;
    let qtype = RecordType::from_str(kind).with_context(|| format!("bad type {kind:?}"))?;
    let id: u16 = rand_id();
    let mut msg = Message::new(id, MessageType::Query, OpCode::Query);
    msg.add_query(Query::query(qname, qtype));
    let wire = msg.to_bytes()?;
    let sent = Instant::now();
    socket.send_to(&wire, server)?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        let reply = Message::from_bytes(&buf[..n]).context("unreadable DNS reply")?;
        if from != server || reply.metadata.id != id {
            continue; // a late answer to an earlier query
        }
        return Ok(answer(&reply, sent.elapsed()));
    }
}

fn answer(reply: &Message, elapsed: Duration) -> Answer {
    let mut out = Answer {
        rcode: format!("{:?}", reply.metadata.response_code),
        addresses: Vec::new(),
        names: Vec::new(),
        serial: None,
        authoritative: reply.metadata.authoritative,
        elapsed,
    };
    for r in &reply.answers {
        match &r.data {
            RData::A(a) => out.addresses.push(IpAddr::V4(a.0)),
            RData::AAAA(a) => out.addresses.push(IpAddr::V6(a.0)),
            RData::PTR(n) => out.names.push(n.0.to_string()),
            RData::CNAME(n) => out.names.push(n.0.to_string()),
            RData::NS(n) => out.names.push(n.0.to_string()),
            RData::SOA(soa) => out.serial = Some(soa.serial),
            _ => {}
        }
    }
    out
}

/// Query ids only tell our own answers apart; no security rests on them.
fn rand_id() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Instant::now().elapsed().as_nanos());
    h.finish() as u16
}

/// A bounded loop of A queries for one name.
#[derive(Debug, Clone)]
pub struct DnsProbe {
    pub server: IpAddr,
    pub name: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_duration: Duration,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct DnsReport {
    pub queries: u64,
    /// NOERROR with at least one address.
    pub answered: u64,
    /// No answer within the timeout.
    pub lost: u64,
    /// An answer that was not NOERROR with an address (REFUSED, SERVFAIL, ...).
    pub wrong: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub longest_outage_ms: f64,
    pub duration_ms: f64,
}

impl DnsProbe {
    /// Queries for `name` at `server` (routed through `bridge`): every 20 ms,
    /// 300 ms timeout, at most 120 s, until told otherwise.
    pub fn new(server: IpAddr, bridge: &str, name: &str) -> Result<DnsProbe> {
        check_route(server, bridge)?;
        if Name::from_str(name).is_err() {
            bail!("bad name {name:?}");
        }
        Ok(DnsProbe {
            server,
            name: name.to_string(),
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(300),
            max_duration: Duration::from_secs(120),
        })
    }

    pub fn interval(mut self, d: Duration) -> Self {
        self.interval = d.max(Duration::from_millis(5));
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d.min(MAX_DURATION);
        self
    }

    pub fn run_until(&self, stop: &AtomicBool) -> DnsReport {
        let mut report = DnsReport::default();
        let mut outage = Outage::default();
        let mut latencies = Vec::new();
        let server = SocketAddr::new(self.server, 53);
        let socket = UdpSocket::bind(if self.server.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })
        .and_then(|s| s.set_read_timeout(Some(self.timeout)).map(|_| s));
        let Ok(socket) = socket else {
            return report;
        };
        let elapsed = paced(self.interval, self.max_duration, stop, |sent| {
            report.queries += 1;
            let ok = match ask(&socket, server, &self.name, "A") {
                Ok(a) if a.rcode == "NoError" && !a.addresses.is_empty() => {
                    latencies.push(a.elapsed);
                    report.answered += 1;
                    true
                }
                Ok(_) => {
                    report.wrong += 1;
                    false
                }
                Err(_) => {
                    report.lost += 1;
                    false
                }
            };
            outage.record(sent, ok);
        });
        latencies.sort();
        let pick = |q: f64| {
            latencies
                .get(((latencies.len() as f64 - 1.0) * q).round() as usize)
                .map(|d| ms_fine(*d))
                .unwrap_or_default()
        };
        report.p50_ms = pick(0.5);
        report.p99_ms = pick(0.99);
        report.max_ms = pick(1.0);
        report.longest_outage_ms = outage.longest_ms();
        report.duration_ms = ms(elapsed);
        report
    }

    pub fn run_for(mut self, d: Duration) -> DnsReport {
        self.max_duration = d.min(MAX_DURATION);
        self.run_until(&AtomicBool::new(false))
    }

    pub fn start(self) -> RunningDns {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || self.run_until(&flag));
        RunningDns { stop, handle }
    }
}

/// Latency to the microsecond: sub-millisecond answers are the norm.
fn ms_fine(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

pub struct RunningDns {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<DnsReport>,
}

impl RunningDns {
    pub fn stop(self) -> DnsReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_servers_off_the_bridge() {
        let e = query(
            "192.0.2.1".parse().unwrap(),
            "vrrpbr0",
            "a.internal.",
            "A",
            Duration::from_millis(10),
        );
        assert!(e.unwrap_err().to_string().contains("refusing to probe"));
    }

    #[test]
    fn reverse_names() {
        assert_eq!(
            reverse_name("10.231.0.21".parse().unwrap()),
            "21.0.231.10.in-addr.arpa."
        );
        assert!(reverse_name("fd00::1".parse().unwrap()).starts_with("1.0.0.0."));
    }

    /// A loopback server that answers one query with NXDOMAIN.
    #[test]
    fn reads_a_reply_from_a_loopback_server() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            if let Ok((n, from)) = server.recv_from(&mut buf) {
                let q = Message::from_bytes(&buf[..n]).unwrap();
                let mut r = Message::new(q.metadata.id, MessageType::Response, OpCode::Query);
                r.metadata.response_code = hickory_proto::op::ResponseCode::NXDomain;
                let _ = server.send_to(&r.to_bytes().unwrap(), from);
            }
        });
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let a = ask(
            &socket,
            SocketAddr::new("127.0.0.1".parse().unwrap(), port),
            "x.internal.",
            "A",
        )
        .unwrap();
        assert_eq!(a.rcode, "NXDomain");
    }
}
