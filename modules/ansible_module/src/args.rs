//! Reading the arguments file and splitting off Ansible's internal `_ansible_*` keys.

use std::path::Path;

use serde_json::{Map, Value};

/// The internal keys a module acts on. Any other `_ansible_*` key is accepted and
/// ignored: new ansible-core versions add them.
#[derive(Debug, Clone, Default)]
pub struct InternalArgs {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    pub verbosity: u64,
    pub module_name: Option<String>,
    pub tmpdir: Option<String>,
    pub remote_tmp: Option<String>,
    pub version: Option<String>,
    pub ignore_unknown_opts: bool,
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => {
            ["1", "true", "yes", "on", "y", "t"].contains(&s.trim().to_lowercase().as_str())
        }
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        _ => false,
    }
}

/// Removes every `_ansible_*` key from `params`, keeping the ones we use.
pub fn split_internal(params: &mut Map<String, Value>) -> InternalArgs {
    let mut internal = InternalArgs::default();
    let keys: Vec<String> = params
        .keys()
        .filter(|k| k.starts_with("_ansible_"))
        .cloned()
        .collect();
    for key in keys {
        let Some(v) = params.remove(&key) else {
            continue;
        };
        let text = v.as_str().map(str::to_string);
        match &key["_ansible_".len()..] {
            "check_mode" => internal.check_mode = truthy(&v),
            "diff" => internal.diff = truthy(&v),
            "no_log" => internal.no_log = truthy(&v),
            "verbosity" => internal.verbosity = v.as_u64().unwrap_or(0),
            "module_name" => internal.module_name = text,
            "tmpdir" => internal.tmpdir = text,
            "remote_tmp" => internal.remote_tmp = text,
            "version" => internal.version = text,
            "ignore_unknown_opts" => internal.ignore_unknown_opts = truthy(&v),
            _ => {}
        }
    }
    internal
}

/// Reads the args file Ansible wrote. Accepts the flat object Ansible writes for
/// binary modules and the `{"ANSIBLE_MODULE_ARGS": {...}}` form people use by hand.
pub fn read_args_file(path: &Path) -> Result<Map<String, Value>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("Failed to read the arguments file {}: {e}", path.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        format!(
            "Failed to parse the arguments file {} as JSON: {e}",
            path.display()
        )
    })?;
    match value {
        Value::Object(mut map) => match map.remove("ANSIBLE_MODULE_ARGS") {
            Some(Value::Object(inner)) if map.is_empty() => Ok(inner),
            Some(other) => {
                map.insert("ANSIBLE_MODULE_ARGS".into(), other);
                Ok(map)
            }
            None => Ok(map),
        },
        other => Err(format!(
            "The arguments file {} must hold a JSON object, not {}",
            path.display(),
            crate::pyfmt::py_type_name(&other)
        )),
    }
}
