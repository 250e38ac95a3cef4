//! keepalived.conf as this module writes it: a header, `global_defs` when any
//! instance runs scripts, then one marked block per `vrrp_instance`. Blocks of
//! other instances written by earlier tasks are kept as they are, so one file can
//! hold several instances, each managed by its own task.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::params::InitialState;

/// One virtual address as it goes into `virtual_ipaddress`.
#[derive(Debug, Clone, PartialEq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: String,
}

/// A `vrrp_script` with its final (instance-qualified) name.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub name: String,
    pub script: String,
    pub interval: i64,
    pub weight: i64,
    pub fall: Option<i64>,
    pub rise: Option<i64>,
    pub timeout: Option<i64>,
}

/// A service in `track_services`: tracked like HAProxy (see `track`), through
/// its own file and its own `track_file` block, read with weight -1.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedService {
    pub service: crate::track::Service,
    pub file: String,
}

/// A fully checked instance, ready to render.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub name: String,
    pub vrid: u8,
    pub priority: u8,
    pub initial_state: InitialState,
    pub nopreempt: bool,
    pub preempt_delay: Option<i64>,
    pub interface: String,
    pub vips: Vec<Vip>,
    pub advert_int: f64,
    pub version: u8,
    pub unicast_src_ip: Option<IpAddr>,
    pub unicast_peer: Vec<IpAddr>,
    pub auth_pass: Option<String>,
    pub track_file: Option<String>,
    /// The tracked file mirrors HAProxy (see `track`): read with weight -1, so
    /// 253 drops the priority to the minimum (a backup takes over while HAProxy
    /// still answers) and 254 means FAULT; created with 254 when missing, so a
    /// node never claims the VIP before HAProxy said it runs. Otherwise the file
    /// is the user's: weight 0, any non-zero value means FAULT.
    pub track_haproxy: bool,
    /// Further services, sorted by unit name.
    pub track_services: Vec<TrackedService>,
    pub track_interface: Vec<String>,
    pub checks: Vec<Check>,
    pub notify: Vec<NotifyScript>,
}

/// A `notify*` line: keepalived's keyword and the command.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifyScript {
    pub keyword: &'static str,
    pub script: String,
}

pub const HEADER: &str = "\
# Managed by Ansible (keepalived_vrrp). Local edits are replaced on the next run.
# Each vrrp_instance lives between its BEGIN and END lines; one task manages one.
";

fn begin(name: &str) -> String {
    format!("# BEGIN keepalived_vrrp instance {name}")
}

fn end(name: &str) -> String {
    format!("# END keepalived_vrrp instance {name}")
}

/// `0.1` -> "0.1", `1.0` -> "1", `0.25` -> "0.25".
pub fn seconds(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

impl Instance {
    pub fn track_file_name(&self) -> String {
        format!("{}_track", self.name)
    }

    /// The `track_file` block of a service in `track_services`.
    pub fn service_track_name(&self, service: &crate::track::Service) -> String {
        service_track_name(&self.name, service)
    }

    /// The instance's block, markers included, ending with a newline: the
    /// trackers and scripts it reads, then the `vrrp_instance` itself.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", begin(&self.name));
        self.render_track_files(&mut s);
        self.render_scripts(&mut s);
        self.render_vrrp_instance(&mut s);
        let _ = writeln!(s, "{}", end(&self.name));
        s
    }

    /// The `track_file` blocks: HAProxy's (or the user's file), then one per
    /// service in `track_services`.
    fn render_track_files(&self, s: &mut String) {
        if let Some(file) = &self.track_file {
            let _ = writeln!(s, "track_file {} {{", self.track_file_name());
            let _ = writeln!(s, "    file {file}");
            if self.track_haproxy {
                let _ = writeln!(s, "    init_file {}", crate::track::DOWN);
            }
            s.push_str("}\n");
        }
        for t in &self.track_services {
            let _ = writeln!(s, "track_file {} {{", self.service_track_name(&t.service));
            let _ = writeln!(s, "    file {}", t.file);
            let _ = writeln!(s, "    init_file {}", crate::track::DOWN);
            s.push_str("}\n");
        }
    }

    /// The `vrrp_script` blocks.
    fn render_scripts(&self, s: &mut String) {
        for c in &self.checks {
            let _ = writeln!(s, "vrrp_script {} {{", c.name);
            let _ = writeln!(s, "    script \"{}\"", c.script);
            let _ = writeln!(s, "    interval {}", c.interval);
            let _ = writeln!(s, "    weight {}", c.weight);
            for (k, v) in [("fall", c.fall), ("rise", c.rise), ("timeout", c.timeout)] {
                if let Some(v) = v {
                    let _ = writeln!(s, "    {k} {v}");
                }
            }
            s.push_str("}\n");
        }
    }

    /// The `vrrp_instance` block: election, peers, addresses, then what it
    /// tracks and the notify scripts.
    fn render_vrrp_instance(&self, s: &mut String) {
        let _ = writeln!(s, "vrrp_instance {} {{", self.name);
        let _ = writeln!(s, "    state {}", self.initial_state);
        let _ = writeln!(s, "    interface {}", self.interface);
        let _ = writeln!(s, "    virtual_router_id {}", self.vrid);
        let _ = writeln!(s, "    priority {}", self.priority);
        let _ = writeln!(s, "    advert_int {}", seconds(self.advert_int));
        let _ = writeln!(s, "    version {}", self.version);
        if self.nopreempt {
            s.push_str("    nopreempt\n");
        }
        if let Some(d) = self.preempt_delay {
            let _ = writeln!(s, "    preempt_delay {d}");
        }
        if let Some(src) = self.unicast_src_ip {
            let _ = writeln!(s, "    unicast_src_ip {src}");
        }
        list(s, "unicast_peer", &self.unicast_peer);
        if let Some(pass) = &self.auth_pass {
            s.push_str("    authentication {\n        auth_type PASS\n");
            let _ = writeln!(s, "        auth_pass {pass}");
            s.push_str("    }\n");
        }
        s.push_str("    virtual_ipaddress {\n");
        for v in &self.vips {
            let _ = writeln!(s, "        {}/{} dev {}", v.addr, v.prefix, v.dev);
        }
        s.push_str("    }\n");
        list(s, "track_interface", &self.track_interface);
        self.render_track_file_refs(s);
        let scripts: Vec<&str> = self.checks.iter().map(|c| c.name.as_str()).collect();
        list(s, "track_script", &scripts);
        for n in &self.notify {
            let _ = writeln!(s, "    {} \"{}\"", n.keyword, n.script);
        }
        s.push_str("}\n");
    }

    /// The instance's `track_file` list. keepalived adds what each file
    /// gives and keeps the priority within 1..254; any one file at 254 or
    /// more means FAULT.
    fn render_track_file_refs(&self, s: &mut String) {
        if self.track_file.is_none() && self.track_services.is_empty() {
            return;
        }
        s.push_str("    track_file {\n");
        if self.track_file.is_some() {
            let _ = writeln!(
                s,
                "        {} weight {}",
                self.track_file_name(),
                if self.track_haproxy { -1 } else { 0 }
            );
        }
        for t in &self.track_services {
            let _ = writeln!(
                s,
                "        {} weight -1",
                self.service_track_name(&t.service)
            );
        }
        s.push_str("    }\n");
    }
}

/// An instance-level list (`unicast_peer { ... }`), one item a line; nothing
/// when empty.
fn list(s: &mut String, keyword: &str, items: &[impl std::fmt::Display]) {
    if items.is_empty() {
        return;
    }
    let _ = writeln!(s, "    {keyword} {{");
    for i in items {
        let _ = writeln!(s, "        {i}");
    }
    s.push_str("    }\n");
}

fn service_track_name(instance: &str, service: &crate::track::Service) -> String {
    format!("{instance}_track_{}", service.conf_tag())
}

/// A marked block found in an existing file.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub text: String,
}

impl Block {
    /// Whether keepalived needs script security settings for this block.
    pub fn uses_scripts(&self) -> bool {
        self.text.lines().any(|l| {
            let first = l.split_whitespace().next().unwrap_or("");
            first == "vrrp_script" || first.starts_with("notify")
        })
    }

    /// Whether the block's instance reads `file` through a `track_file`.
    pub fn tracks(&self, file: &str) -> bool {
        self.text
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["file", file])
    }

    /// Whether the block's instance tracks `service` (from `track_services`).
    pub fn tracks_service(&self, service: &crate::track::Service) -> bool {
        let header = format!("track_file {} {{", service_track_name(&self.name, service));
        self.text.lines().any(|l| l.trim_end() == header)
    }

    /// The block's `advert_int`.
    pub fn advert_int(&self) -> Option<f64> {
        self.text.lines().find_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some("advert_int"), Some(v)) => v.parse().ok(),
                _ => None,
            }
        })
    }

    /// The addresses in the block's `virtual_ipaddress`.
    pub fn vips(&self) -> Vec<IpAddr> {
        let mut inside = false;
        let mut out = vec![];
        for l in self.text.lines().map(str::trim) {
            if l.starts_with("virtual_ipaddress") && l.ends_with('{') {
                inside = true;
            } else if inside && l.starts_with('}') {
                inside = false;
            } else if inside {
                if let Some(addr) = l
                    .split_whitespace()
                    .next()
                    .and_then(|w| w.split('/').next())
                    .and_then(|a| a.parse().ok())
                {
                    out.push(addr);
                }
            }
        }
        out
    }

    /// The addresses in the block's `unicast_peer { }` list.
    pub fn unicast_peers(&self) -> Vec<IpAddr> {
        let mut inside = false;
        let mut out = vec![];
        for l in self.text.lines().map(str::trim) {
            if l.starts_with("unicast_peer") && l.ends_with('{') {
                inside = true;
            } else if inside && l == "}" {
                inside = false;
            } else if inside {
                out.extend(
                    l.split_whitespace()
                        .next()
                        .and_then(|w| w.parse::<IpAddr>().ok()),
                );
            }
        }
        out
    }

    /// (virtual_router_id, interface) of the block's instance.
    pub fn vrid_and_interface(&self) -> (Option<u8>, Option<String>) {
        let mut vrid = None;
        let mut iface = None;
        for l in self.text.lines() {
            let mut words = l.split_whitespace();
            match (words.next(), words.next()) {
                (Some("virtual_router_id"), Some(v)) => vrid = v.parse().ok(),
                (Some("interface"), Some(v)) if iface.is_none() => iface = Some(v.to_string()),
                _ => {}
            }
        }
        (vrid, iface)
    }
}

/// What an existing file holds: our blocks, and whether anything else that is not
/// ours (a hand-written or packaged config) is there.
#[derive(Debug, Default)]
pub struct Parsed {
    pub blocks: Vec<Block>,
    /// The `global_defs` lines set through the module's option, between our
    /// markers inside `global_defs { }`.
    pub global_defs: Vec<String>,
    pub foreign: bool,
}

const GLOBAL_DEFS_BEGIN: &str = "# BEGIN keepalived_vrrp global_defs";
const GLOBAL_DEFS_END: &str = "# END keepalived_vrrp global_defs";

pub fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let mut current: Option<(String, String)> = None;
    let mut outside = String::new();
    let mut globals: Option<Vec<String>> = None;
    for line in text.lines() {
        if let Some(lines) = globals.as_mut() {
            if line.trim() == GLOBAL_DEFS_END {
                parsed.global_defs = globals.take().unwrap_or_default();
            } else {
                lines.push(line.trim().to_string());
            }
            continue;
        }
        if current.is_none() && line.trim() == GLOBAL_DEFS_BEGIN {
            globals = Some(vec![]);
            continue;
        }
        if let Some((name, body)) = current.as_mut() {
            body.push_str(line);
            body.push('\n');
            if line.trim_end() == end(name) {
                let (name, text) = current.take().unwrap_or_default();
                parsed.blocks.push(Block { name, text });
            }
            continue;
        }
        if let Some(name) = line
            .trim_end()
            .strip_prefix("# BEGIN keepalived_vrrp instance ")
        {
            current = Some((name.to_string(), format!("{line}\n")));
            continue;
        }
        outside.push_str(line);
        outside.push('\n');
    }
    // An unterminated block is not ours any more: treat it as foreign text.
    if let Some((_, body)) = current {
        outside.push_str(&body);
    }
    for line in globals.unwrap_or_default() {
        outside.push_str(&line);
        outside.push('\n');
    }
    let ours = global_defs(true, &[]) + HEADER;
    parsed.foreign = outside
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .any(|l| !ours.lines().any(|o| o.trim() == l));
    parsed
}

/// Every `auth_pass` value in `text` (ours, other tasks' blocks, hand-written
/// or commented-out lines): as written and, when quoted, without the
/// quotes, so each can be masked wherever it would show.
pub fn auth_passes(text: &str) -> Vec<String> {
    let mut out = vec![];
    for line in text.lines() {
        let mut rest = line;
        while let Some(at) = rest.find("auth_pass") {
            rest = &rest[at + "auth_pass".len()..];
            if !rest.starts_with(char::is_whitespace) {
                continue;
            }
            let value = rest.trim_start();
            let word = value.split_whitespace().next().unwrap_or("");
            if !word.is_empty() {
                out.push(word.to_string());
            }
            if let Some(quoted) = value.strip_prefix('"') {
                let inner = quoted.split('"').next().unwrap_or("");
                if !inner.trim().is_empty() {
                    out.push(inner.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `global_defs { }` with the script keys when `scripts`, and the lines of
/// the module's option between markers; empty when it would hold nothing.
fn global_defs(scripts: bool, lines: &[String]) -> String {
    let mut s = String::new();
    if scripts {
        s.push_str("    enable_script_security\n    script_user root\n");
    }
    if !lines.is_empty() {
        let _ = writeln!(s, "    {GLOBAL_DEFS_BEGIN}");
        for line in lines {
            let _ = writeln!(s, "    {line}");
        }
        let _ = writeln!(s, "    {GLOBAL_DEFS_END}");
    }
    if s.is_empty() {
        s
    } else {
        format!("global_defs {{\n{s}}}\n")
    }
}

/// The whole file: header, `global_defs` if any block runs scripts or the
/// option set keys, the blocks.
pub fn render_file(blocks: &[Block], global_lines: &[String]) -> String {
    let mut s = String::from(HEADER);
    let scripts = blocks.iter().any(Block::uses_scripts);
    let globals = global_defs(scripts, global_lines);
    if !globals.is_empty() {
        s.push('\n');
        s.push_str(&globals);
    }
    for b in blocks {
        s.push('\n');
        s.push_str(&b.text);
    }
    s
}

/// The blocks with `name` replaced (in place) or added (at the end), or removed
/// when `block` is `None`.
pub fn with_block(mut blocks: Vec<Block>, name: &str, block: Option<String>) -> Vec<Block> {
    match (blocks.iter().position(|b| b.name == name), block) {
        (Some(i), Some(text)) => blocks[i].text = text,
        (Some(i), None) => {
            blocks.remove(i);
        }
        (None, Some(text)) => blocks.push(Block {
            name: name.to_string(),
            text,
        }),
        (None, None) => {}
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn sample() -> Instance {
        Instance {
            name: "VI_1".into(),
            vrid: 120,
            priority: 150,
            initial_state: InitialState::Backup,
            nopreempt: false,
            preempt_delay: None,
            interface: "eth0".into(),
            vips: vec![Vip {
                addr: "10.231.0.20".parse().expect("ip"),
                prefix: 24,
                dev: "eth0".into(),
            }],
            advert_int: 0.1,
            version: 3,
            unicast_src_ip: None,
            unicast_peer: vec![],
            auth_pass: None,
            track_file: Some("/run/keepalived/haproxy.down".into()),
            track_haproxy: true,
            track_services: vec![],
            track_interface: vec![],
            checks: vec![],
            notify: vec![],
        }
    }

    #[test]
    fn renders_the_fast_defaults() {
        let text = sample().render();
        assert_eq!(
            text,
            "\
# BEGIN keepalived_vrrp instance VI_1
track_file VI_1_track {
    file /run/keepalived/haproxy.down
    init_file 254
}
vrrp_instance VI_1 {
    state BACKUP
    interface eth0
    virtual_router_id 120
    priority 150
    advert_int 0.1
    version 3
    virtual_ipaddress {
        10.231.0.20/24 dev eth0
    }
    track_file {
        VI_1_track weight -1
    }
}
# END keepalived_vrrp instance VI_1
"
        );
    }

    /// Every tracked service has its own `track_file` block (keepalived
    /// reads one file per block), and the instance lists them all with
    /// weight -1: keepalived adds their values and keeps the priority
    /// within 1..254, any one at 254 meaning FAULT.
    #[test]
    fn renders_a_block_per_tracked_service() {
        let mut i = sample();
        for name in ["apache2", "knot"] {
            let service = crate::track::Service::named(name);
            i.track_services.push(TrackedService {
                file: format!("/run/keepalived/{name}.down"),
                service,
            });
        }
        let text = i.render();
        assert!(
            text.starts_with(
                "\
# BEGIN keepalived_vrrp instance VI_1
track_file VI_1_track {
    file /run/keepalived/haproxy.down
    init_file 254
}
track_file VI_1_track_apache2 {
    file /run/keepalived/apache2.down
    init_file 254
}
track_file VI_1_track_knot {
    file /run/keepalived/knot.down
    init_file 254
}
vrrp_instance VI_1 {
"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "    track_file {
        VI_1_track weight -1
        VI_1_track_apache2 weight -1
        VI_1_track_knot weight -1
    }
"
            ),
            "{text}"
        );
        let block = &parse(&render_file(&with_block(vec![], "VI_1", Some(text)), &[])).blocks[0];
        assert!(block.tracks("/run/keepalived/knot.down"));
        assert!(block.tracks_service(&crate::track::Service::named("knot")));
        assert!(!block.tracks_service(&crate::track::Service::named("unbound")));
        // Without HAProxy, only the services.
        i.track_file = None;
        i.track_haproxy = false;
        assert!(i.render().contains(
            "    track_file {\n        VI_1_track_apache2 weight -1\n        VI_1_track_knot weight -1\n    }\n"
        ));
    }

    #[test]
    fn file_round_trips_and_keeps_other_blocks() {
        let a = sample();
        let mut b = sample();
        b.name = "VI_2".into();
        b.vrid = 121;
        b.checks.push(Check {
            name: "VI_2_chk".into(),
            script: "killall -0 haproxy".into(),
            interval: 2,
            weight: 2,
            fall: None,
            rise: None,
            timeout: None,
        });
        let blocks = with_block(vec![], &a.name, Some(a.render()));
        let blocks = with_block(blocks, &b.name, Some(b.render()));
        let file = render_file(&blocks, &[]);
        assert!(file.contains("enable_script_security"));
        let parsed = parse(&file);
        assert!(!parsed.foreign, "{file}");
        assert_eq!(parsed.blocks, blocks);
        assert_eq!(
            parsed.blocks[1].vrid_and_interface(),
            (Some(121), Some("eth0".into()))
        );
        assert!(parsed.blocks[0].tracks("/run/keepalived/haproxy.down"));
        assert!(!parsed.blocks[0].tracks("/run/other"));
        assert_eq!(parsed.blocks[0].advert_int(), Some(0.1));
        assert_eq!(
            parsed.blocks[0].vips(),
            vec!["10.231.0.20".parse::<IpAddr>().expect("ip")]
        );
        // Removing the scripted block drops global_defs again.
        let file2 = render_file(&with_block(parsed.blocks, "VI_2", None), &[]);
        assert!(!file2.contains("global_defs"));
        assert_eq!(
            file2,
            render_file(&with_block(vec![], "VI_1", Some(a.render())), &[])
        );
    }

    #[test]
    fn hand_written_config_is_foreign() {
        let p = parse("vrrp_instance VI_1 {\n state MASTER\n}\n");
        assert!(p.foreign);
        assert!(p.blocks.is_empty());
        assert!(!parse("! Configuration File for keepalived\n\n").foreign);
    }

    #[test]
    fn every_auth_pass_is_found() {
        let text =
            "    authentication {\n        auth_type PASS\n        auth_pass pw123456\n    }\n\
                    # auth_pass oldpass1\n\tauth_pass \"two words\" ! comment\n\
                    auth_type AH\nauth_pass\n";
        assert_eq!(
            auth_passes(text),
            ["\"two", "oldpass1", "pw123456", "two words"]
        );
        assert!(auth_passes(&sample().render()).is_empty());
    }

    #[test]
    fn seconds_are_short() {
        assert_eq!(seconds(0.1), "0.1");
        assert_eq!(seconds(1.0), "1");
        assert_eq!(seconds(0.25), "0.25");
        assert_eq!(seconds(2.5), "2.5");
    }

    /// The option's lines live between markers inside `global_defs`, beside
    /// the script keys; they read back as they were written and are not
    /// foreign text, and a file without them has no `global_defs` at all.
    #[test]
    fn global_defs_lines_round_trip() {
        let lines = vec![
            "vrrp_no_swap".to_string(),
            "vrrp_rt_priority 50".to_string(),
        ];
        let blocks = with_block(vec![], "VI_1", Some(sample().render()));
        let file = render_file(&blocks, &lines);
        assert!(file.contains(
            "global_defs {\n    # BEGIN keepalived_vrrp global_defs\n    vrrp_no_swap\n    \
             vrrp_rt_priority 50\n    # END keepalived_vrrp global_defs\n}\n"
        ));
        let parsed = parse(&file);
        assert_eq!(parsed.global_defs, lines);
        assert!(!parsed.foreign);
        assert_eq!(render_file(&parsed.blocks, &parsed.global_defs), file);
        assert!(!render_file(&parsed.blocks, &[]).contains("global_defs"));
        // An unterminated marker is someone else's text.
        let cut = file.replace("    # END keepalived_vrrp global_defs\n", "");
        assert!(parse(&cut).foreign);
    }
}
