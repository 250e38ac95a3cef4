//! haproxy.cfg as this module writes it: rendering the whole file from the
//! options, and reading back the parts a later run needs (a backend's servers,
//! their admin state, the check settings and the cookie key) from the file,
//! which stays the truth across reloads and restarts.

use std::fmt::Write as _;
use std::net::IpAddr;

/// A server's administrative state, as HAProxy's runtime API sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admin {
    Ready,
    Drain,
    Maint,
}

impl Admin {
    pub fn as_str(self) -> &'static str {
        match self {
            Admin::Ready => "ready",
            Admin::Drain => "drain",
            Admin::Maint => "maint",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub name: String,
    pub address: String,
    pub port: u16,
    /// The configured weight; a drained server is written with weight 0 and
    /// this weight in a comment, so enabling it restores it.
    pub weight: u16,
    /// A weight given as a percentage of `weight` (0-99; 100 is `None`):
    /// the server runs at that share, written as the line's weight with the
    /// percentage and the configured weight in a comment, so it holds over
    /// reloads and runs.
    pub percent: Option<u16>,
    pub check: bool,
    pub backup: bool,
    pub admin: Admin,
}

impl Server {
    /// `addr:port` as HAProxy reads it (the port is after the last colon, also
    /// for IPv6).
    pub fn addr_port(&self) -> String {
        format!("{}:{}", self.address, self.port)
    }

    /// Whether the address is an IP literal (a name is only resolved at start).
    pub fn has_ip(&self) -> bool {
        self.address.parse::<IpAddr>().is_ok()
    }

    /// The configured weight scaled by the percentage, as HAProxy computes
    /// `set weight <b>/<s> N%` from the initial weight.
    pub fn scaled_weight(&self) -> u16 {
        match self.percent {
            None => self.weight,
            Some(p) => {
                let w = u32::from(self.weight) * u32::from(p) / 100;
                u16::try_from(w.min(256)).unwrap_or(256)
            }
        }
    }

    /// The weight HAProxy runs the server with.
    pub fn effective_weight(&self) -> u16 {
        if self.admin == Admin::Drain {
            0
        } else {
            self.scaled_weight()
        }
    }

    /// The configured weight as the comment of a line writes it.
    fn weight_note(&self) -> String {
        match self.percent {
            Some(p) => format!("weight {p}% of {}", self.weight),
            None => format!("weight {}", self.weight),
        }
    }

    pub fn config_line(&self) -> String {
        let mut line = format!(
            "    server {} {} weight {}",
            self.name,
            self.addr_port(),
            self.effective_weight()
        );
        if self.check {
            line.push_str(" check");
        }
        if self.backup {
            line.push_str(" backup");
        }
        match self.admin {
            Admin::Maint => line.push_str(" disabled"),
            Admin::Drain => {
                let _ = write!(line, "  # drain, {}", self.weight_note());
            }
            Admin::Ready => {}
        }
        if self.admin != Admin::Drain && self.percent.is_some() {
            let _ = write!(line, "  # {}", self.weight_note());
        }
        line
    }

    /// The arguments of `add server <b>/<s> ...` that create the same server
    /// as the config line; `defaults` are the backend's `default-server`
    /// settings, which HAProxy does not apply to servers added at runtime.
    pub fn add_args(&self, defaults: &str) -> String {
        let mut args = format!("{} weight {}", self.addr_port(), self.effective_weight());
        if self.check {
            args.push_str(" check");
        }
        if !defaults.is_empty() {
            args.push(' ');
            args.push_str(defaults);
        }
        if self.backup {
            args.push_str(" backup");
        }
        args
    }
}

/// What a run needs to know about a backend that is already in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackendInfo {
    pub servers: Vec<Server>,
    /// The settings after `default-server`.
    pub default_server: String,
    pub cookie_key: Option<String>,
    pub balance: String,
}

impl BackendInfo {
    /// Whether `add server` is accepted (the algorithm must be dynamic).
    pub fn dynamic_lb(&self) -> bool {
        !matches!(self.balance.as_str(), "static-rr")
    }
}

/// The keywords that start a section of haproxy.cfg (HAProxy 2.6 to 3.x).
pub const SECTION_KEYWORDS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "mailers",
    "program",
    "http-errors",
    "ring",
    "cache",
    "log-forward",
    "crt-store",
    "traces",
];

/// A section of the file: its header line and every line up to the next one.
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub lines: Vec<String>,
}

/// The lines before the first section, and the sections.
pub fn split_sections(text: &str) -> (Vec<String>, Vec<Section>) {
    let mut preamble = vec![];
    let mut sections: Vec<Section> = vec![];
    for line in text.lines() {
        let starts_section = !line.starts_with([' ', '\t'])
            && line
                .split_whitespace()
                .next()
                .is_some_and(|w| SECTION_KEYWORDS.contains(&w));
        if starts_section {
            let mut words = line.split_whitespace();
            let kind = words.next().unwrap_or_default().to_string();
            let name = words.next().unwrap_or_default().to_string();
            sections.push(Section {
                kind,
                name,
                lines: vec![line.to_string()],
            });
        } else if let Some(last) = sections.last_mut() {
            last.lines.push(line.to_string());
        } else {
            preamble.push(line.to_string());
        }
    }
    (preamble, sections)
}

/// A line's words before any comment.
pub fn words(line: &str) -> Vec<&str> {
    line.split('#')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

fn is_server_line(line: &str) -> bool {
    words(line).first() == Some(&"server")
}

/// Reads a `server` line back; `None` for one this module cannot represent.
pub fn parse_server_line(line: &str) -> Option<Server> {
    let w = words(line);
    if w.first() != Some(&"server") || w.len() < 3 {
        return None;
    }
    let (address, port) = w[2].rsplit_once(':')?;
    let mut server = Server {
        name: w[1].to_string(),
        address: address.trim_matches(['[', ']']).to_string(),
        port: port.parse().ok()?,
        weight: 1,
        percent: None,
        check: false,
        backup: false,
        admin: Admin::Ready,
    };
    let mut i = 3;
    while i < w.len() {
        match w[i] {
            "weight" => {
                server.weight = w.get(i + 1)?.parse().ok()?;
                i += 1;
            }
            "check" => server.check = true,
            "backup" => server.backup = true,
            "disabled" => server.admin = Admin::Maint,
            _ => {}
        }
        i += 1;
    }
    // The comment keeps what the line's weight does not say: `drain,
    // weight 100` (drained, configured at 100), `weight 50% of 100` (running
    // at half of 100), or both.
    let comment = line
        .split_once('#')
        .map(|(_, c)| c.trim())
        .unwrap_or_default();
    let (drained, note) = match comment.strip_prefix("drain") {
        Some(rest) => (true, rest.trim_start_matches(',').trim()),
        None => (false, comment),
    };
    let drained = drained && server.admin == Admin::Ready;
    if drained {
        server.admin = Admin::Drain;
    }
    if let Some(w) = note.strip_prefix("weight").map(str::trim) {
        match w.split_once("% of ") {
            Some((pct, base)) => {
                if let (Ok(pct), Ok(base)) = (pct.trim().parse::<u16>(), base.trim().parse::<u16>())
                {
                    if pct < 100 && base <= 256 {
                        server.weight = base;
                        server.percent = Some(pct);
                    }
                }
            }
            None if drained => {
                if let Ok(base) = w.parse() {
                    server.weight = base;
                }
            }
            None => {}
        }
    }
    Some(server)
}

/// The backends (and listen sections) of the file that have a server named
/// `server`, in file order.
pub fn backends_with_server(text: &str, server: &str) -> Vec<String> {
    let (_, sections) = split_sections(text);
    sections
        .iter()
        .filter(|s| s.kind == "backend" || s.kind == "listen")
        .filter(|s| {
            s.lines[1..]
                .iter()
                .any(|l| is_server_line(l) && words(l).get(1) == Some(&server))
        })
        .map(|s| s.name.clone())
        .collect()
}

/// The backend `name` as the file has it, if it is there.
pub fn parse_backend(text: &str, name: &str) -> Option<BackendInfo> {
    let (_, sections) = split_sections(text);
    let section = sections
        .iter()
        .find(|s| (s.kind == "backend" || s.kind == "listen") && s.name == name)?;
    let mut info = BackendInfo {
        balance: "roundrobin".into(),
        ..BackendInfo::default()
    };
    for line in &section.lines[1..] {
        let w = words(line);
        match w.first() {
            Some(&"server") => info.servers.extend(parse_server_line(line)),
            Some(&"default-server") => info.default_server = w[1..].join(" "),
            Some(&"dynamic-cookie-key") => info.cookie_key = w.get(1).map(|s| s.to_string()),
            Some(&"balance") => info.balance = w.get(1).unwrap_or(&"roundrobin").to_string(),
            _ => {}
        }
    }
    Some(info)
}

/// The secrets a file holds, to be masked in everything the module returns:
/// `stats auth` passwords, `insecure-password`s of userlists, and
/// dynamic-cookie keys (but not a key that is its backend's name, the old
/// default: masking it would mask the backend's name everywhere).
pub fn secrets(text: &str) -> Vec<String> {
    let (_, sections) = split_sections(text);
    let mut out = vec![];
    for section in &sections {
        for line in &section.lines {
            let w = words(line);
            match w.as_slice() {
                ["stats", "auth", user_pass, ..] => {
                    if let Some((_, password)) = user_pass.split_once(':') {
                        out.push(password.to_string());
                    }
                }
                ["dynamic-cookie-key", key, ..] if *key != section.name => {
                    out.push(key.to_string());
                }
                ["user", ..] => {
                    if let Some(i) = w.iter().position(|x| *x == "insecure-password") {
                        out.extend(w.get(i + 1).map(|p| p.to_string()));
                    }
                }
                _ => {}
            }
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Whether the file holds a secret (it is then kept root-only, 0600).
pub fn holds_secret(text: &str) -> bool {
    let (_, sections) = split_sections(text);
    sections.iter().flat_map(|s| s.lines.iter()).any(|line| {
        let w = words(line);
        match w.as_slice() {
            ["stats", "auth", ..] | ["dynamic-cookie-key", ..] => true,
            ["user", ..] => w.contains(&"insecure-password"),
            _ => false,
        }
    })
}

/// The file with the `server` lines of backend `name` replaced by `servers`
/// (in the place of the first old one, or at the end of the section);
/// everything else is kept as it is. `None` if there is no such backend.
pub fn replace_servers(text: &str, name: &str, servers: &[Server]) -> Option<String> {
    let (preamble, mut sections) = split_sections(text);
    let section = sections
        .iter_mut()
        .find(|s| (s.kind == "backend" || s.kind == "listen") && s.name == name)?;
    let rendered: Vec<String> = servers.iter().map(Server::config_line).collect();
    let first = section.lines.iter().position(|l| is_server_line(l));
    let mut lines: Vec<String> = section
        .lines
        .iter()
        .filter(|l| !is_server_line(l))
        .cloned()
        .collect();
    let at = match first {
        Some(i) => i,
        None => {
            // After the last non-blank line of the section.
            lines
                .iter()
                .rposition(|l| !l.trim().is_empty())
                .map_or(lines.len(), |i| i + 1)
        }
    };
    lines.splice(at..at, rendered);
    section.lines = lines;
    let mut out = String::new();
    for line in preamble
        .iter()
        .chain(sections.iter().flat_map(|s| s.lines.iter()))
    {
        out.push_str(line);
        out.push('\n');
    }
    Some(out)
}

/// The file without the `server` lines of backend `name`: two files that are
/// equal this way differ only in what the runtime API can change.
pub fn without_servers(text: &str, name: &str) -> String {
    replace_servers(text, name, &[]).unwrap_or_else(|| text.to_string())
}

/// Everything the whole file is rendered from.
#[derive(Debug, Clone)]
pub struct Layout {
    pub admin_socket: String,
    /// The TLS defaults in `global` (with HTTPS on the frontend).
    pub tls: Option<TlsGlobal>,
    /// Lines added at the end of `global` and `defaults` (`extra`).
    pub extra_global: Vec<String>,
    pub extra_defaults: Vec<String>,
    pub timeouts: Vec<(&'static str, String)>,
    pub frontend: Option<FrontendCfg>,
    pub backend: Option<BackendCfg>,
    pub stats: Option<StatsCfg>,
}

/// `ssl-default-bind-*` in `global`.
#[derive(Debug, Clone)]
pub struct TlsGlobal {
    pub ciphers: String,
    pub ciphersuites: String,
    pub min_version: String,
}

#[derive(Debug, Clone)]
pub struct FrontendCfg {
    pub name: String,
    pub bind: String,
    pub forwardfor: bool,
    pub backend: String,
    pub tls: Option<FrontendTls>,
    /// Lines before `default_backend` (`extra.frontend`).
    pub extra: Vec<String>,
}

/// The HTTPS side of the frontend.
#[derive(Debug, Clone)]
pub struct FrontendTls {
    pub bind: String,
    /// The PEM HAProxy loads (`crt`).
    pub certificate: String,
    /// Plain HTTP is redirected to HTTPS.
    pub redirect_http: bool,
    /// `Strict-Transport-Security` max-age; 0 is off.
    pub hsts: u32,
}

#[derive(Debug, Clone)]
pub struct BackendCfg {
    pub name: String,
    pub balance: String,
    /// Retry and redispatch lines, before the health check.
    pub retry: Vec<String>,
    pub check_method: String,
    pub check_path: String,
    pub expect_status: u16,
    pub default_server: String,
    /// `(cookie name, dynamic-cookie key)` for cookie stickiness.
    pub cookie: Option<(String, String)>,
    /// Lines before `default-server` and the servers (`extra.backend`).
    pub extra: Vec<String>,
    pub servers: Vec<Server>,
}

#[derive(Debug, Clone)]
pub struct StatsCfg {
    pub bind: String,
    pub uri: String,
    pub user: String,
    pub password: String,
}

pub const HEADER: &str =
    "# Written by the haproxy_backend Ansible module: changes made here are replaced on its next run.";

/// Hash-based algorithms are static unless consistent hashing is on, and
/// servers can only be added at runtime to a backend with a dynamic algorithm.
fn needs_consistent_hash(balance: &str) -> bool {
    matches!(balance, "source" | "uri")
}

/// `lines`, each on its own indented line.
fn write_lines(s: &mut String, lines: &[String]) {
    for line in lines {
        let _ = writeln!(s, "    {}", line.trim());
    }
}

pub fn render(l: &Layout) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{HEADER}");
    let _ = writeln!(
        s,
        "global\n    log /dev/log local0\n    log /dev/log local1 notice\n    chroot /var/lib/haproxy\n    \
         stats socket {} mode 600 level admin expose-fd listeners\n    stats timeout 30s\n    \
         user haproxy\n    group haproxy\n    daemon",
        l.admin_socket
    );
    if let Some(t) = &l.tls {
        // Mozilla's intermediate profile by default; tickets off, so
        // resumption never outlives a key rotation.
        let _ = writeln!(
            s,
            "    ssl-default-bind-ciphers {}\n    ssl-default-bind-ciphersuites {}\n    \
             ssl-default-bind-options ssl-min-ver {} no-tls-tickets",
            t.ciphers, t.ciphersuites, t.min_version
        );
    }
    write_lines(&mut s, &l.extra_global);
    let _ = writeln!(
        s,
        "\ndefaults\n    log global\n    mode http\n    option httplog\n    option dontlognull"
    );
    for (name, value) in &l.timeouts {
        let _ = writeln!(s, "    timeout {name} {value}");
    }
    write_lines(&mut s, &l.extra_defaults);
    if let Some(f) = &l.frontend {
        render_frontend(&mut s, f);
    }
    if let Some(b) = &l.backend {
        let _ = writeln!(s, "\nbackend {}\n    balance {}", b.name, b.balance);
        if needs_consistent_hash(&b.balance) {
            let _ = writeln!(s, "    hash-type consistent");
        }
        write_lines(&mut s, &b.retry);
        let _ = writeln!(
            s,
            "    option httpchk {} {}\n    http-check expect status {}",
            b.check_method, b.check_path, b.expect_status
        );
        if let Some((cookie, key)) = &b.cookie {
            let _ = writeln!(
                s,
                "    cookie {cookie} insert indirect nocache dynamic\n    dynamic-cookie-key {key}"
            );
        }
        write_lines(&mut s, &b.extra);
        let _ = writeln!(s, "    default-server {}", b.default_server);
        for server in &b.servers {
            let _ = writeln!(s, "{}", server.config_line());
        }
    }
    if let Some(st) = &l.stats {
        let _ = writeln!(
            s,
            "\nlisten stats\n    bind {}\n    mode http\n    stats enable\n    stats uri {}\n    \
             stats refresh 10s\n    stats auth {}:{}",
            st.bind, st.uri, st.user, st.password
        );
    }
    s
}

/// The frontend: plain HTTP, and HTTPS when `tls` is set (redirected to,
/// with HSTS when asked); `X-Forwarded-Proto` always says which one the
/// client used, whatever the client sent.
fn render_frontend(s: &mut String, f: &FrontendCfg) {
    let _ = writeln!(s, "\nfrontend {}\n    bind {}", f.name, f.bind);
    if let Some(t) = &f.tls {
        let _ = writeln!(
            s,
            "    bind {} ssl crt {} alpn h2,http/1.1",
            t.bind, t.certificate
        );
    }
    if f.forwardfor {
        let _ = writeln!(s, "    option forwardfor");
    }
    if f.tls.as_ref().is_some_and(|t| t.redirect_http) {
        let _ = writeln!(
            s,
            "    http-request redirect scheme https code 301 unless {{ ssl_fc }}"
        );
    }
    let _ = writeln!(
        s,
        "    http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n    \
         http-request set-header X-Forwarded-Proto http unless {{ ssl_fc }}\n    \
         http-request set-header X-Forwarded-Port %[dst_port]"
    );
    if let Some(t) = f.tls.as_ref().filter(|t| t.hsts > 0) {
        let _ = writeln!(
            s,
            "    http-response set-header Strict-Transport-Security max-age={} if {{ ssl_fc }}",
            t.hsts
        );
    }
    write_lines(s, &f.extra);
    let _ = writeln!(s, "    default_backend {}", f.backend);
}

/// The certificate files a config loads: the word after each `crt` of a
/// `bind` line.
pub fn crt_paths(text: &str) -> Vec<String> {
    let mut out = vec![];
    for line in text.lines() {
        let w = words(line);
        if w.first() == Some(&"bind") {
            out.extend(
                w.windows(2)
                    .filter(|p| p[0] == "crt")
                    .map(|p| p[1].to_string()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(name: &str, admin: Admin) -> Server {
        Server {
            name: name.into(),
            address: "10.231.0.101".into(),
            port: 80,
            weight: 100,
            percent: None,
            check: true,
            backup: false,
            admin,
        }
    }

    fn layout(servers: Vec<Server>) -> Layout {
        Layout {
            admin_socket: "/run/haproxy/admin.sock".into(),
            tls: None,
            extra_global: vec![],
            extra_defaults: vec![],
            timeouts: vec![("connect", "5s".into())],
            frontend: Some(FrontendCfg {
                name: "http_in".into(),
                bind: "*:80".into(),
                forwardfor: true,
                backend: "web".into(),
                tls: None,
                extra: vec![],
            }),
            backend: Some(BackendCfg {
                name: "web".into(),
                balance: "roundrobin".into(),
                retry: vec!["retries 3".into()],
                check_method: "OPTIONS".into(),
                check_path: "/".into(),
                expect_status: 200,
                default_server: "inter 2s rise 2 fall 3".into(),
                cookie: Some(("SERVERID".into(), "k".into())),
                extra: vec![],
                servers,
            }),
            stats: None,
        }
    }

    #[test]
    fn tls_adds_a_bind_the_redirect_hsts_and_global_defaults() {
        let mut l = layout(vec![server("web1", Admin::Ready)]);
        let plain = render(&l);
        assert!(plain.contains(
            "    http-request set-header X-Forwarded-Proto https if { ssl_fc }\n    \
             http-request set-header X-Forwarded-Proto http unless { ssl_fc }\n"
        ));
        assert!(!plain.contains("ssl crt"), "{plain}");
        assert!(!plain.contains("redirect") && !plain.contains("ssl-default"));
        assert!(plain.contains("    daemon\n\ndefaults\n"), "{plain}");
        assert!(crt_paths(&plain).is_empty());
        l.tls = Some(TlsGlobal {
            ciphers: "C1:C2".into(),
            ciphersuites: "S1".into(),
            min_version: "TLSv1.2".into(),
        });
        if let Some(f) = l.frontend.as_mut() {
            f.tls = Some(FrontendTls {
                bind: "*:443".into(),
                certificate: "/etc/haproxy/tls.pem".into(),
                redirect_http: true,
                hsts: 63072000,
            });
            f.extra = vec!["acl api path_beg /api".into()];
        }
        if let Some(b) = l.backend.as_mut() {
            b.extra = vec!["  http-request set-header X-B 1  ".into()];
        }
        l.extra_global = vec!["tune.ssl.cachesize 20000".into()];
        l.extra_defaults = vec!["option http-keep-alive".into()];
        let text = render(&l);
        for want in [
            "    daemon\n    ssl-default-bind-ciphers C1:C2\n    ssl-default-bind-ciphersuites S1\n    \
             ssl-default-bind-options ssl-min-ver TLSv1.2 no-tls-tickets\n    tune.ssl.cachesize 20000\n\ndefaults\n",
            "    timeout connect 5s\n    option http-keep-alive\n",
            "    bind *:80\n    bind *:443 ssl crt /etc/haproxy/tls.pem alpn h2,http/1.1\n    option forwardfor\n    \
             http-request redirect scheme https code 301 unless { ssl_fc }\n    http-request set-header X-Forwarded-Proto https",
            "    http-response set-header Strict-Transport-Security max-age=63072000 if { ssl_fc }\n    \
             acl api path_beg /api\n    default_backend web\n",
            "    http-request set-header X-B 1\n    default-server ",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
        assert_eq!(crt_paths(&text), vec!["/etc/haproxy/tls.pem".to_string()]);
        // The sections are the same; the backend is read back as before.
        let kinds = |t: &str| {
            split_sections(t)
                .1
                .iter()
                .map(|s| s.kind.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&text), kinds(&plain));
        assert_eq!(parse_backend(&text, "web"), parse_backend(&plain, "web"));
        // Servers added later go after the extra lines.
        let two = replace_servers(
            &text,
            "web",
            &[server("web1", Admin::Ready), server("web2", Admin::Ready)],
        )
        .expect("backend");
        assert!(two.contains("X-B 1\n    default-server inter"), "{two}");
    }

    #[test]
    fn server_lines_round_trip_in_every_state() {
        for admin in [Admin::Ready, Admin::Drain, Admin::Maint] {
            let s = server("web1", admin);
            assert_eq!(parse_server_line(&s.config_line()), Some(s));
        }
        let drained = server("web1", Admin::Drain).config_line();
        assert!(drained.contains("weight 0 check"), "{drained}");
        // A weight given as a percentage: the line runs at the share, the
        // comment keeps the configured weight, in every state.
        for admin in [Admin::Ready, Admin::Drain, Admin::Maint] {
            let s = Server {
                percent: Some(50),
                ..server("web1", admin)
            };
            assert_eq!(parse_server_line(&s.config_line()), Some(s));
        }
        let half = Server {
            percent: Some(50),
            weight: 30,
            ..server("web1", Admin::Ready)
        };
        assert_eq!(
            half.config_line(),
            "    server web1 10.231.0.101:80 weight 15 check  # weight 50% of 30"
        );
        let drained_half = Server {
            admin: Admin::Drain,
            ..half.clone()
        };
        assert_eq!(
            drained_half.config_line(),
            "    server web1 10.231.0.101:80 weight 0 check  # drain, weight 50% of 30"
        );
        let maint_half = Server {
            admin: Admin::Maint,
            ..half.clone()
        };
        assert_eq!(
            maint_half.config_line(),
            "    server web1 10.231.0.101:80 weight 15 check disabled  # weight 50% of 30"
        );
        // Files written before percentages keep reading as they did.
        assert_eq!(
            parse_server_line("    server a 10.0.0.1:80 weight 0 check  # drain, weight 100"),
            Some(Server {
                name: "a".into(),
                address: "10.0.0.1".into(),
                ..server("a", Admin::Drain)
            })
        );
        // HAProxy's arithmetic: integer, of the configured weight.
        for (weight, percent, want) in [
            (100, 50, 50),
            (1, 50, 0),
            (3, 33, 0),
            (256, 99, 253),
            (10, 0, 0),
        ] {
            let s = Server {
                weight,
                percent: Some(percent),
                ..server("a", Admin::Ready)
            };
            assert_eq!(s.scaled_weight(), want, "{weight} at {percent}%");
            assert_eq!(s.effective_weight(), want);
        }
    }

    #[test]
    fn backends_with_a_server_are_found_by_its_name() {
        let text = "backend www\n    server lb1 10.0.0.1:80 weight 100 check\n    server lb2 10.0.0.2:80 weight 100\n\
                    backend api\n    server lb1 10.0.0.1:8080 weight 100  # a comment naming lb2\n\
                    listen stats\n    bind *:8404\n    server lb2x 10.0.0.9:80\n\
                    frontend f\n    server lb1 10.0.0.1:80\n";
        assert_eq!(backends_with_server(text, "lb1"), vec!["www", "api"]);
        assert_eq!(backends_with_server(text, "lb2"), vec!["www"]);
        assert!(backends_with_server(text, "lb3").is_empty());
    }

    #[test]
    fn backend_is_read_back_from_the_rendered_file() {
        let text = render(&layout(vec![
            server("web1", Admin::Ready),
            server("web2", Admin::Drain),
        ]));
        let info = parse_backend(&text, "web").expect("backend");
        assert_eq!(info.servers.len(), 2);
        assert_eq!(info.servers[1].admin, Admin::Drain);
        assert_eq!(info.default_server, "inter 2s rise 2 fall 3");
        assert_eq!(info.cookie_key.as_deref(), Some("k"));
        assert!(parse_backend(&text, "other").is_none());
        assert!(text.contains("stats socket /run/haproxy/admin.sock mode 600 level admin"));
        assert!(text.contains("http-request set-header X-Forwarded-Port %[dst_port]"));
    }

    #[test]
    fn replacing_servers_keeps_the_rest_byte_for_byte() {
        let one = render(&layout(vec![server("web1", Admin::Ready)]));
        let two = render(&layout(vec![
            server("web1", Admin::Ready),
            server("web2", Admin::Ready),
        ]));
        let edited = replace_servers(
            &one,
            "web",
            &[server("web1", Admin::Ready), server("web2", Admin::Ready)],
        )
        .expect("backend");
        assert_eq!(edited, two);
        assert_eq!(without_servers(&one, "web"), without_servers(&two, "web"));
    }

    #[test]
    fn servers_go_to_the_end_of_an_empty_backend() {
        let text = "backend web\n    balance roundrobin\n\nlisten stats\n    bind *:1\n";
        let out = replace_servers(text, "web", &[server("a", Admin::Ready)]).expect("backend");
        assert_eq!(
            out,
            "backend web\n    balance roundrobin\n    server a 10.231.0.101:80 weight 100 check\n\nlisten stats\n    bind *:1\n"
        );
    }

    #[test]
    fn secrets_are_found_where_haproxy_reads_them() {
        let mut l = layout(vec![]);
        l.stats = Some(StatsCfg {
            bind: "*:8404".into(),
            uri: "/s".into(),
            user: "stats".into(),
            password: "pA55:w0rd".into(),
        });
        let text = render(&l);
        assert!(holds_secret(&text));
        assert_eq!(
            secrets(&text),
            vec!["k".to_string(), "pA55:w0rd".to_string()]
        );
        // The old default key, the backend's name, is no secret.
        let old = "backend web\n    dynamic-cookie-key web\n";
        assert!(secrets(old).is_empty() && holds_secret(old));
        let users = "userlist u\n    user admin insecure-password s3cret\n";
        assert_eq!(secrets(users), vec!["s3cret".to_string()]);
        assert!(!holds_secret("global\n    daemon\n# stats auth a:b\n"));
    }

    #[test]
    fn hash_algorithms_get_consistent_hashing() {
        let mut l = layout(vec![]);
        if let Some(b) = l.backend.as_mut() {
            b.balance = "source".into();
        }
        assert!(render(&l).contains("balance source\n    hash-type consistent\n"));
    }
}
