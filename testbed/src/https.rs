//! A bounded HTTPS probe: the plain probe's pacing and outage counting
//! ([`crate::probe`]), over TLS verified against a given CA, connecting to an
//! address while it asks for (and checks) a name, as `curl --resolve` does.
//!
//! Every request is a new connection with a full handshake (session
//! resumption is off), so its time is handshake + request, and each answer
//! says which certificate (by serial number) served it: a certificate
//! rotation shows as the serials changing with no failed request between.
//! Like the plain probe it only talks to loopback or addresses the kernel
//! routes through the project's bridge.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde::Serialize;

use crate::probe::{check_route, ms, paced, Outage, Report, MAX_DURATION};

#[derive(Debug, Clone)]
pub struct HttpsProbe {
    pub addr: SocketAddr,
    /// The name sent as SNI and `Host`, and checked against the certificate.
    pub server_name: String,
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub max_duration: Duration,
    config: Arc<ClientConfig>,
}

/// One answer over HTTPS.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// The server certificate's serial number, in hex.
    pub serial: String,
    /// `TLSv1_3`, `TLSv1_2`.
    pub version: String,
    /// Connect, handshake, request and the whole answer.
    pub elapsed: Duration,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty line of the body (our pages name their host).
    pub fn first_line(&self) -> String {
        self.body
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .chars()
            .take(100)
            .collect()
    }
}

/// The HTTP probe's report (`ok`: 2xx answers over a verified TLS
/// connection; `no_answer` includes a failed handshake or verification), and
/// what TLS adds; its fields read through to the HTTP report's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct HttpsReport {
    #[serde(flatten)]
    pub base: Report,
    /// Serial of the certificate that served each answer -> count.
    pub serials: BTreeMap<String, u64>,
    /// Handshake + request time of the 2xx answers, in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// The first few errors, to say why requests failed.
    pub errors: Vec<String>,
}

impl std::ops::Deref for HttpsReport {
    type Target = Report;

    fn deref(&self) -> &Report {
        &self.base
    }
}

impl std::ops::DerefMut for HttpsReport {
    fn deref_mut(&mut self) -> &mut Report {
        &mut self.base
    }
}

/// The `q` quantile (0..=1) of sorted `values`, nearest rank.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// A client configuration that trusts only the CA certificates in
/// `ca_pem`, resumes no session, and offers no ALPN (HTTP/1.1).
pub fn client_config(ca_pem: &Path) -> Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_pem)
        .with_context(|| format!("reading {}", ca_pem.display()))?
    {
        roots
            .add(cert.with_context(|| format!("a certificate in {}", ca_pem.display()))?)
            .context("adding the CA")?;
    }
    if roots.is_empty() {
        bail!("no certificate in {}", ca_pem.display());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The serial number of a DER certificate, in hex (no leading zero bytes).
pub fn serial_of(der: &[u8]) -> Option<String> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { [0] version
    // OPTIONAL, serialNumber INTEGER, ... }, ... }
    let (tag, cert, _) = tlv(der)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, tbs, _) = tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (mut tag, mut value, mut rest) = tlv(tbs)?;
    if tag == 0xa0 {
        (tag, value, rest) = tlv(rest)?;
    }
    let _ = rest;
    if tag != 0x02 {
        return None;
    }
    let trimmed: Vec<u8> = value.iter().copied().skip_while(|b| *b == 0).collect();
    Some(if trimmed.is_empty() {
        "00".into()
    } else {
        trimmed.iter().map(|b| format!("{b:02X}")).collect()
    })
}

/// One DER tag-length-value: the tag, the value and what follows.
fn tlv(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = data.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

impl HttpsProbe {
    /// Probes `https://<server_name>:<port>/` at `ip` (which must be loopback
    /// or routed through the project's bridge), trusting the CA certificates
    /// in `ca_pem`.
    pub fn new(ip: IpAddr, port: u16, server_name: &str, ca_pem: &Path) -> Result<HttpsProbe> {
        Self::via(ip, port, server_name, ca_pem, &crate::bridge())
    }

    /// As [`HttpsProbe::new`], for an address routed through `bridge`.
    pub fn via(
        ip: IpAddr,
        port: u16,
        server_name: &str,
        ca_pem: &Path,
        bridge: &str,
    ) -> Result<HttpsProbe> {
        check_route(ip, bridge)?;
        ServerName::try_from(server_name.to_string())
            .with_context(|| format!("not a server name: {server_name:?}"))?;
        Ok(HttpsProbe {
            addr: SocketAddr::new(ip, port),
            server_name: server_name.to_string(),
            path: "/".into(),
            interval: Duration::from_millis(20),
            timeout: Duration::from_millis(1000),
            max_duration: Duration::from_secs(120),
            config: client_config(ca_pem)?,
        })
    }

    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(5));
        self
    }

    pub fn max_duration(mut self, d: Duration) -> Self {
        self.max_duration = d.min(MAX_DURATION);
        self
    }

    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    pub fn path(mut self, path: &str) -> Self {
        self.path = path.to_string();
        self
    }

    /// One GET of `path` with extra header lines, on a new connection.
    pub fn get(&self, path: &str, headers: &[&str]) -> Result<Answer> {
        let start = Instant::now();
        let name = ServerName::try_from(self.server_name.clone())
            .with_context(|| format!("not a server name: {:?}", self.server_name))?;
        let tcp = TcpStream::connect_timeout(&self.addr, self.timeout)
            .with_context(|| format!("connecting to {}", self.addr))?;
        tcp.set_read_timeout(Some(self.timeout))?;
        tcp.set_write_timeout(Some(self.timeout))?;
        tcp.set_nodelay(true)?;
        let conn = ClientConnection::new(self.config.clone(), name).context("TLS client")?;
        let mut tls = StreamOwned::new(conn, tcp);
        let extra: String = headers.iter().map(|h| format!("{h}\r\n")).collect();
        let request = format!(
            "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: vrrp-probe\r\n{extra}\r\n",
            self.server_name
        );
        // The first write completes the handshake.
        tls.write_all(request.as_bytes())
            .context("handshake or request")?;
        tls.flush()?;
        let mut buf = Vec::with_capacity(2048);
        match Read::by_ref(&mut tls)
            .take(256 * 1024)
            .read_to_end(&mut buf)
        {
            Ok(_) => {}
            // A peer that closes without close_notify after a whole answer.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !buf.is_empty() => {}
            Err(e) => return Err(e).context("reading the answer"),
        }
        let elapsed = start.elapsed();
        let serial = tls
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|c| serial_of(c.as_ref()))
            .unwrap_or_default();
        let version = tls
            .conn
            .protocol_version()
            .map(|v| format!("{v:?}"))
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&buf);
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status: u16 = lines
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|s| s.parse().ok())
            .with_context(|| {
                format!(
                    "no HTTP status in {:?}",
                    text.chars().take(80).collect::<String>()
                )
            })?;
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Ok(Answer {
            status,
            headers,
            body: body.to_string(),
            serial,
            version,
            elapsed,
        })
    }

    /// Probes until `stop` is set or `max_duration` passes.
    pub fn run_until(&self, stop: &AtomicBool) -> HttpsReport {
        let mut report = HttpsReport::default();
        let mut outage = Outage::default();
        let mut times = vec![];
        let elapsed = paced(self.interval, self.max_duration, stop, |sent| {
            let answer = self.get(&self.path, &[]);
            if let Err(e) = &answer {
                if report.errors.len() < 5 {
                    report.errors.push(format!("{e:#}"));
                }
            }
            let ok = report
                .base
                .count(answer.as_ref().ok().map(|a| (a.status, a.first_line())));
            if let (true, Ok(a)) = (ok, &answer) {
                *report.serials.entry(a.serial.clone()).or_default() += 1;
                times.push(a.elapsed.as_secs_f64() * 1000.0);
            }
            outage.record(sent, ok);
        });
        times.sort_by(f64::total_cmp);
        let round = |v: f64| (v * 10.0).round() / 10.0;
        report.p50_ms = round(quantile(&times, 0.50));
        report.p99_ms = round(quantile(&times, 0.99));
        report.max_ms = round(times.last().copied().unwrap_or_default());
        report.longest_outage_ms = outage.longest_ms();
        report.duration_ms = ms(elapsed);
        report
    }

    pub fn run_for(mut self, d: Duration) -> HttpsReport {
        self.max_duration = d.min(MAX_DURATION);
        self.run_until(&AtomicBool::new(false))
    }

    /// Starts probing in the background.
    pub fn start(self) -> RunningHttps {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || self.run_until(&flag));
        RunningHttps { stop, handle }
    }
}

/// An HTTPS probe running in a thread.
pub struct RunningHttps {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<HttpsReport>,
}

impl RunningHttps {
    pub fn stop(self) -> HttpsReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

/// A throwaway certificate authority for tests, made with `openssl` in a
/// directory of the caller's (EC P-256 keys: quick to make).
#[derive(Debug, Clone)]
pub struct TestCa {
    pub dir: std::path::PathBuf,
    /// The CA certificate (what a client trusts).
    pub cert: std::path::PathBuf,
    key: std::path::PathBuf,
}

fn openssl(args: &[&str]) -> Result<()> {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .context("running openssl (install it)")?;
    if !out.status.success() {
        bail!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl TestCa {
    /// A new CA in `dir` (`ca.crt`, `ca.key`).
    pub fn new(dir: &Path, name: &str) -> Result<TestCa> {
        let cert = dir.join("ca.crt");
        let key = dir.join("ca.key");
        let (c, k) = (cert.to_string_lossy(), key.to_string_lossy());
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &k,
            "-out",
            &c,
            "-days",
            "30",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        Ok(TestCa {
            dir: dir.to_path_buf(),
            cert,
            key,
        })
    }

    /// A server certificate for `dns` names and `ips`, with serial number
    /// `serial` (hex), signed by this CA: the PEM HAProxy loads (certificate
    /// then key).
    pub fn issue(&self, dns: &[&str], ips: &[IpAddr], serial: &str) -> Result<String> {
        let base = self.dir.join(format!("server-{serial}"));
        let (key, csr, crt, ext) = (
            base.with_extension("key"),
            base.with_extension("csr"),
            base.with_extension("crt"),
            base.with_extension("ext"),
        );
        let san: Vec<String> = dns
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(ips.iter().map(|i| format!("IP:{i}")))
            .collect();
        std::fs::write(
            &ext,
            format!(
                "subjectAltName={}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
                san.join(",")
            ),
        )?;
        let p = |x: &std::path::PathBuf| x.to_string_lossy().into_owned();
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &p(&key),
            "-out",
            &p(&csr),
            "-subj",
            &format!("/CN={}", dns.first().copied().unwrap_or("server")),
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&self.cert),
            "-CAkey",
            &p(&self.key),
            "-set_serial",
            &format!("0x{serial}"),
            "-days",
            "30",
            "-out",
            &p(&crt),
            "-extfile",
            &p(&ext),
        ])?;
        Ok(format!(
            "{}{}",
            std::fs::read_to_string(&crt)?,
            std::fs::read_to_string(&key)?
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v, 1.0), 100.0);
        assert_eq!(quantile(&[7.0], 0.99), 7.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn serial_from_der() {
        // SEQUENCE { SEQUENCE { [0] { INTEGER 2 }, INTEGER 0x00ABCD, ... } }
        let tbs = [
            0xa0, 0x03, 0x02, 0x01, 0x02, 0x02, 0x03, 0x00, 0xab, 0xcd, 0x05, 0x00,
        ];
        let mut inner = vec![0x30, tbs.len() as u8];
        inner.extend(tbs);
        let mut cert = vec![0x30, inner.len() as u8];
        cert.extend(inner);
        assert_eq!(serial_of(&cert).as_deref(), Some("ABCD"));
        // Without the version, and with a long-form length.
        let tbs = [0x02, 0x01, 0x07];
        let cert = [0x30, 0x81, 0x05, 0x30, 0x03, tbs[0], tbs[1], tbs[2]];
        assert_eq!(serial_of(&cert).as_deref(), Some("07"));
        assert!(serial_of(&[0x30, 0x05, 0x01]).is_none());
        assert!(serial_of(&[]).is_none());
    }

    #[test]
    fn a_test_ca_issues_what_the_client_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = TestCa::new(dir.path(), "t-ca").expect("ca");
        let ip: IpAddr = "10.231.0.10".parse().expect("ip");
        let pem = ca.issue(&["www.vrrp.test"], &[ip], "1a2B").expect("issue");
        assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
        let der = CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .expect("a certificate")
            .expect("PEM");
        assert_eq!(serial_of(der.as_ref()).as_deref(), Some("1A2B"));
        assert!(client_config(&ca.cert).is_ok());
    }

    #[test]
    fn refuses_addresses_off_the_bridge() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.crt");
        std::fs::write(&ca, "").expect("write");
        let err = HttpsProbe::new("192.0.2.1".parse().expect("ip"), 443, "www.example", &ca)
            .expect_err("must refuse");
        assert!(err.to_string().contains("refusing to probe"), "{err}");
    }
}
