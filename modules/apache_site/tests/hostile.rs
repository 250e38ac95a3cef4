//! Every string option, with hostile text mixed into ordinary values: either
//! `Params::into_site` refuses it with a message that starts with the
//! option's name, or the rendered vhost, read line by line the way Apache
//! reads it (`apache_site::conf`: `ap_cfg_getline`, `ap_getword_conf`,
//! sections), holds exactly the directive that was asked for: the same lines
//! and sections as a baseline, the one argument equal to the value, and
//! `extra_config`'s own lines inside the `<VirtualHost>`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use apache_site::conf::{self, Item};
use apache_site::params::{Params, Site};
use apache_site::render;
use proptest::prelude::*;
use serde_json::{json, Value};

/// What a playbook variable could smuggle in.
const HOSTILE: &[&str] = &[
    "\n", "\r", "\0", ";", "#", "\"", "'", "\\", "$(", "${", "`", "{", "}", "%", " ", "\u{2028}",
    "\u{2029}", "\t",
];

/// Options as the module gets them after Ansible's validation, with a value
/// for every option that lands in the vhost.
fn base() -> Value {
    json!({
        "name": "web", "state": "present", "port": 80, "listen_address": "10.0.0.5",
        "server_name": "www.example.test", "server_aliases": ["a.example.test"],
        "document_root": "/var/www/web", "allowed_roots": ["/var/www", "/srv"],
        "index_content": null, "manage_index": true, "trusted_proxies": ["10.231.0.11"],
        "proxy_trust": "internal",
        "health_check": {"method": "GET", "path": "/health?full=1", "log": false},
        "enabled": true, "modules": ["headers"], "default_site": "auto",
        "access_log": "${APACHE_LOG_DIR}/access.log",
        "error_log": "${APACHE_LOG_DIR}/error.log",
        "extra_config": "Header set X-Site web"
    })
}

fn site(params: &Value) -> Result<Site, String> {
    let p: Params = serde_json::from_value(params.clone()).expect("params");
    p.into_site().map_err(|e| e.0)
}

/// The logical lines of a rendered vhost as Apache reads them.
fn items(text: &str) -> Vec<Item> {
    let (lines, open) = conf::logical_lines(text);
    assert!(!open, "the file ends in a continuation:\n{text}");
    lines.iter().map(|l| conf::item(&l.text)).collect()
}

/// The shape of a line: its kind, name and number of arguments.
fn shape(item: &Item) -> (u8, String, usize) {
    match item {
        Item::Nothing => (0, String::new(), 0),
        Item::Open(n, a) => (1, n.to_ascii_lowercase(), a.len()),
        Item::Close(n) => (2, n.clone().unwrap_or_default().to_ascii_lowercase(), 0),
        Item::Directive(n, a) => (3, n.to_ascii_lowercase(), a.len()),
    }
}

fn directive<'a>(items: &'a [Item], name: &str) -> Vec<&'a Vec<String>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Directive(n, a) if n == name => Some(a),
            _ => None,
        })
        .collect()
}

fn section<'a>(items: &'a [Item], name: &str) -> Vec<&'a Vec<String>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Open(n, a) if n == name => Some(a),
            _ => None,
        })
        .collect()
}

/// `path` as the user asked for it, without `.`, `//` or a trailing `/`.
fn normalised(path: &str) -> String {
    Path::new(path)
        .components()
        .collect::<PathBuf>()
        .display()
        .to_string()
}

/// Every line outside `extra_config` is the baseline's; `${` appears only
/// where Debian's log directory is meant.
fn same_shape_as_baseline(text: &str, baseline: &str) {
    let (got, want) = (items(text), items(baseline));
    let got: Vec<_> = got.iter().map(shape).collect();
    let want: Vec<_> = want.iter().map(shape).collect();
    assert_eq!(got, want, "the lines changed:\n{text}");
    assert_eq!(
        text.lines().count(),
        baseline.lines().count(),
        "physical lines changed:\n{text}"
    );
    for line in text.lines() {
        let rest = line.replacen("${APACHE_LOG_DIR}/", "", 1);
        assert!(!rest.contains("${"), "an expansion in {line:?}");
    }
}

/// The base options with `option` set to `value` (list options get it as
/// their second entry).
fn params_with(option: &str, value: &str) -> Value {
    let mut params = base();
    let v = Value::String(value.to_string());
    match option {
        "server_aliases" => params[option] = json!(["ok.example.test", v]),
        "allowed_roots" => params[option] = json!([v, "/var/www"]),
        "trusted_proxies" => params[option] = json!(["10.231.0.11", v]),
        "modules" => params[option] = json!(["headers", v]),
        "health_check.method" => params["health_check"]["method"] = v,
        "health_check.path" => params["health_check"]["path"] = v,
        _ => params[option] = v,
    }
    params
}

/// An ordinary value of each option, for the baseline.
fn ordinary(option: &str) -> &'static str {
    match option {
        "name" => "web",
        "server_name" => "www.example.test",
        "server_aliases" => "b.example.test",
        "document_root" => "/var/www/web",
        "allowed_roots" => "/opt",
        "listen_address" => "10.0.0.5",
        "trusted_proxies" => "10.231.0.12",
        "health_check.method" => "GET",
        "health_check.path" => "/health?full=1",
        "access_log" => "${APACHE_LOG_DIR}/access.log",
        "error_log" => "${APACHE_LOG_DIR}/error.log",
        "modules" => "rewrite",
        _ => "Header set X-Site web",
    }
}

/// The case for one option: refused naming it, or rendered exactly.
fn check(option: &str, value: &str) -> Result<(), TestCaseError> {
    let params = params_with(option, value);
    let site = match site(&params) {
        Err(msg) => {
            prop_assert!(
                msg.starts_with(&format!("{option} ")),
                "{option}={value:?}: refusal does not name the option: {msg}"
            );
            return Ok(());
        }
        Ok(site) => site,
    };
    let text = render::vhost(&site)
        .map_err(|e| TestCaseError::fail(format!("accepted but not rendered: {e}")))?;
    let baseline =
        render::vhost(&self::site(&params_with(option, ordinary(option))).expect("base"))
            .expect("baseline");
    let it = items(&text);
    match option {
        "extra_config" => {
            // Everything up to the logs is the baseline's; the rest is
            // extra_config's, inside the one <VirtualHost> that closes last.
            let base_items = items(&baseline);
            let head = base_items
                .iter()
                .position(|i| matches!(i, Item::Directive(n, _) if n == "CustomLog"))
                .expect("CustomLog")
                + 1;
            prop_assert_eq!(&it[..head], &base_items[..head]);
            prop_assert_eq!(it.last(), Some(&Item::Close(Some("VirtualHost".into()))));
            let mut depth = 0i32;
            for (n, item) in it.iter().enumerate() {
                match item {
                    Item::Open(name, _) => {
                        prop_assert!(
                            n < head || !name.eq_ignore_ascii_case("VirtualHost"),
                            "a <VirtualHost> from extra_config:\n{text}"
                        );
                        depth += 1;
                    }
                    Item::Close(_) => {
                        depth -= 1;
                        prop_assert!(
                            depth > 0 || n + 1 == it.len(),
                            "extra_config closed the <VirtualHost>:\n{text}"
                        );
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(depth, 0);
            // extra_config's lines, after the blank line that precedes them.
            let rendered = |v: &str| match render::extra_lines(v).len() {
                0 => 0,
                n => n + 1,
            };
            prop_assert_eq!(
                text.lines().count() + rendered(ordinary(option)),
                baseline.lines().count() + rendered(value),
                "{}",
                text
            );
        }
        _ => same_shape_as_baseline(&text, &baseline),
    }
    match option {
        "name" => {
            let first = conf::logical_lines(&text).0[0].text.clone();
            prop_assert_eq!(
                first,
                format!("# Managed by the apache_site module (site {value}): local changes are overwritten.")
            );
        }
        "server_name" => {
            prop_assert_eq!(directive(&it, "ServerName"), [&vec![value.to_string()]]);
        }
        "server_aliases" => {
            let want = vec!["ok.example.test".to_string(), value.to_string()];
            prop_assert_eq!(directive(&it, "ServerAlias"), [&want]);
        }
        "document_root" => {
            let want = vec![normalised(value)];
            prop_assert_eq!(directive(&it, "DocumentRoot"), [&want]);
            prop_assert_eq!(section(&it, "Directory"), [&want]);
        }
        "listen_address" => {
            let v = value.trim();
            let want = match v
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                _ if v.is_empty() || v == "*" => "*:80".to_string(),
                Ok(IpAddr::V4(a)) => format!("{a}:80"),
                Ok(IpAddr::V6(a)) => format!("[{a}]:80"),
                Err(_) => unreachable!("accepted {v:?}"),
            };
            prop_assert_eq!(section(&it, "VirtualHost"), [&vec![want]]);
        }
        "trusted_proxies" => {
            let got = directive(&it, "RemoteIPInternalProxy");
            prop_assert_eq!(got.len(), 1);
            prop_assert_eq!(got[0].len(), 2);
            prop_assert!(got[0][1].parse::<IpAddr>().is_ok() || got[0][1].contains('/'));
            prop_assert!(got[0][1]
                .chars()
                .all(|c| c.is_ascii_hexdigit() || ".:/".contains(c)));
        }
        "health_check.method" | "health_check.path" => {
            let (method, path) = if option == "health_check.method" {
                (value, "/health?full=1")
            } else {
                ("GET", value)
            };
            let request = match path.split_once('?') {
                Some((p, q)) => {
                    format!("%{{REQUEST_URI}} == '{p}' && %{{QUERY_STRING}} == '{q}'")
                }
                None => format!("%{{REQUEST_URI}} == '{path}'"),
            };
            let expr =
                format!("%{{REQUEST_METHOD}} == '{method}' && {request} && (-R '10.231.0.11')");
            let got = directive(&it, "SetEnvIfExpr");
            prop_assert_eq!(
                &got,
                &[&vec![expr.clone(), "vrrp_health_check".to_string()]]
            );
            // The literals stay literals: as many quotes as the template has,
            // nothing ap_expr would expand or unescape inside them.
            let quotes = if path.contains('?') { 8 } else { 6 };
            prop_assert_eq!(expr.matches('\'').count(), quotes);
            for (i, literal) in expr.split('\'').enumerate() {
                if i % 2 == 1 {
                    prop_assert!(
                        !literal.contains("%{")
                            && !literal.contains('$')
                            && !literal.contains('\\'),
                        "{literal:?}"
                    );
                }
            }
        }
        "access_log" | "error_log" => {
            let (name, want) = if option == "access_log" {
                ("CustomLog", &site.access_log)
            } else {
                ("ErrorLog", &site.error_log)
            };
            let args = directive(&it, name);
            prop_assert_eq!(args.len(), 1);
            prop_assert_eq!(&args[0][0], want);
            let asked = match value.strip_prefix("${APACHE_LOG_DIR}") {
                Some(rest) => format!("${{APACHE_LOG_DIR}}{}", normalised(rest)),
                None => normalised(value),
            };
            prop_assert_eq!(&asked, want);
        }
        "modules" => {
            prop_assert_eq!(&text, &baseline);
            prop_assert!(site.modules.iter().all(|m| m
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')));
        }
        "allowed_roots" => prop_assert_eq!(&text, &baseline),
        _ => {}
    }
    Ok(())
}

/// Ordinary words for an option plus the hostile ones, strung together after
/// one of `prefixes`.
fn value(
    prefixes: &'static [&'static str],
    words: &'static [&'static str],
) -> impl Strategy<Value = String> {
    let pool: Vec<&'static str> = words.iter().chain(HOSTILE).copied().collect();
    (
        prop::sample::select(prefixes),
        prop::collection::vec(prop::sample::select(pool), 0..7),
    )
        .prop_map(|(p, ws)| format!("{p}{}", ws.concat()))
}

const NAME: &[&str] = &["web", "a", ".", "-", "_", "1", ".conf", "x"];
const HOST: &[&str] = &["www", ".", "example", "-", "test", "*", "?", "a1"];
const PATH: &[&str] = &[
    "site", "/", ".", "..", "-", "_", "@", "+", "~", "a", "${X}", "$1",
];
const LOG: &[&str] = &["a.log", "/", ".", "..", "x", "-", "|", ":", "${X}"];

fn config_words() -> &'static [&'static str] {
    &[
        "Header set A b",
        "\n",
        "\n",
        "<Directory /srv/x>",
        "</Directory>",
        "<Location /a>",
        "</Location>",
        "</VirtualHost>",
        "<VirtualHost *:80>",
        "<",
        "/VirtualHost>",
        ">",
        "\\\n",
        "${X}",
        "Use M ",
        "<Macro M>",
        "</Macro>",
        "Include /etc/shadow",
        "  ",
        "\"</VirtualHost>\"",
    ]
}

macro_rules! option_property {
    ($test:ident, $option:expr, $prefixes:expr, $words:expr) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]
            #[test]
            fn $test(v in value($prefixes, $words)) {
                check($option, &v)?;
            }
        }
    };
}

option_property!(name, "name", &["", "web"], NAME);
option_property!(server_name, "server_name", &["", "www.example"], HOST);
option_property!(server_aliases, "server_aliases", &["", "*.example"], HOST);
option_property!(
    document_root,
    "document_root",
    &["", "/var/www/", "/srv/"],
    PATH
);
option_property!(allowed_roots, "allowed_roots", &["", "/", "/opt/"], PATH);
option_property!(
    listen_address,
    "listen_address",
    &["", "10.0.0.", "fd00::", "["],
    &["5", "1", "]", ":", "*", "%eth0", "/24"]
);
option_property!(
    trusted_proxies,
    "trusted_proxies",
    &["", "10.231.0.", "fd00::"],
    &["1", "0/24", "/", "64", " ", ":", "x"]
);
option_property!(
    health_check_method,
    "health_check.method",
    &["", "GET", "OPTIONS"],
    &["A", "get", "%{X}", "$1"]
);
option_property!(
    health_check_path,
    "health_check.path",
    &["", "/", "/health"],
    &[
        "?",
        "a",
        "=",
        "&",
        "%20",
        "%{REMOTE_ADDR}",
        "$1",
        "/",
        "%2",
        "x=%ff",
        "<",
        ">"
    ]
);
option_property!(
    access_log,
    "access_log",
    &[
        "",
        "${APACHE_LOG_DIR}/",
        "/var/log/apache2/",
        "${APACHE_LOG_DIR}"
    ],
    LOG
);
option_property!(
    error_log,
    "error_log",
    &["", "${APACHE_LOG_DIR}/", "/var/log/apache2/"],
    LOG
);
option_property!(
    modules,
    "modules",
    &["", "mod_", "proxy_"],
    &["headers", ".load", "http", "2", "_", "A", "/", ".."]
);
option_property!(
    extra_config,
    "extra_config",
    &["", "Header set X-Site web\n"],
    config_words()
);

/// Values that look odd but are fine pass, so the properties above are not
/// only ever looking at refusals.
#[test]
fn ordinary_values_with_special_characters_pass() {
    for (option, value) in [
        ("document_root", "/srv/a@b+c~d/./x/"),
        ("access_log", "${APACHE_LOG_DIR}/sites/web.log"),
        ("health_check.path", "/health?full=1&x=%20"),
        ("server_aliases", "*.example.test"),
        ("listen_address", "[fd00::5]"),
        (
            "extra_config",
            "RewriteRule ^/old$ /new [R=301,L]\n<If \"%{HTTPS} == 'on'\">\n  Header set A b\n</If>",
        ),
        ("name", "shop_2.example"),
    ] {
        check(option, value).unwrap_or_else(|e| panic!("{option}={value:?}: {e}"));
        assert!(
            site(&params_with(option, value)).is_ok(),
            "{option}={value:?} refused"
        );
    }
}
