//! Our argument validation against ansible-core's own `AnsibleModule`, case for
//! case: the same spec and input must give the same failure message and the same
//! (masked) `invocation.module_args`. Runs the reference with the project's venv.

use std::io::Write;
use std::process::{Command, Stdio};

use ansible_module::{execute, ModuleSpec};
use serde_json::{json, Value};

fn cases() -> Vec<(&'static str, Value, Value)> {
    let basic = json!({
        "argument_spec": {
            "name": {"type": "str", "required": true, "aliases": ["backend"]},
            "state": {"type": "str", "choices": ["present", "absent", "drain"], "default": "present"},
            "port": {"type": "int"},
            "weight": {"type": "int", "default": 1},
            "ratio": {"type": "float"},
            "wait": {"type": "bool", "default": false},
            "tags": {"type": "list", "elements": "str"},
            "ports": {"type": "list", "elements": "int"},
            "labels": {"type": "dict"},
            "path": {"type": "path"},
            "blob": {"type": "raw"},
            "password": {"type": "str", "no_log": true},
            "modes": {"type": "list", "elements": "str", "choices": ["a", "b"]}
        },
        "supports_check_mode": true
    });
    let rules = json!({
        "argument_spec": {
            "state": {"choices": ["present", "absent"], "default": "present"},
            "address": {}, "port": {"type": "int"}, "socket": {}, "url": {},
            "cert": {}, "key": {}, "token": {"no_log": true}, "project": {}
        },
        "mutually_exclusive": [["socket", "url"]],
        "required_together": [["cert", "key"]],
        "required_if": [["state", "present", ["address", "port"]], ["state", "absent", ["address", "url"], true]],
        "required_by": {"token": ["project"]},
        "supports_check_mode": false
    });
    let one_of = json!({
        "argument_spec": {"a": {}, "b": {}},
        "required_one_of": [["a", "b"]]
    });
    let nested = json!({
        "argument_spec": {
            "servers": {"type": "list", "elements": "dict", "options": {
                "name": {"required": true},
                "port": {"type": "int", "default": 80},
                "state": {"choices": ["enabled", "disabled"]},
                "secret": {"no_log": true}
            }},
            "health_check": {"type": "dict", "options": {
                "method": {"choices": ["GET", "HEAD", "OPTIONS"], "default": "OPTIONS"},
                "expect_status": {"type": "int"}
            }}
        }
    });
    vec![
        ("empty input", basic.clone(), json!({})),
        (
            "valid with coercions",
            basic.clone(),
            json!({"name": "web", "port": "8080", "wait": "YES", "tags": "a,b", "ratio": "1.5", "ports": ["1", 2]}),
        ),
        ("alias", basic.clone(), json!({"backend": "web"})),
        (
            "unknown option",
            basic.clone(),
            json!({"name": "web", "bakend": "x"}),
        ),
        ("unknown and missing", basic.clone(), json!({"bakend": "x"})),
        (
            "two unknown",
            basic.clone(),
            json!({"name": "w", "zeta": 1, "alpha": 2}),
        ),
        (
            "bad choice",
            basic.clone(),
            json!({"name": "w", "state": "gone"}),
        ),
        (
            "null choice",
            basic.clone(),
            json!({"name": "w", "state": null}),
        ),
        (
            "list choices",
            basic.clone(),
            json!({"name": "w", "modes": ["a", "c", "d"]}),
        ),
        (
            "int from text",
            basic.clone(),
            json!({"name": "w", "port": "abc"}),
        ),
        (
            "int from fraction",
            basic.clone(),
            json!({"name": "w", "port": 4.5}),
        ),
        (
            "int from whole float text",
            basic.clone(),
            json!({"name": "w", "port": "4.0"}),
        ),
        (
            "int from list",
            basic.clone(),
            json!({"name": "w", "port": [1]}),
        ),
        (
            "int from bool",
            basic.clone(),
            json!({"name": "w", "port": true}),
        ),
        (
            "float from text",
            basic.clone(),
            json!({"name": "w", "ratio": "x"}),
        ),
        (
            "float from int",
            basic.clone(),
            json!({"name": "w", "ratio": 2}),
        ),
        (
            "bool words",
            basic.clone(),
            json!({"name": "w", "wait": "off"}),
        ),
        (
            "bool number",
            basic.clone(),
            json!({"name": "w", "wait": 1}),
        ),
        (
            "bool invalid",
            basic.clone(),
            json!({"name": "w", "wait": "maybe"}),
        ),
        (
            "bool from list",
            basic.clone(),
            json!({"name": "w", "wait": [true]}),
        ),
        (
            "list from int",
            basic.clone(),
            json!({"name": "w", "tags": 5}),
        ),
        (
            "list from dict",
            basic.clone(),
            json!({"name": "w", "tags": {"a": 1}}),
        ),
        (
            "bad element",
            basic.clone(),
            json!({"name": "w", "ports": ["1", "x"]}),
        ),
        (
            "dict from key=value",
            basic.clone(),
            json!({"name": "w", "labels": "a=1 b='two words'"}),
        ),
        (
            "dict from json text",
            basic.clone(),
            json!({"name": "w", "labels": "{\"a\": 1}"}),
        ),
        (
            "dict from junk",
            basic.clone(),
            json!({"name": "w", "labels": "junk"}),
        ),
        (
            "dict from int",
            basic.clone(),
            json!({"name": "w", "labels": 3}),
        ),
        ("str from number", basic.clone(), json!({"name": 123})),
        ("str from bool", basic.clone(), json!({"name": true})),
        ("required null", basic.clone(), json!({"name": null})),
        (
            "raw keeps type",
            basic.clone(),
            json!({"name": "w", "blob": [1, {"a": null}]}),
        ),
        (
            "no_log masked",
            basic.clone(),
            json!({"name": "w", "password": "hunter2", "tags": ["x-hunter2-y"]}),
        ),
        (
            "check mode supported",
            basic.clone(),
            json!({"name": "w", "_ansible_check_mode": true}),
        ),
        (
            "check mode unsupported",
            rules.clone(),
            json!({"address": "a", "port": 1, "_ansible_check_mode": true}),
        ),
        (
            "mutually exclusive",
            rules.clone(),
            json!({"socket": "s", "url": "u", "address": "a", "port": 1}),
        ),
        (
            "required together",
            rules.clone(),
            json!({"cert": "c", "address": "a", "port": 1}),
        ),
        ("required if all", rules.clone(), json!({"address": "a"})),
        (
            "required if any ok",
            rules.clone(),
            json!({"state": "absent", "url": "u"}),
        ),
        (
            "required if any missing",
            rules.clone(),
            json!({"state": "absent"}),
        ),
        (
            "required by",
            rules.clone(),
            json!({"address": "a", "port": 1, "token": "t0k"}),
        ),
        ("required one of", one_of.clone(), json!({})),
        ("required one of ok", one_of.clone(), json!({"b": "x"})),
        (
            "nested ok with defaults",
            nested.clone(),
            json!({"servers": [{"name": "a"}, {"name": "b", "port": "81"}], "health_check": {}}),
        ),
        (
            "nested missing",
            nested.clone(),
            json!({"servers": [{"port": 1}]}),
        ),
        (
            "nested unknown",
            nested.clone(),
            json!({"servers": [{"name": "a", "prot": 1}]}),
        ),
        (
            "nested bad type",
            nested.clone(),
            json!({"servers": [{"name": "a", "port": "x"}]}),
        ),
        (
            "nested bad choice",
            nested.clone(),
            json!({"health_check": {"method": "PUT"}}),
        ),
        (
            "nested not dicts",
            nested.clone(),
            json!({"servers": [1, 2]}),
        ),
        (
            "nested key=value element",
            nested.clone(),
            json!({"servers": ["name=a port=82"]}),
        ),
        (
            "nested no_log",
            nested.clone(),
            json!({"servers": [{"name": "a", "secret": "s3cr3t"}]}),
        ),
        (
            "unknown internal key",
            basic.clone(),
            json!({"name": "w", "_ansible_remote_tmp": "/tmp", "_ansible_verbosity": 3}),
        ),
    ]
}

/// Python lists the valid booleans in set order, which changes per process.
fn normalize(msg: &str) -> String {
    match msg.split_once("Valid booleans include: ") {
        Some((head, list)) => {
            let mut items: Vec<&str> = list.split(", ").collect();
            items.sort();
            format!("{head}Valid booleans include: {}", items.join(", "))
        }
        None => msg.to_string(),
    }
}

fn reference(cases: &[(&str, Value, Value)]) -> Vec<Value> {
    let python =
        std::env::var("VRRP_VENV").unwrap_or_else(|_| "/opt/vrrp-lxd/venv".into()) + "/bin/python";
    let input: Vec<Value> = cases
        .iter()
        .map(|(_, spec, args)| json!({"name": "test_module", "spec": spec, "args": args}))
        .collect();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/ansible_reference.py"
    );
    let mut child = Command::new(&python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python} (make the venv with `make setup`): {e}"));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input_json(&input).as_bytes())
        .expect("write cases");
    let out = child.wait_with_output().expect("reference run");
    assert!(
        out.status.success(),
        "reference failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

fn input_json(v: &[Value]) -> String {
    serde_json::to_string(v).expect("serialize")
}

#[test]
fn validation_matches_ansible_core() {
    let cases = cases();
    let theirs = reference(&cases);
    let mut mismatches = vec![];
    for ((name, spec, args), theirs) in cases.iter().zip(theirs) {
        let spec = ModuleSpec::try_from_json(&spec.to_string()).expect("spec");
        let (ours, failed) = execute(
            "test_module",
            &spec,
            args.as_object().cloned().unwrap_or_default(),
            |_| Ok(()),
        );
        let our_msg = ours.get("msg").and_then(Value::as_str).map(normalize);
        let their_msg = theirs["msg"].as_str().map(normalize);
        if std::env::var_os("SHOW_CASES").is_some() {
            eprintln!("{name}: failed={failed} {our_msg:?}\n   ansible: {their_msg:?}");
        }
        if failed != theirs["failed"].as_bool().unwrap_or(false) || our_msg != their_msg {
            mismatches.push(format!("{name}:\n  ours:    failed={failed} {our_msg:?}\n  ansible: failed={} {their_msg:?}", theirs["failed"]));
            continue;
        }
        if ours
            .get("skipped")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            != theirs["skipped"].as_bool().unwrap_or(false)
        {
            mismatches.push(format!("{name}: skipped differs"));
            continue;
        }
        let our_args = &ours["invocation"]["module_args"];
        if !failed
            && !theirs["skipped"].as_bool().unwrap_or(false)
            && our_args != &theirs["module_args"]
        {
            mismatches.push(format!(
                "{name}: module_args\n  ours:    {our_args}\n  ansible: {}",
                theirs["module_args"]
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} of {} cases differ from ansible-core:\n{}",
        mismatches.len(),
        cases.len(),
        mismatches.join("\n")
    );
}
