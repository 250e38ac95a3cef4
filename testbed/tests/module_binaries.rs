//! The built module binaries (from `make build`) at the edge: bad input gives a
//! failed JSON result with ansible-core's exact message and a non-zero exit; the
//! binaries are static, and the ones that only do JSON work stay under 1 MiB.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Map, Value};

use testbed::MODULES;
/// Modules that run on the targets and carry no HTTP/TLS stack.
const TARGET_SIDE: [&str; 5] = [
    "haproxy_backend",
    "keepalived_vrrp",
    "apache_site",
    "dns_zone",
    "resolver",
];

fn run(bin: &Path, args: Option<&Value>) -> (i32, Value) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin);
    if let Some(args) = args {
        let file = dir.path().join("args");
        std::fs::write(&file, args.to_string()).expect("write args");
        cmd.arg(file);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run module");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{} printed something that is not one JSON object ({e}): {stdout}",
            bin.display()
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

fn reference(spec: &Value, cases: &[Value]) -> Vec<Value> {
    let python = testbed::venv_bin("python");
    let input: Vec<Value> = cases
        .iter()
        .map(|a| json!({"name": "m", "spec": spec, "args": a}))
        .collect();
    let mut child = Command::new(python)
        .arg(
            testbed::project_root()
                .join("modules/ansible_module/tests/reference/ansible_reference.py"),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run the ansible-core reference");
    std::io::Write::write_all(
        &mut child.stdin.take().expect("stdin"),
        serde_json::to_string(&input).expect("json").as_bytes(),
    )
    .expect("write");
    let out = child.wait_with_output().expect("reference");
    serde_json::from_slice(&out.stdout).expect("reference JSON")
}

/// Inputs that must fail: nothing, an unknown option, a bad choice, a bad int.
fn bad_inputs(spec: &Value) -> Vec<Value> {
    let opts = spec["argument_spec"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let required: Map<String, Value> = opts
        .iter()
        .filter(|(_, o)| o["required"] == json!(true))
        .map(|(k, o)| {
            (
                k.clone(),
                o["choices"].get(0).cloned().unwrap_or(json!("x")),
            )
        })
        .collect();
    let with = |k: &str, v: Value| {
        let mut m = required.clone();
        m.insert(k.into(), v);
        Value::Object(m)
    };
    let mut cases = vec![json!({}), with("bakend", json!("x"))];
    if let Some((name, _)) = opts.iter().find(|(_, o)| o["choices"].is_array()) {
        cases.push(with(name, json!("no-such-choice")));
    }
    if let Some((name, _)) = opts.iter().find(|(_, o)| o["type"] == "int") {
        cases.push(with(name, json!("not-a-number")));
    }
    cases
}

#[test]
fn bad_input_fails_with_ansible_core_messages() {
    for module in MODULES {
        let bin = testbed::module_binary(module);
        let (code, out) = run(&bin, None);
        assert_eq!(
            (code, &out["failed"]),
            (1, &json!(true)),
            "{module} without an args file: {out}"
        );

        let help = Command::new(&bin).arg("--help").output().expect("--help");
        let help_text = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.status.success()
                && help_text.contains(&format!("ansible-doc -M dist/library {module}"))
                && help_text.contains("  name (str, required"),
            "{module} --help: {help_text}"
        );

        let spec_text = Command::new(&bin)
            .arg("--argument-spec")
            .output()
            .expect("spec");
        let spec: Value =
            serde_json::from_slice(&spec_text.stdout).expect("--argument-spec prints JSON");
        let cases = bad_inputs(&spec);
        let theirs = reference(&spec, &cases);
        for (args, theirs) in cases.iter().zip(theirs) {
            let mut with_name = args.clone();
            with_name["_ansible_module_name"] = json!("m");
            let (code, ours) = run(&bin, Some(&with_name));
            if theirs["failed"] == json!(true) {
                assert_eq!(code, 1, "{module} {args}: exit code");
                assert_eq!(ours["failed"], json!(true), "{module} {args}: {ours}");
                assert_eq!(
                    ours["msg"], theirs["msg"],
                    "{module} {args}: message differs from ansible-core"
                );
            }
        }
    }
}

/// True when the ELF file has no program interpreter (statically linked).
fn is_static(path: &Path) -> bool {
    let bytes = std::fs::read(path).expect("read binary");
    assert_eq!(&bytes[..4], b"\x7fELF", "{} is not ELF", path.display());
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().expect("8 bytes")) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    (0..phnum).all(|i| {
        let o = phoff + i * phentsize;
        u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4 bytes")) != 3 // PT_INTERP
    })
}

#[test]
fn binaries_are_static_and_small() {
    for module in MODULES {
        assert!(
            is_static(&testbed::module_binary(module)),
            "{module} is dynamically linked"
        );
    }
    for module in TARGET_SIDE {
        let size = std::fs::metadata(testbed::module_binary(module))
            .expect("stat")
            .len();
        assert!(size < 1024 * 1024, "{module} is {size} bytes, over 1 MiB");
    }
}
