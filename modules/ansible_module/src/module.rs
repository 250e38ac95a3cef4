//! What a module's body works with: validated parameters, the check/diff flags,
//! and the result it builds.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::args::InternalArgs;
use crate::spec::OptionSpec;
use crate::validate::numbers_for_bools;

/// One file's (or object's) before/after, as Ansible's diff callback shows it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Diff {
    pub before: String,
    pub after: String,
    pub before_header: String,
    pub after_header: String,
}

impl Diff {
    pub fn new(
        header: impl Into<String>,
        before: impl Into<String>,
        after: impl Into<String>,
    ) -> Diff {
        let header = header.into();
        Diff {
            before: before.into(),
            after: after.into(),
            before_header: header.clone(),
            after_header: header,
        }
    }
}

/// A failure with extra result fields (`rc`, `stderr`, ...). Return it from a
/// module body (it converts into `anyhow::Error`) to fail with those fields set.
#[derive(Debug, Clone)]
pub struct Fail {
    pub msg: String,
    pub extra: Map<String, Value>,
}

impl Fail {
    pub fn new(msg: impl Into<String>) -> Fail {
        Fail {
            msg: msg.into(),
            extra: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Serialize) -> Fail {
        self.extra.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
        self
    }
}

impl std::fmt::Display for Fail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for Fail {}

pub struct Module {
    pub name: String,
    pub params: Map<String, Value>,
    pub internal: InternalArgs,
    /// The argument spec's options, for the typed view `parse` gives.
    pub(crate) options: IndexMap<String, OptionSpec>,
    pub(crate) no_log_values: BTreeSet<String>,
    pub(crate) result: Map<String, Value>,
    pub(crate) changed: bool,
    pub(crate) warnings: Vec<String>,
    pub(crate) deprecations: Vec<Value>,
    pub(crate) diffs: Vec<Diff>,
    /// Option paths (`cloud_init.user_data`) shown as the no_log placeholder
    /// in `invocation`.
    pub(crate) redacted: Vec<Vec<String>>,
}

impl Module {
    pub(crate) fn new(
        name: String,
        params: Map<String, Value>,
        internal: InternalArgs,
        options: IndexMap<String, OptionSpec>,
        no_log_values: BTreeSet<String>,
    ) -> Module {
        Module {
            name,
            params,
            internal,
            options,
            no_log_values,
            result: Map::new(),
            changed: false,
            warnings: vec![],
            deprecations: vec![],
            diffs: vec![],
            redacted: vec![],
        }
    }

    pub fn check_mode(&self) -> bool {
        self.internal.check_mode
    }

    pub fn diff_mode(&self) -> bool {
        self.internal.diff
    }

    /// The validated parameters as a typed struct (field names = option names).
    /// A boolean given for an `int` option reads as 1 or 0 (for a `float`
    /// option 1.0 or 0.0), at every depth: Ansible passes it through as
    /// Python's `True`, which is an int.
    pub fn parse<T: DeserializeOwned>(&self) -> anyhow::Result<T> {
        let mut params = self.params.clone();
        numbers_for_bools(&self.options, &mut params);
        serde_json::from_value(Value::Object(params)).map_err(|e| {
            anyhow::anyhow!("internal error: parameters do not match the module's types: {e}")
        })
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.params.get(name).filter(|v| !v.is_null())
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    pub fn bool(&self, name: &str) -> bool {
        self.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    /// An int option's value; a boolean given for it reads as 1 or 0.
    pub fn int(&self, name: &str) -> Option<i64> {
        self.get(name)
            .and_then(|v| v.as_i64().or_else(|| v.as_bool().map(i64::from)))
    }

    pub fn set_changed(&mut self, changed: bool) {
        self.changed |= changed;
    }

    pub fn changed(&self) -> bool {
        self.changed
    }

    /// Adds a field to the result.
    pub fn set(&mut self, key: &str, value: impl Serialize) {
        self.result.insert(
            key.into(),
            serde_json::to_value(value).unwrap_or(Value::Null),
        );
    }

    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    pub fn deprecate(&mut self, msg: impl Into<String>, version: &str) {
        self.deprecations
            .push(serde_json::json!({"msg": msg.into(), "version": version}));
    }

    /// Records a diff; it is returned only when Ansible asked for diffs.
    pub fn add_diff(&mut self, diff: Diff) {
        self.diffs.push(diff);
    }

    /// Shows the option at `path` (dotted: `cloud_init.user_data`, or
    /// `config.environment.TOKEN`) as the no_log placeholder in the result's
    /// `invocation`, for a value that is a secret only by what it holds.
    pub fn redact(&mut self, path: &str) {
        self.redacted
            .push(path.split('.').map(str::to_string).collect());
    }

    /// A value the module made (a generated password, say) that must be masked in
    /// its output like a `no_log` option.
    pub fn hide(&mut self, secret: impl Into<String>) {
        let s = secret.into();
        if !s.is_empty() {
            self.no_log_values.insert(s);
        }
    }
}
