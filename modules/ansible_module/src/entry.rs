//! The edge of every module binary: read args, validate, run the body, print one
//! JSON object, exit 0 or 1. Nothing below this point prints to stdout.

use std::path::Path;

use serde_json::{Map, Value};

use crate::args::{read_args_file, split_internal};
use crate::mask::remove_values;
use crate::module::{Fail, Module};
use crate::spec::ModuleSpec;
use crate::validate::validate;

fn emit(result: Map<String, Value>, failed: bool) -> ! {
    // One line of JSON, as Ansible reads it; a write error has nowhere to go.
    println!("{}", Value::Object(result));
    std::process::exit(i32::from(failed));
}

pub(crate) fn fail_internal(msg: &str) -> ! {
    let mut result = Map::new();
    result.insert("failed".into(), Value::Bool(true));
    result.insert("msg".into(), Value::String(msg.into()));
    emit(result, true)
}

fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        fail_internal(&format!(
            "internal error: the module crashed{place}: {what}"
        ))
    }));
}

/// Runs a module: `argv[1]` is the arguments file.
pub fn run<F>(name: &str, spec: ModuleSpec, body: F) -> !
where
    F: FnOnce(&mut Module) -> anyhow::Result<()>,
{
    install_panic_hook();
    let mut argv = std::env::args_os().skip(1);
    let (first, second) = (argv.next(), argv.next());
    if first.as_deref() == Some(std::ffi::OsStr::new("--argument-spec")) {
        // For tooling (docs checks, the differential test): the spec as written.
        println!("{}", spec.source.trim());
        std::process::exit(0);
    }
    if matches!(
        first.as_deref().and_then(|f| f.to_str()),
        Some("--help" | "-h")
    ) {
        print!("{}", spec.usage(name));
        std::process::exit(0);
    }
    let (Some(path), None) = (first, second) else {
        fail_internal(&format!(
            "{name} is an Ansible module: run it from Ansible, or by hand as `{name} ARGS.json` with the options in a JSON object"
        ));
    };
    match read_args_file(Path::new(&path)) {
        Ok(args) => run_with_args(name, spec, args, body),
        Err(msg) => fail_internal(&msg),
    }
}

/// Runs a module on arguments already read (the same path `run` takes after
/// reading the file; tests use it directly).
pub fn run_with_args<F>(name: &str, spec: ModuleSpec, args: Map<String, Value>, body: F) -> !
where
    F: FnOnce(&mut Module) -> anyhow::Result<()>,
{
    let (result, failed) = execute(name, &spec, args, body);
    emit(result, failed)
}

/// Validates `args` and runs `body` in this process, returning the result object
/// and whether it failed (what `run` prints and its exit status).
pub fn execute<F>(
    name: &str,
    spec: &ModuleSpec,
    mut args: Map<String, Value>,
    body: F,
) -> (Map<String, Value>, bool)
where
    F: FnOnce(&mut Module) -> anyhow::Result<()>,
{
    let internal = split_internal(&mut args);
    let name = internal
        .module_name
        .clone()
        .unwrap_or_else(|| name.to_string());
    let mut validated = validate(spec, args);
    if internal.ignore_unknown_opts {
        validated.errors.retain(|e| !e.unsupported);
    }
    let failure = validated.failure(&name);
    let mut module = Module::new(
        name.clone(),
        validated.params,
        internal,
        spec.argument_spec.clone(),
        validated.no_log_values,
    );
    module.warnings.extend(validated.warnings);

    let outcome: Result<(), (String, Map<String, Value>)> = if let Some(msg) = failure {
        Err((msg, Map::new()))
    } else if module.check_mode() && !spec.supports_check_mode {
        module.set("skipped", true);
        module.set(
            "msg",
            format!("remote module ({name}) does not support check mode"),
        );
        Ok(())
    } else {
        body(&mut module).map_err(|e| match e.downcast::<Fail>() {
            Ok(fail) => (fail.msg, fail.extra),
            Err(e) => (format!("{e:#}"), Map::new()),
        })
    };
    finish(module, outcome)
}

fn finish(
    module: Module,
    outcome: Result<(), (String, Map<String, Value>)>,
) -> (Map<String, Value>, bool) {
    let mut result = Map::new();
    result.insert("changed".into(), Value::Bool(module.changed));
    for (k, v) in module.result {
        result.insert(k, v);
    }
    let failed = outcome.is_err();
    if let Err((msg, extra)) = outcome {
        result.insert("failed".into(), Value::Bool(true));
        result.insert("msg".into(), Value::String(msg));
        result.extend(extra);
    }
    if module.internal.diff && !module.diffs.is_empty() {
        let diffs: Vec<Value> = module
            .diffs
            .iter()
            .filter_map(|d| serde_json::to_value(d).ok())
            .collect();
        let diff = if diffs.len() == 1 {
            diffs.into_iter().next().unwrap_or_default()
        } else {
            Value::Array(diffs)
        };
        result.insert("diff".into(), diff);
    }
    if !module.warnings.is_empty() {
        result.insert(
            "warnings".into(),
            module
                .warnings
                .iter()
                .map(|w| Value::String(w.clone()))
                .collect(),
        );
    }
    if !module.deprecations.is_empty() {
        result.insert("deprecations".into(), Value::Array(module.deprecations));
    }
    let mut args = Value::Object(module.params);
    for path in &module.redacted {
        redact(&mut args, path);
    }
    let mut invocation = Map::new();
    invocation.insert("module_args".into(), args);
    result.insert("invocation".into(), Value::Object(invocation));

    // Keep top-level booleans and nulls (changed, failed) as they are, like Ansible.
    let preserved: Vec<(String, Value)> = result
        .iter()
        .filter(|(_, v)| v.is_boolean() || v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let Value::Object(mut masked) = remove_values(&Value::Object(result), &module.no_log_values)
    else {
        unreachable!("masking keeps the shape")
    };
    masked.extend(preserved);
    (masked, failed)
}

/// Replaces the value at `path` (object keys; a key may itself hold dots,
/// as LXD config keys do, so the longest matching key wins) with the
/// placeholder.
fn redact(value: &mut Value, path: &[String]) {
    let Some(map) = value.as_object_mut() else {
        return;
    };
    for take in (1..=path.len()).rev() {
        let key = path[..take].join(".");
        if let Some(v) = map.get_mut(&key) {
            if take == path.len() {
                if !v.is_null() {
                    *v = Value::String(crate::NO_LOG_PLACEHOLDER.into());
                }
            } else {
                redact(v, &path[take..]);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> ModuleSpec {
        ModuleSpec::try_from_json(
            r#"{"argument_spec": {"name": {"required": true}, "password": {"no_log": true}}, "supports_check_mode": true}"#,
        )
        .expect("spec")
    }

    #[test]
    fn no_log_values_are_masked_everywhere() {
        let args = json!({"name": "n", "password": "hunter2", "_ansible_check_mode": false});
        let (out, failed) = execute(
            "m",
            &spec(),
            args.as_object().cloned().unwrap_or_default(),
            |m| {
                m.set("echo", "the password is hunter2");
                m.set_changed(true);
                Ok(())
            },
        );
        assert!(!failed);
        assert_eq!(
            out["invocation"]["module_args"]["password"],
            json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
        );
        assert_eq!(out["echo"], json!("the password is ********"));
        assert_eq!(out["changed"], json!(true));
    }

    #[test]
    fn redacted_options_are_placeholders_in_the_invocation() {
        let spec = ModuleSpec::try_from_json(
            r#"{"argument_spec": {"config": {"type": "dict"}, "ci": {"type": "dict"}}}"#,
        )
        .expect("spec");
        let args = json!({"config": {"environment.TOKEN": "t0k", "limits.cpu": "1"},
                          "ci": {"user_data": {"password": "x"}}});
        let (out, _) = execute(
            "m",
            &spec,
            args.as_object().cloned().unwrap_or_default(),
            |m| {
                m.redact("config.environment.TOKEN");
                m.redact("ci.user_data");
                m.redact("ci.missing");
                Ok(())
            },
        );
        let a = &out["invocation"]["module_args"];
        assert_eq!(
            a["config"]["environment.TOKEN"],
            json!(crate::NO_LOG_PLACEHOLDER)
        );
        assert_eq!(a["config"]["limits.cpu"], json!("1"));
        assert_eq!(a["ci"]["user_data"], json!(crate::NO_LOG_PLACEHOLDER));
    }

    #[test]
    fn body_failure_carries_extra_fields() {
        let args = json!({"name": "n"});
        let (out, failed) = execute(
            "m",
            &spec(),
            args.as_object().cloned().unwrap_or_default(),
            |_| Err(Fail::new("boom").with("rc", 3).into()),
        );
        assert!(failed);
        assert_eq!(out["msg"], json!("boom"));
        assert_eq!(out["rc"], json!(3));
    }

    #[test]
    fn a_bool_for_an_int_option_parses_as_a_number() {
        #[derive(serde::Deserialize)]
        struct Params {
            port: i64,
            servers: Vec<Server>,
        }
        #[derive(serde::Deserialize)]
        struct Server {
            weight: i64,
        }
        let spec = ModuleSpec::try_from_json(
            r#"{"argument_spec": {"port": {"type": "int"},
                "servers": {"type": "list", "elements": "dict",
                            "options": {"weight": {"type": "int"}}}}}"#,
        )
        .expect("spec");
        let args = json!({"port": true, "servers": [{"weight": false}]});
        let (out, failed) = execute(
            "m",
            &spec,
            args.as_object().cloned().unwrap_or_default(),
            |m| {
                let p: Params = m.parse()?;
                m.set("port", p.port);
                m.set("weight", p.servers[0].weight);
                m.set("int", m.int("port"));
                Ok(())
            },
        );
        assert!(!failed, "{out:?}");
        assert_eq!((&out["port"], &out["weight"]), (&json!(1), &json!(0)));
        assert_eq!(out["int"], json!(1));
        // What the task was given is shown as given, as Ansible shows it.
        assert_eq!(out["invocation"]["module_args"]["port"], json!(true));
    }

    #[test]
    fn check_mode_without_support_is_skipped() {
        let spec = ModuleSpec::try_from_json(r#"{"argument_spec": {}}"#).expect("spec");
        let args = json!({"_ansible_check_mode": true});
        let (out, failed) = execute(
            "m",
            &spec,
            args.as_object().cloned().unwrap_or_default(),
            |_| unreachable!(),
        );
        assert!(!failed);
        assert_eq!(out["skipped"], json!(true));
        assert_eq!(
            out["msg"],
            json!("remote module (m) does not support check mode")
        );
    }
}
