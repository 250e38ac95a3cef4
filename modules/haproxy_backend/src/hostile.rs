//! Hostile option values, every string option: each is refused with a
//! message that names the option (and then nothing is written), or lands in
//! exactly the one place it was asked for.
//!
//! The check for an accepted value: the file rendered with it is the file
//! rendered with a marker value, with the marker replaced by the value; and
//! the module's own parser (`split_sections`, `words`, `parse_backend`)
//! finds the same sections and on every line the same words, the value
//! being one of them. No extra line, section or directive. For the server
//! level the same holds for the edited file and for the runtime API
//! commands built from the values, which are each one command.

use std::path::Path;

use ansible_module::NO_LOG_PLACEHOLDER;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::backend;
use crate::config::{self, Admin, BackendInfo};
use crate::ops::Step;
use crate::params::Params;
use crate::runtime::one_command;
use crate::server;

/// The characters each target syntax treats specially, and then some.
const HOSTILE: &[&str] = &[
    "\n", "\r", "\0", ";", "#", "\"", "'", "\\", "$(", "`", "{", "}", "%", " ", "\u{2028}", "\t",
    "$", "\u{85}", "\u{2029}",
];

/// Ordinary text to mix them with (and to make some values valid).
const ORDINARY: &[&str] = &[
    "web",
    "a",
    "x-1",
    "GET",
    "10.231.0.5",
    "2001:db8::1",
    "*:80",
    "/",
    "_",
    ".",
    ":",
    "@",
    "50s",
    "/run/h",
    "%s",
    "help",
    "show info",
    "\nstats socket /tmp/evil.sock level admin",
    "\n    server evil 10.0.0.66:80",
];

const MARKER: &str = "zqmark";
const PASSWORD: &str = "pAssw0rd";
const KEY: &str = "k3yk3y";

/// Where a value goes: an option of a backend-level run, an option of a
/// server-level run, or a secret read from its file.
#[derive(Clone, Copy)]
enum Level {
    Backend,
    Server,
    Password,
    Key,
}

/// One string option: how to set it, its marker, what a refusal names, and
/// the value as the module has it (after Ansible's `path` expansion).
struct Opt {
    option: &'static str,
    level: Level,
    set: fn(&str) -> Value,
    marker: &'static str,
    get: fn(&Params) -> String,
    /// An accepted value is not written anywhere in the file.
    unwritten: bool,
}

fn opt(
    option: &'static str,
    set: fn(&str) -> Value,
    marker: &'static str,
    get: fn(&Params) -> String,
) -> Opt {
    Opt {
        option,
        level: Level::Backend,
        set,
        marker,
        get,
        unwritten: false,
    }
}

fn options() -> Vec<Opt> {
    let path = "/run/zqmark/f";
    vec![
        opt(
            "name",
            |v| json!({ "name": v }),
            MARKER,
            |p| p.backend().to_string(),
        ),
        opt(
            "servers.name",
            |v| json!({"servers": [{"name": v, "address": "10.231.0.101"}]}),
            MARKER,
            |p| {
                p.servers
                    .as_ref()
                    .map(|s| s[0].name.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "servers.address",
            |v| json!({"servers": [{"name": "web-01", "address": v}]}),
            "10.231.0.77",
            |p| {
                p.servers
                    .as_ref()
                    .map(|s| s[0].address.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "health_check.method",
            |v| json!({"health_check": {"method": v}}),
            "ZQMARK",
            |p| p.health_check.method.clone(),
        ),
        opt(
            "health_check.path",
            |v| json!({"health_check": {"path": v}}),
            MARKER,
            |p| p.health_check.path.clone(),
        ),
        opt(
            "health_check.interval",
            |v| json!({"health_check": {"interval": v}}),
            MARKER,
            |p| p.health_check.interval.clone(),
        ),
        opt(
            "health_check.fast_interval",
            |v| json!({"health_check": {"fast_interval": v}}),
            MARKER,
            |p| p.health_check.fast_interval.clone(),
        ),
        opt(
            "retry.replay_methods",
            |v| json!({"retry": {"replay_methods": ["GET", v]}}),
            "ZQMARK",
            |p| p.retry.replay_methods.get(1).cloned().unwrap_or_default(),
        ),
        opt(
            "frontend.name",
            |v| json!({"frontend": {"name": v}}),
            MARKER,
            |p| p.frontend.name.clone(),
        ),
        opt(
            "frontend.bind",
            |v| json!({"frontend": {"bind": v}}),
            MARKER,
            |p| p.frontend.bind.clone(),
        ),
        opt(
            "frontend.tls.bind",
            |v| json!({"frontend": {"tls": {"bind": v}}}),
            "*:4433",
            |p| {
                p.frontend
                    .tls
                    .as_ref()
                    .map(|t| t.bind.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "frontend.tls.certificate",
            |v| json!({"frontend": {"tls": {"certificate": v}}}),
            path,
            |p| {
                p.frontend
                    .tls
                    .as_ref()
                    .map(|t| t.certificate.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "frontend.tls.ciphers",
            |v| json!({"frontend": {"tls": {"ciphers": v}}}),
            MARKER,
            |p| {
                p.frontend
                    .tls
                    .as_ref()
                    .map(|t| t.ciphers.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "frontend.tls.ciphersuites",
            |v| json!({"frontend": {"tls": {"ciphersuites": v}}}),
            MARKER,
            |p| {
                p.frontend
                    .tls
                    .as_ref()
                    .map(|t| t.ciphersuites.clone())
                    .unwrap_or_default()
            },
        ),
        opt(
            "cookie.name",
            |v| json!({"cookie": {"name": v}}),
            MARKER,
            |p| p.cookie.name.clone(),
        ),
        opt(
            "cookie.key",
            |v| json!({"cookie": {"key": v}}),
            MARKER,
            |p| p.cookie.key.clone().unwrap_or_default(),
        ),
        opt(
            "stats.bind",
            |v| json!({"stats": {"enabled": true, "bind": v}}),
            MARKER,
            |p| p.stats.bind.clone(),
        ),
        opt(
            "stats.uri",
            |v| json!({"stats": {"enabled": true, "uri": v}}),
            MARKER,
            |p| p.stats.uri.clone(),
        ),
        opt(
            "stats.user",
            |v| json!({"stats": {"enabled": true, "user": v}}),
            MARKER,
            |p| p.stats.user.clone(),
        ),
        opt(
            "timeouts.connect",
            |v| json!({"timeouts": {"connect": v}}),
            MARKER,
            |p| p.timeouts.connect.clone(),
        ),
        opt(
            "timeouts.client",
            |v| json!({"timeouts": {"client": v}}),
            MARKER,
            |p| p.timeouts.client.clone(),
        ),
        opt(
            "timeouts.server",
            |v| json!({"timeouts": {"server": v}}),
            MARKER,
            |p| p.timeouts.server.clone(),
        ),
        opt(
            "timeouts.http_request",
            |v| json!({"timeouts": {"http_request": v}}),
            MARKER,
            |p| p.timeouts.http_request.clone(),
        ),
        opt(
            "timeouts.queue",
            |v| json!({"timeouts": {"queue": v}}),
            MARKER,
            |p| p.timeouts.queue.clone(),
        ),
        opt(
            "admin_socket",
            |v| json!({ "admin_socket": v }),
            path,
            |p| p.admin_socket.clone(),
        ),
        Opt {
            unwritten: true,
            ..opt(
                "config_path",
                |v| json!({ "config_path": v }),
                path,
                |p| p.config_path.clone(),
            )
        },
        Opt {
            unwritten: true,
            ..opt(
                "stats.password_file",
                |v| json!({"stats": {"enabled": true, "password_file": v}}),
                path,
                |p| p.stats.password_file.clone(),
            )
        },
        Opt {
            unwritten: true,
            ..opt(
                "cookie.key_file",
                |v| json!({"cookie": {"key_file": v}}),
                path,
                |p| p.cookie.key_file.clone(),
            )
        },
        Opt {
            unwritten: true,
            ..opt(
                "validate",
                |v| json!({ "validate": v }),
                "haproxy -c -f %s",
                |p| p.validate.clone(),
            )
        },
        Opt {
            level: Level::Server,
            ..opt(
                "server",
                |v| json!({"server": v, "address": "10.231.0.102"}),
                MARKER,
                |p| p.server.clone().unwrap_or_default(),
            )
        },
        Opt {
            level: Level::Server,
            ..opt(
                "address",
                |v| json!({"server": "web-01", "address": v}),
                "10.231.0.77",
                |p| p.address.clone().unwrap_or_default(),
            )
        },
        Opt {
            level: Level::Password,
            ..opt("stats password", |_| json!({}), MARKER, |_| String::new())
        },
        Opt {
            level: Level::Key,
            ..opt("cookie key", |_| json!({}), MARKER, |_| String::new())
        },
    ]
}

/// The task every case starts from: cookie stickiness, the stats page, one
/// server.
fn base() -> Value {
    json!({
        "name": "web",
        "servers": [{"name": "web-01", "address": "10.231.0.101"}],
        "stickiness": "cookie",
        "cookie": {"key": KEY},
        "stats": {"enabled": true},
    })
}

/// `patch` merged into `into`, dictionaries key by key.
fn merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v.clone(),
    }
}

fn args(patch: &Value) -> Map<String, Value> {
    let mut a = base();
    merge(&mut a, patch);
    // A server-level task lists no servers.
    if a.get("server").is_some() {
        if let Some(o) = a.as_object_mut() {
            o.remove("servers");
        }
    }
    a.as_object().cloned().unwrap_or_default()
}

/// The options as the module has them after Ansible's validation, or the
/// message that validation fails with.
fn params(patch: &Value) -> Result<Params, String> {
    let v = ansible_module::validate(&crate::spec(), args(patch));
    if let Some(msg) = v.failure("haproxy_backend") {
        return Err(msg);
    }
    serde_json::from_value(Value::Object(v.params)).map_err(|e| e.to_string())
}

/// The secrets a backend-level render gets for `opt` with `value`.
fn secrets(opt: &Opt, value: &str) -> (String, Option<String>) {
    match opt.level {
        Level::Password => (value.to_string(), Some(KEY.into())),
        Level::Key => (PASSWORD.to_string(), Some(value.to_string())),
        _ => (PASSWORD.to_string(), None),
    }
}

/// A secret file's content is read trimmed, and an empty one is made anew:
/// `None` for such a value (nothing of it reaches the file).
fn effective<'a>(opt: &Opt, value: &'a str) -> Option<&'a str> {
    match opt.level {
        Level::Password | Level::Key => Some(value.trim()).filter(|v| !v.is_empty()),
        _ => Some(value),
    }
}

/// What the module makes of `value` for `opt`: the file, and the runtime
/// commands (server level), or the refusal.
fn outcome(opt: &Opt, value: &str) -> Result<(String, Vec<String>), String> {
    let value = effective(opt, value).unwrap_or(opt.marker);
    let p = params(&(opt.set)(value))?;
    let (password, key) = secrets(opt, value);
    if matches!(opt.level, Level::Password | Level::Key) {
        crate::secret::check(&format!("the {} in /etc/haproxy/f", opt.option), value)
            .map_err(|e| e.msg)?;
    }
    let key = key.or_else(|| p.cookie.key.clone());
    let base = || -> Result<String, String> {
        let b = params(&json!({})).map_err(|e| format!("baseline: {e}"))?;
        backend::render(&b, None, Some(PASSWORD), Some(KEY))
            .map(|w| w.text)
            .map_err(|e| format!("baseline: {}", e.msg))
    };
    match opt.level {
        Level::Server => {
            let text = base()?;
            let info = config::parse_backend(&text, "web").ok_or("baseline: no backend")?;
            let name = p.server.clone().unwrap_or_default();
            let server::ServerChange {
                servers,
                server: desired,
            } = server::wanted(&p, "web", &info, &name).map_err(|e| e.msg)?;
            let edited = config::replace_servers(&text, "web", &servers).ok_or("no backend")?;
            let s = desired.ok_or("no server")?;
            let step = if info.servers.iter().any(|o| o.name == s.name) {
                Step::Addr(s)
            } else {
                Step::Add(s)
            };
            Ok((edited, vec![step.describe("web", &info.default_server)]))
        }
        _ => backend::render(&p, None, Some(&password), key.as_deref())
            .map(|w| (w.text, vec![]))
            .map_err(|e| e.msg),
    }
}

/// The file's shape as the module's own parser reads it.
type Shape = (Vec<Vec<String>>, Vec<(String, String, Vec<Vec<String>>)>);

fn shape(text: &str) -> Shape {
    let words =
        |l: &String| -> Vec<String> { config::words(l).into_iter().map(str::to_string).collect() };
    let (preamble, sections) = config::split_sections(text);
    (
        preamble.iter().map(words).collect(),
        sections
            .iter()
            .map(|s| {
                (
                    s.kind.clone(),
                    s.name.clone(),
                    s.lines.iter().map(words).collect(),
                )
            })
            .collect(),
    )
}

/// `shape` of the baseline with the marker replaced by `value` in each word:
/// what the parser must find in the file made with `value`.
fn shape_with(text: &str, marker: &str, value: &str) -> Shape {
    let swap =
        |w: &Vec<String>| -> Vec<String> { w.iter().map(|x| x.replace(marker, value)).collect() };
    let (pre, sections) = shape(text);
    (
        pre.iter().map(swap).collect(),
        sections
            .into_iter()
            .map(|(k, n, lines)| {
                (
                    k,
                    n.replace(marker, value),
                    lines.iter().map(swap).collect(),
                )
            })
            .collect(),
    )
}

/// Refused naming the option, or written exactly where the marker was.
fn judge(opt: &Opt, value: &str) -> Result<(), TestCaseError> {
    let Some(value) = effective(opt, value) else {
        return Ok(());
    };
    let (baseline, base_cmds) = outcome(opt, opt.marker)
        .unwrap_or_else(|e| panic!("{}: the baseline fails: {e}", opt.option));
    let (text, cmds) = match outcome(opt, value) {
        Err(msg) => {
            let named = msg.contains(opt.option)
                || (opt.option == "servers.address" && msg.contains("address of server"));
            prop_assert!(
                named,
                "{}: the refusal of {value:?} does not name it: {msg}",
                opt.option
            );
            if matches!(opt.level, Level::Password | Level::Key) || opt.option == "cookie.key" {
                prop_assert!(
                    !msg.contains(&format!("{value:?}")) || value.len() < 3,
                    "the refusal shows the secret: {msg}"
                );
            }
            return Ok(());
        }
        Ok(made) => made,
    };
    let written = match opt.level {
        Level::Password | Level::Key => value.to_string(),
        _ => {
            let p = params(&(opt.set)(value)).map_err(TestCaseError::fail)?;
            (opt.get)(&p)
        }
    };
    // The value is one word of haproxy.cfg or a runtime command.
    prop_assert!(
        opt.option == "validate"
            || (!written.is_empty()
                && written
                    .chars()
                    .all(|c| c.is_ascii_graphic() && !"#\"'\\;$`{}%".contains(c))),
        "{}: accepted {written:?}",
        opt.option
    );
    if opt.unwritten {
        prop_assert_eq!(
            &text,
            &baseline,
            "{}: {:?} changed the file",
            opt.option,
            value
        );
    } else {
        prop_assert_eq!(
            &text,
            &baseline.replace(opt.marker, &written),
            "{}: {:?} changed more than its own place",
            opt.option,
            value
        );
    }
    prop_assert_eq!(
        shape(&text),
        shape_with(&baseline, opt.marker, &written),
        "{}: the parser reads {:?} as more than one word",
        opt.option,
        value
    );
    let name = if opt.option == "name" {
        written.as_str()
    } else {
        "web"
    };
    let info = config::parse_backend(&text, name);
    prop_assert!(info.is_some(), "{}: backend {name} not found", opt.option);
    let info = info.unwrap_or_default();
    let expected = config::parse_backend(&baseline, opt.marker)
        .or_else(|| config::parse_backend(&baseline, "web"))
        .map_or(0, |b| b.servers.len());
    prop_assert!(expected > 0);
    prop_assert_eq!(info.servers.len(), expected, "{}", opt.option);
    prop_assert!(info.servers.iter().all(|s| s.admin == Admin::Ready));
    for (cmd, base_cmd) in cmds.iter().zip(&base_cmds) {
        prop_assert!(one_command(cmd).is_ok(), "two commands: {cmd:?}");
        prop_assert_eq!(cmd, &base_cmd.replace(opt.marker, &written));
    }
    match opt.option {
        "validate" => prop_assert!(
            ansible_module::syntax::one_line("v", &written).is_ok() && written.contains("%s")
        ),
        "config_path"
        | "stats.password_file"
        | "cookie.key_file"
        | "admin_socket"
        | "frontend.tls.certificate" => prop_assert!(
            ansible_module::syntax::path("p", &written).is_ok(),
            "{written:?}"
        ),
        _ => {}
    }
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
        let opts = options();
        let opt = &opts[n];
        let value = if after_marker { format!("{}{value}", opt.marker) } else { value };
        judge(opt, &value)?;
    }
}

/// The module run end to end on a refused value, in a directory of its own
/// (every path option points there, the checker always fails): the same
/// refusal, and nothing written.
fn refused_in_a_sandbox(opt: &Opt, value: &str, pure: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |f: &str| dir.path().join(f).display().to_string();
    let mut patch = json!({
        "config_path": at("haproxy.cfg"),
        "admin_socket": at("admin.sock"),
        "validate": "false %s",
        "stats": {"password_file": at("stats.password")},
        "cookie": {"key_file": at("cookie.key")},
    });
    merge(&mut patch, &(opt.set)(value));
    match opt.level {
        Level::Password => std::fs::write(at("stats.password"), value),
        Level::Key => {
            if let Some(c) = patch["cookie"].as_object_mut() {
                c.remove("key");
            }
            std::fs::write(at("cookie.key"), value)
        }
        _ => Ok(()),
    }
    .expect("write the secret");
    let mut a = args(&patch);
    if let (Level::Key, Some(c)) = (
        opt.level,
        a.get_mut("cookie").and_then(Value::as_object_mut),
    ) {
        c.remove("key");
    }
    let before: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    let (out, failed) = ansible_module::execute("haproxy_backend", &crate::spec(), a, crate::run);
    assert!(
        failed,
        "{}: {value:?} accepted end to end: {out:?}",
        opt.option
    );
    let msg = out["msg"].as_str().unwrap_or_default();
    let shown = |m: &str| m.replace(value, "********");
    assert!(
        msg == pure
            || msg == NO_LOG_PLACEHOLDER
            || shown(msg) == shown(pure)
            || msg.contains(opt.option),
        "{}: {value:?}: end to end {msg:?}, alone {pure:?}",
        opt.option
    );
    let after: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(
        before, after,
        "{}: {value:?} was refused after writing",
        opt.option
    );
    assert!(!Path::new("/tmp/evil.sock").exists());
}

/// Every hostile character in every option, not left to chance; each
/// refusal also end to end.
#[test]
fn every_hostile_character_in_every_option() {
    for opt in options() {
        for h in HOSTILE {
            for value in [
                format!("ok{h}x"),
                format!("{}{h}", opt.marker),
                format!("{h}{}", opt.marker),
                (*h).to_string(),
            ] {
                if let Err(e) = judge(&opt, &value) {
                    panic!("{e}");
                }
                if effective(&opt, &value).is_none() {
                    continue;
                }
                if let Err(pure) = outcome(&opt, &value) {
                    refused_in_a_sandbox(&opt, &value, &pure);
                }
            }
        }
        // A word is refused naming `;`, which separates runtime commands
        // (the validate command line may hold one: it is no shell).
        if opt.option != "validate" {
            let e = outcome(&opt, &format!("{}a;b", opt.marker)).expect_err(opt.option);
            assert!(
                e.contains("';'") || e.contains("must be"),
                "{}: {e}",
                opt.option
            );
        }
    }
}

/// What an `extra` line could try: break out of its line, start a section
/// (plain, indented, quoted, escaped, in capitals), switch lines off with a
/// conditional block, or set what the module owns.
const EXTRA_PIECES: &[&str] = &[
    "backend evil",
    "  listen x",
    "\"frontend\" f",
    "fr\\ontend f",
    "GLOBAL",
    "userlist u",
    ".if 0",
    ".endif",
    "\"${S}\"",
    "server evil 10.0.0.66:80",
    "default-server inter 1s",
    "acl a path_beg /a",
    "http-request deny if a",
    "# c",
    "option forwardfor",
    " ",
    "stats auth a:b",
];

fn extra_line_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        proptest::sample::select(HOSTILE),
        proptest::sample::select(ORDINARY),
        proptest::sample::select(EXTRA_PIECES),
    ];
    proptest::collection::vec(piece, 1..5).prop_map(|p| p.concat())
}

/// `extra.<section>` with `line`: refused naming the option, or the file
/// made without it plus exactly that line in that section: the same
/// sections, the same backend and servers.
fn judge_extra(section: &str, line: &str) -> Result<(), TestCaseError> {
    let option = format!("extra.{section}[0]");
    let baseline = params(&json!({}))
        .and_then(|p| {
            backend::render(&p, None, Some(PASSWORD), Some(KEY))
                .map(|w| w.text)
                .map_err(|e| e.msg)
        })
        .map_err(TestCaseError::fail)?;
    let p = match params(&json!({ "extra": { section: [line] } })) {
        Ok(p) => p,
        Err(msg) => return Err(TestCaseError::fail(msg)),
    };
    let text = match backend::render(&p, None, Some(PASSWORD), Some(KEY)) {
        Err(e) => {
            prop_assert!(
                e.msg.starts_with(&format!("{option} must")),
                "{line:?}: {}",
                e.msg
            );
            return Ok(());
        }
        Ok(w) => w.text,
    };
    let (_, base_sections) = config::split_sections(&baseline);
    let (_, sections) = config::split_sections(&text);
    let names = |s: &[config::Section]| -> Vec<(String, String)> {
        s.iter().map(|s| (s.kind.clone(), s.name.clone())).collect()
    };
    prop_assert_eq!(names(&sections), names(&base_sections), "{:?}", line);
    for (a, b) in sections.iter().zip(&base_sections) {
        let extra = a.lines.len() - b.lines.len();
        prop_assert_eq!(extra, usize::from(a.kind == section), "{:?}", line);
        if a.kind == section {
            prop_assert!(
                a.lines
                    .iter()
                    .any(|l| l.trim() == line.trim() && l.starts_with("    ")),
                "{line:?} is not one line of {section}"
            );
        }
    }
    prop_assert_eq!(
        config::parse_backend(&text, "web"),
        config::parse_backend(&baseline, "web")
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn every_extra_line_is_refused_or_stays_one_line_of_its_section(
        section in proptest::sample::select(&["global", "defaults", "frontend", "backend"][..]),
        line in extra_line_value(),
    ) {
        judge_extra(section, &line)?;
    }
}

#[test]
fn every_extra_piece_in_every_section() {
    for section in ["global", "defaults", "frontend", "backend"] {
        for piece in EXTRA_PIECES.iter().chain(HOSTILE) {
            for line in [
                piece.to_string(),
                format!("option {piece}"),
                format!("{piece} x"),
            ] {
                if let Err(e) = judge_extra(section, &line) {
                    panic!("{e}");
                }
            }
        }
    }
}

/// `frontend.tls.certificate_content`: refused without showing it unless it
/// is a PEM certificate with its key; then it is written to the certificate
/// file only, and no key material is in the result (check mode, diff).
#[test]
fn certificate_content_is_never_shown() {
    const PEM: &str = "-----BEGIN CERTIFICATE-----\nQ0VSVENFUlQ=\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\nS2V5TWF0ZXJpYWwxMjM0NTY3OA==\n-----END PRIVATE KEY-----\n";
    let dir = tempfile::tempdir().expect("tempdir");
    let at = |f: &str| dir.path().join(f).display().to_string();
    let run = |content: &str| {
        let a = args(&json!({
            "config_path": at("haproxy.cfg"),
            "admin_socket": at("admin.sock"),
            "validate": "true %s",
            "stats": {"password_file": at("stats.password")},
            "cookie": {"key_file": at("cookie.key")},
            "frontend": {"tls": {"certificate": at("tls.pem"), "certificate_content": content, "hsts": 600}},
            "_ansible_check_mode": true,
            "_ansible_diff": true,
        }));
        let (out, failed) =
            ansible_module::execute("haproxy_backend", &crate::spec(), a, crate::run);
        (Value::Object(out), failed)
    };
    for h in HOSTILE.iter().chain(&["", "S2V5TWF0ZXJpYWwxMjM0NTY3OA=="]) {
        let bad = format!("S2V5TWF0ZXJpYWwxMjM0NTY3OA=={h}");
        let (out, failed) = run(&bad);
        assert!(failed, "{bad:?}: {out:?}");
        let msg = out["msg"].as_str().unwrap_or_default();
        assert!(
            msg.starts_with("frontend.tls.certificate_content must"),
            "{msg}"
        );
        assert!(!out.to_string().contains("S2V5TWF0"), "{out}");
    }
    let (out, failed) = run(PEM);
    assert!(!failed, "{out:?}");
    let shown = out.to_string();
    assert!(
        !shown.contains("S2V5TWF0") && !shown.contains("Q0VSVENFUlQ"),
        "{shown}"
    );
    assert_eq!(out["tls_certificate"], json!(at("tls.pem")));
    let diffs = out["diff"].to_string();
    assert!(diffs.contains("1 certificate(s), fingerprint"), "{diffs}");
    assert!(
        diffs.contains("private key: present (not shown)"),
        "{diffs}"
    );
    assert!(
        diffs.contains(&format!("bind *:443 ssl crt {}", at("tls.pem"))),
        "{diffs}"
    );
    assert!(diffs.contains("max-age=600"), "{diffs}");
    assert_eq!(
        out["invocation"]["module_args"]["frontend"]["tls"]["certificate_content"],
        json!(NO_LOG_PLACEHOLDER)
    );
    assert!(
        std::fs::read_dir(dir.path()).expect("ls").next().is_none(),
        "check mode wrote"
    );
}

/// Values read back from haproxy.cfg go into runtime commands only after
/// the same checks as options.
#[test]
fn values_from_the_file_are_checked_before_a_runtime_command() {
    let text = "backend web\n    dynamic-cookie-key k;help\n    default-server inter 2s\n    server a 10.0.0.1:80 check\n";
    let info: BackendInfo = config::parse_backend(text, "web").expect("backend");
    let e = crate::checks::from_file(&info, "/etc/haproxy/haproxy.cfg").expect_err("refused");
    assert!(
        e.msg
            .contains("the dynamic-cookie-key in /etc/haproxy/haproxy.cfg must not contain ';'"),
        "{}",
        e.msg
    );
    assert!(!e.msg.contains("k;help"), "{}", e.msg);
    let text = "backend web\n    default-server inter 2s;x\n";
    let info = config::parse_backend(text, "web").expect("backend");
    assert!(crate::checks::from_file(&info, "/x").is_err());
}
