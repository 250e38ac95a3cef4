//! Hostile option values, every string option: each is refused with a message
//! that names the option, or lands in exactly the one place it was asked for.
//!
//! The check for an accepted value: the file rendered with it is the file
//! rendered with a marker value, with the marker replaced by the value (for
//! addresses, by the address as written). Nothing else moved: no extra line,
//! brace, block or directive. The same holds for the haproxy.service drop-in
//! and the tmpfiles.d entry built from `track_file`; and, in defence in depth,
//! the drop-in's commands, read the way systemd and `sh` read them, write
//! exactly the file named by any string at all. A `track_services` name lands
//! in two places, escaped for each: the `track_file` block's name and the
//! tracked file's name; it also names its drop-in and tmpfiles.d entry.

use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::checks::tests::{host, params};
use crate::checks::{self};
use crate::conf::{self, Instance};
use crate::track::{self, Service};

/// The characters each target syntax treats specially, and then some.
const HOSTILE: &[&str] = &[
    "\n", "\r", "\0", ";", "#", "!", "\"", "'", "\\", "$(", "`", "{", "}", "%", "~", " ",
    "\u{2028}", "\t", "$", "\u{85}",
];

/// Ordinary text to mix them with (and to make some values valid).
const ORDINARY: &[&str] = &[
    "eth0",
    "a",
    "VI",
    "x-1",
    "10.231.0.5",
    "10.231.0.101",
    "/run/k",
    "_",
    ".",
    "@",
    ":",
    "/",
    "24",
    " dev ",
    "touch /tmp/pwned",
];

const MARKER: &str = "zqmark";

/// One string option: how to set it, the marker its baseline uses, what a
/// refusal must name, and how an accepted value is written.
struct Opt {
    option: &'static str,
    set: Box<dyn Fn(&str) -> Value>,
    marker: &'static str,
    /// The text that stands for the value in the file.
    written: fn(&str, &Instance) -> String,
}

fn same(v: &str, _: &Instance) -> String {
    v.to_string()
}

fn address(v: &str, _: &Instance) -> String {
    v.trim()
        .parse::<IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| panic!("accepted {v:?}, which is not an address"))
}

fn vip_line(_: &str, i: &Instance) -> String {
    let v = &i.vips[0];
    format!("{}/{} dev {}", v.addr, v.prefix, v.dev)
}

fn script(name: Value, script: Value) -> Value {
    json!({"vrrp_script": [{"name": name, "script": script, "interval": 1, "weight": 0,
        "fall": null, "rise": null, "timeout": null}]})
}

fn options() -> Vec<Opt> {
    let notify = |key: &'static str| {
        move |v: &str| {
            let mut n = json!({"script": null, "master": null, "backup": null, "fault": null,
                "stop": null});
            n[key] = json!(v);
            json!({ "notify": n })
        }
    };
    vec![
        Opt {
            option: "name",
            set: Box::new(|v| json!({ "name": v })),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "interface",
            set: Box::new(|v| json!({ "interface": v })),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "virtual_ipaddress",
            set: Box::new(|v| json!({"virtual_ipaddress": [format!("10.231.0.20/24 dev {v}")]})),
            marker: MARKER,
            // Blanks around it separate words of the entry.
            written: |v, i| {
                assert_eq!(i.vips[0].dev, v.trim_matches([' ', '\t']), "{v:?}");
                i.vips[0].dev.clone()
            },
        },
        Opt {
            option: "virtual_ipaddress",
            // The interface is given, so nothing asks the host's routes.
            set: Box::new(|v| json!({"interface": "eth0", "virtual_ipaddress": [v]})),
            marker: "10.231.0.20/24 dev eth0",
            written: vip_line,
        },
        Opt {
            option: "track_interface",
            set: Box::new(|v| json!({ "track_interface": [v] })),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "vrrp_script name",
            set: Box::new(|v| script(json!(v), json!("true"))),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "vrrp_script",
            set: Box::new(|v| script(json!("chk"), json!(v))),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "notify.script",
            set: Box::new(notify("script")),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "notify.master",
            set: Box::new(notify("master")),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "notify.backup",
            set: Box::new(notify("backup")),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "notify.fault",
            set: Box::new(notify("fault")),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "notify.stop",
            set: Box::new(notify("stop")),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "unicast_src_ip",
            set: Box::new(|v| json!({ "unicast_src_ip": v })),
            marker: "10.231.0.101",
            written: address,
        },
        Opt {
            option: "unicast_peer",
            set: Box::new(|v| json!({ "unicast_peer": [v] })),
            marker: "10.231.0.77",
            written: address,
        },
        Opt {
            option: "auth_pass",
            set: Box::new(|v| json!({"vrrp_version": 2, "auth_pass": v})),
            marker: MARKER,
            written: same,
        },
        Opt {
            option: "track_file",
            set: Box::new(|v| json!({ "track_file": v })),
            marker: "/run/zqmark/f",
            written: same,
        },
        Opt {
            option: "track_services",
            set: Box::new(|v| json!({ "track_services": [v] })),
            marker: MARKER,
            // Two places, each with its own escaping: see `outcome`.
            written: same,
        },
        Opt {
            option: "config_path",
            set: Box::new(|v| json!({ "config_path": v })),
            marker: "/etc/keepalived/zqmark.conf",
            written: same,
        },
    ]
}

/// The whole file one instance makes, checked to read back as that block.
fn file_of(i: &Instance) -> String {
    let block = i.render();
    let blocks = conf::with_block(vec![], &i.name, Some(block.clone()));
    let text = conf::render_file(&blocks, &[]);
    let parsed = conf::parse(&text);
    assert!(
        !parsed.foreign,
        "the module's own parser finds foreign text:\n{text}"
    );
    assert_eq!(parsed.blocks.len(), 1, "{text}");
    assert_eq!(parsed.blocks[0].name, i.name, "{text}");
    assert_eq!(parsed.blocks[0].text, block, "{text}");
    text
}

fn dir_of(file: &str) -> &str {
    Path::new(file)
        .parent()
        .and_then(Path::to_str)
        .unwrap_or("/")
}

/// Refused naming the option, or written exactly where the marker was.
fn outcome(opt: &Opt, value: &str) -> Result<(), TestCaseError> {
    let baseline = checks::instance(&params((opt.set)(opt.marker)), &host())
        .unwrap_or_else(|e| panic!("{}: the baseline fails: {e}", opt.option));
    let got = checks::instance(&params((opt.set)(value)), &host());
    let inst = match got {
        Err(msg) => {
            prop_assert!(
                msg.contains(opt.option),
                "{}: the refusal of {value:?} does not name it: {msg}",
                opt.option
            );
            if opt.option == "auth_pass" {
                prop_assert!(
                    !msg.contains(&format!("{value:?}")),
                    "the refusal shows the password: {msg}"
                );
            }
            return Ok(());
        }
        Ok(i) => i,
    };
    if opt.option == "track_services" {
        return service_lands_in_its_places(opt, value, &baseline, &inst);
    }
    let expected = file_of(&baseline).replace(opt.marker, &(opt.written)(value, &inst));
    prop_assert_eq!(
        file_of(&inst),
        expected,
        "{}: {:?} changed more than its own place",
        opt.option,
        value
    );
    if matches!(opt.option, "track_file" | "config_path") {
        prop_assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-./@+".contains(c)),
            "{}: accepted {value:?}",
            opt.option
        );
    }
    if opt.option == "track_file" {
        let swap = |text: String| {
            text.replace(opt.marker, "\u{1}F")
                .replace(dir_of(opt.marker), "\u{1}D")
                .replace("\u{1}F", value)
                .replace("\u{1}D", dir_of(value))
        };
        let vips: Vec<IpAddr> = vec!["10.231.0.20".parse().expect("ip")];
        let haproxy = Service::haproxy();
        prop_assert_eq!(
            haproxy.dropin(value, &vips, 2.0),
            swap(haproxy.dropin(opt.marker, &vips, 2.0))
        );
        prop_assert_eq!(
            haproxy.tmpfiles(value).ok(),
            haproxy.tmpfiles(opt.marker).ok().map(swap)
        );
    }
    Ok(())
}

/// An accepted `track_services` name: a unit name and nothing more, in the
/// block name and the file name (each escaped its way), the drop-in and the
/// tmpfiles.d entry, where the marker's service was.
fn service_lands_in_its_places(
    opt: &Opt,
    value: &str,
    baseline: &Instance,
    inst: &Instance,
) -> Result<(), TestCaseError> {
    prop_assert!(
        !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c)),
        "track_services: accepted {value:?}"
    );
    let service = Service::named(value);
    prop_assert_eq!(inst.track_services.len(), 1);
    prop_assert_eq!(&inst.track_services[0].service, &service);
    let file = format!("/{}.down", service.file_tag());
    let marker_file = format!("/{}.down", opt.marker);
    let block = format!("_track_{} ", service.conf_tag());
    let marker_block = format!("_track_{} ", opt.marker);
    prop_assert_eq!(
        file_of(inst),
        file_of(baseline)
            .replace(&marker_file, &file)
            .replace(&marker_block, &block),
        "track_services: {:?} changed more than its own places",
        value
    );
    let marker = Service::named(opt.marker);
    let (path, marker_path) = (
        &inst.track_services[0].file,
        &baseline.track_services[0].file,
    );
    let swap = |text: String| {
        text.replace(marker.unit(), service.unit())
            .replace(&marker_file, &file)
    };
    let vips: Vec<IpAddr> = vec!["10.231.0.20".parse().expect("ip")];
    prop_assert_eq!(
        service.dropin(path, &vips, 2.0),
        swap(marker.dropin(marker_path, &vips, 2.0))
    );
    prop_assert_eq!(
        service.tmpfiles(path).ok(),
        marker.tmpfiles(marker_path).ok().map(swap)
    );
    prop_assert_eq!(
        service.dropin_path(),
        marker.dropin_path().replace(marker.unit(), service.unit())
    );
    Ok(())
}

fn hostile() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(HOSTILE),
        proptest::sample::select(ORDINARY)
    ];
    proptest::collection::vec(piece, 1..6).prop_map(|p| p.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    /// Half the values start as a valid one does (the marker), so accepted
    /// values are common too.
    #[test]
    fn every_string_option_is_refused_or_lands_in_its_one_place(
        n in 0..options().len(),
        after_marker in any::<bool>(),
        value in hostile(),
    ) {
        let opt = &options()[n];
        let value = if after_marker { format!("{}{value}", opt.marker) } else { value };
        outcome(opt, &value)?;
    }
}

/// Every hostile character in every option, not left to chance.
#[test]
fn every_hostile_character_in_every_option() {
    for opt in options() {
        for h in HOSTILE {
            for value in [
                format!("ok{h}x"),
                format!("{}{h}", opt.marker),
                (*h).to_string(),
            ] {
                if let Err(e) = outcome(&opt, &value) {
                    panic!("{e}");
                }
            }
        }
        // A word is refused naming the character (a script may hold `;`; the
        // password's refusal shows nothing of it).
        if !opt.option.starts_with("notify") && !matches!(opt.option, "vrrp_script" | "auth_pass") {
            let e = checks::instance(&params((opt.set)("a;b")), &host()).expect_err(opt.option);
            assert!(e.contains("';'"), "{}: {e}", opt.option);
        }
    }
}

#[test]
fn interface_names_from_the_host_are_checked_too() {
    let host = crate::net::parse_addrs(
        r#"[{"ifname":"eth0;x","addr_info":[{"local":"10.231.0.101","prefixlen":24}]}]"#,
    )
    .expect("addrs");
    let e = checks::instance(&params(json!({})), &host).expect_err("refused");
    assert!(e.starts_with("interface must not contain ';'"), "{e}");
}

/// The body of `KEY=-/bin/sh -c '<body>'` (or `-+/bin/sh`) as systemd hands it to `sh`:
/// C escapes undone inside the quotes, then `%%` and `$$` undone. `None`
/// where systemd would refuse the line or expand something.
fn systemd_arg(line: &str, key: &str) -> Option<Vec<u8>> {
    let rest = line.strip_prefix(&format!("{key}="))?;
    let rest = rest.strip_prefix("-+").or_else(|| rest.strip_prefix('-'))?;
    let body = rest
        .strip_prefix("/bin/sh -c '")?
        .strip_suffix('\'')?
        .as_bytes();
    let mut raw = vec![];
    let mut i = 0;
    while i < body.len() {
        match body[i] {
            b'\'' | b'\n' | b'\r' => return None,
            b'\\' => {
                i += 1;
                match *body.get(i)? {
                    b'\\' => raw.push(b'\\'),
                    b'\'' => raw.push(b'\''),
                    b'x' => {
                        let hex = std::str::from_utf8(body.get(i + 1..i + 3)?).ok()?;
                        let byte = u8::from_str_radix(hex, 16).ok()?;
                        if byte == 0 {
                            return None;
                        }
                        raw.push(byte);
                        i += 2;
                    }
                    _ => return None,
                }
            }
            c => raw.push(c),
        }
        i += 1;
    }
    let mut out = vec![];
    let mut j = 0;
    while j < raw.len() {
        if matches!(raw[j], b'%' | b'$') {
            if raw.get(j + 1) != Some(&raw[j]) {
                return None;
            }
            j += 1;
        }
        out.push(raw[j]);
        j += 1;
    }
    Some(out)
}

/// The fields of a tmpfiles.d line as systemd 252 reads them: split on
/// blanks outside quotes, a backslash takes the next character as it is,
/// then `%%` undone. `None` where tmpfiles.d would expand something.
fn tmpfiles_fields(line: &str) -> Option<Vec<String>> {
    let mut fields = vec![];
    let mut word: Option<String> = None;
    let mut quote = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => word.get_or_insert_with(String::new).push(chars.next()?),
            ('"' | '\'', None) => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (c, Some(q)) if c == q => quote = None,
            (' ' | '\t', None) => fields.extend(word.take()),
            (c, _) => word.get_or_insert_with(String::new).push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    fields.extend(word.take());
    let mut out = vec![];
    for f in fields {
        let mut text = String::new();
        let mut chars = f.chars();
        while let Some(c) = chars.next() {
            if c == '%' && chars.next() != Some('%') {
                return None;
            }
            text.push(c);
        }
        out.push(text);
    }
    Some(out)
}

fn sh_safe_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(
            &[
                "\n", "\r", ";", "#", "!", "\"", "'", "\\", "$(", "`", "{", "}", "%", "~", " ",
                "\u{2028}", "\t", "$", "*", "&", "|", "<", ">", "%h", "${HOME}", "$$",
            ][..]
        ),
        proptest::sample::select(
            &[
                "a",
                "x",
                "touch pwned",
                "$(touch pwned)",
                "`touch pwned`",
                "'; touch pwned; '",
                "\"; touch pwned; \"",
                "\\'",
            ][..]
        ),
    ];
    proptest::collection::vec(piece, 1..6)
        .prop_map(|p| p.concat())
        .prop_filter("a name in the directory", |v| v != "." && v != "..")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]

    /// Defence in depth: whatever the file name (no check in front), the
    /// drop-in's commands write that file and nothing else, and the
    /// tmpfiles.d line names it and its directory; for HAProxy's drop-in and
    /// a tracked service's.
    #[test]
    fn the_dropin_and_tmpfiles_quote_any_file_name(
        name in sh_safe_name(),
        haproxy in any::<bool>(),
    ) {
        let service = if haproxy { Service::haproxy() } else { Service::named("knot") };
        let dir = tempfile::tempdir().expect("tempdir");
        let file = format!("{}/{name}", dir.path().display());
        let dropin = service.dropin(&file, &[], 0.0);
        prop_assert_eq!(dropin.lines().count(), 8, "{}", dropin);
        let run = |key: &str, want: &str| -> Result<(), TestCaseError> {
            let line = dropin
                .lines()
                .find(|l| l.starts_with(&format!("{key}=")))
                .expect("line");
            let script = systemd_arg(line, key);
            prop_assert!(script.is_some(), "systemd would not read it as one argument: {}", line);
            let script = script.unwrap_or_default();
            let status = std::process::Command::new("sh")
                .arg("-c")
                .arg(std::ffi::OsStr::from_bytes(&script))
                .current_dir(dir.path())
                .status()
                .expect("sh");
            prop_assert!(status.success(), "{}", line);
            let entries: Vec<String> = std::fs::read_dir(dir.path())
                .expect("ls")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            prop_assert_eq!(&entries, &vec![name.clone()], "{}", line);
            prop_assert_eq!(std::fs::read_to_string(&file).expect("read"), format!("{want}\n"));
            Ok(())
        };
        run("ExecStartPost", track::UP)?;
        run("ExecStop", track::DOWN)?;
        run("ExecStopPost", track::DOWN)?;

        let tmpfiles = service.tmpfiles(&file);
        if name.contains(['\n', '\r']) {
            prop_assert!(tmpfiles.is_err());
            return Ok(());
        }
        let tmpfiles = tmpfiles.unwrap_or_default();
        let lines: Vec<&str> = tmpfiles.lines().filter(|l| !l.starts_with('#')).collect();
        prop_assert_eq!(lines.len(), 2, "{}", tmpfiles);
        let d = tmpfiles_fields(lines[0]);
        let f = tmpfiles_fields(lines[1]);
        let dir_text = dir.path().display().to_string();
        prop_assert_eq!(
            d,
            Some(vec!["d".into(), dir_text, "0755".into(), "root".into(), "root".into(), "-".into()])
        );
        prop_assert_eq!(
            f,
            Some(vec!["f".into(), file.clone(), "0644".into(), "root".into(), "root".into(),
                "-".into(), track::DOWN.into()])
        );
    }
}
