//! Shared by the integration tests: playbooks written as JSON (YAML's
//! subset), instance clean-up, and `lxc` look-ups.

#![allow(dead_code)]

use serde_json::{json, Value};
use testbed::ansible::{Run, Runner};
use testbed::container::lxc;

/// Deletes the instance when dropped (unless `KEEP=1`), whatever the test did.
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !testbed::keep() {
            let _ = lxc(&["delete", "-f", &self.0]);
        }
    }
}

/// A unique instance name for this test, removed at the end.
pub fn instance(prefix: &str) -> (String, Cleanup) {
    let name = testbed::unique_name(prefix);
    (name.clone(), Cleanup(name))
}

/// One `lxd_instance` task; `extra` holds task keywords (`check_mode`, `diff`,
/// `ignore_errors`).
pub fn task(name: &str, args: Value, extra: Value) -> Value {
    let mut t = json!({"name": name, "ansible.legacy.lxd_instance": args});
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        t[k] = v;
    }
    t
}

/// Runs the tasks in one play on localhost (connection local).
pub fn play(tasks: Vec<Value>) -> Run {
    // The built binary must be there: fail (not skip) without it.
    testbed::module_binary("lxd_instance");
    let playbook = json!([{
        "name": "lxd_instance",
        "hosts": "localhost",
        "gather_facts": false,
        "tasks": tasks,
    }]);
    Runner::localhost().run(&playbook.to_string())
}

pub fn result(run: &Run, task: &str) -> Value {
    run.task(task, "localhost")
}

/// `lxc query` of an instance, or `None` when it does not exist.
pub fn lxd_instance(name: &str) -> Option<Value> {
    let out = lxc(&["query", &format!("/1.0/instances/{name}")]);
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

pub fn status(name: &str) -> Option<String> {
    lxd_instance(name).and_then(|i| i["status"].as_str().map(str::to_string))
}

pub fn base_args(name: &str) -> Value {
    json!({
        "name": name,
        "source": testbed::image(),
        "profiles": [testbed::profile()],
    })
}

pub fn with(mut base: Value, extra: Value) -> Value {
    for (k, v) in extra.as_object().cloned().unwrap_or_default() {
        base[k] = v;
    }
    base
}

pub fn assert_failed_with(r: &Value, needles: &[&str]) {
    assert_eq!(r["failed"], json!(true), "expected a failure: {r}");
    let msg = r["msg"].as_str().unwrap_or_default();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should mention {n:?}");
    }
}

/// The IPv4 column of `lxc list` for one instance: `[(address, interface)]`.
pub fn lxc_list_ipv4(name: &str) -> Vec<(String, String)> {
    let out = lxc(&["list", &format!("^{name}$"), "-c", "4", "--format", "csv"]);
    assert!(
        out.status.success(),
        "lxc list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .split(['\n', '"'])
        .filter_map(|l| {
            let (addr, rest) = l.trim().split_once(" (")?;
            Some((addr.to_string(), rest.trim_end_matches(')').to_string()))
        })
        .collect()
}
