//! Argument specs, in the same shape as a Python module's `argument_spec`, so a
//! reader who knows `AnsibleModule` reads ours as written.

use indexmap::IndexMap;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// An option's `type` (and a list's `elements`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    List,
    Dict,
    Path,
    Raw,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::List => "list",
            Kind::Dict => "dict",
            Kind::Path => "path",
            Kind::Raw => "raw",
        }
    }
}

/// One `required_if` rule: when `key == value`, `requirements` must be given
/// (all of them, or any one when `any` is set).
#[derive(Debug, Clone, PartialEq)]
pub struct RequiredIf {
    pub key: String,
    pub value: Value,
    pub requirements: Vec<String>,
    pub any: bool,
}

impl<'de> Deserialize<'de> for RequiredIf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items: Vec<Value> = Vec::deserialize(d)?;
        if !(3..=4).contains(&items.len()) {
            return Err(D::Error::custom(
                "required_if entries are [key, value, [requirements], any?]",
            ));
        }
        let key = items[0]
            .as_str()
            .ok_or_else(|| D::Error::custom("required_if key must be a string"))?;
        let requirements = serde_json::from_value(items[2].clone()).map_err(D::Error::custom)?;
        let any = items.get(3).and_then(Value::as_bool).unwrap_or(false);
        Ok(RequiredIf {
            key: key.to_string(),
            value: items[1].clone(),
            requirements,
            any,
        })
    }
}

/// Rules that relate options to each other; shared by a module and by a dict
/// option with sub-`options`.
#[derive(Debug, Clone, Default)]
pub struct Relations {
    pub mutually_exclusive: Vec<Vec<String>>,
    pub required_together: Vec<Vec<String>>,
    pub required_one_of: Vec<Vec<String>>,
    pub required_if: Vec<RequiredIf>,
    pub required_by: IndexMap<String, OneOrMany>,
}

/// `required_by` takes a name or a list of names.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn names(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// One option of an argument spec.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionSpec {
    #[serde(rename = "type")]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub required: bool,
    pub default: Option<Value>,
    pub choices: Option<Vec<Value>>,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub no_log: bool,
    pub elements: Option<Kind>,
    pub options: Option<IndexMap<String, OptionSpec>>,
    #[serde(default)]
    pub apply_defaults: bool,
    #[serde(default)]
    pub mutually_exclusive: Vec<Vec<String>>,
    #[serde(default)]
    pub required_together: Vec<Vec<String>>,
    #[serde(default)]
    pub required_one_of: Vec<Vec<String>>,
    #[serde(default)]
    pub required_if: Vec<RequiredIf>,
    #[serde(default)]
    pub required_by: IndexMap<String, OneOrMany>,
    /// Documentation only; accepted so a spec can carry it.
    pub description: Option<Value>,
}

macro_rules! relations_of {
    ($s:expr) => {
        Relations {
            mutually_exclusive: $s.mutually_exclusive.clone(),
            required_together: $s.required_together.clone(),
            required_one_of: $s.required_one_of.clone(),
            required_if: $s.required_if.clone(),
            required_by: $s.required_by.clone(),
        }
    };
}

impl OptionSpec {
    pub fn relations(&self) -> Relations {
        relations_of!(self)
    }

    pub fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Str)
    }

    /// Whether this option holds sub-options (a dict, or a list of dicts).
    pub fn has_sub_spec(&self) -> bool {
        self.options.is_some()
            && (self.kind == Some(Kind::Dict)
                || (self.kind == Some(Kind::List) && self.elements == Some(Kind::Dict)))
    }
}

/// A module's whole argument spec plus the flags `AnsibleModule` takes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleSpec {
    pub argument_spec: IndexMap<String, OptionSpec>,
    #[serde(default)]
    pub mutually_exclusive: Vec<Vec<String>>,
    #[serde(default)]
    pub required_together: Vec<Vec<String>>,
    #[serde(default)]
    pub required_one_of: Vec<Vec<String>>,
    #[serde(default)]
    pub required_if: Vec<RequiredIf>,
    #[serde(default)]
    pub required_by: IndexMap<String, OneOrMany>,
    #[serde(default)]
    pub supports_check_mode: bool,
    /// The JSON the spec was read from, printed by `<module> --argument-spec`.
    #[serde(skip)]
    pub source: String,
}

impl ModuleSpec {
    pub fn relations(&self) -> Relations {
        relations_of!(self)
    }

    /// What `<module> --help` prints: how the binary is run, and every option
    /// with its type, default, choices and aliases (sub-options indented).
    pub fn usage(&self, name: &str) -> String {
        let mut out = format!(
            "{name}: an Ansible module (a static binary; Ansible runs it as `{name} ARGS.json`).\n\n\
             In a playbook:   ansible.legacy.{name}: (or vrrp_lxd.ha.{name}) with the options below\n\
             Documentation:   ansible-doc -M dist/library {name}\n\
             By hand:         {name} ARGS.json   (the options as one JSON object)\n\
             Spec as JSON:    {name} --argument-spec\n\nOptions:\n"
        );
        fn walk(out: &mut String, options: &IndexMap<String, OptionSpec>, depth: usize) {
            for (opt, spec) in options {
                let mut line = format!("{}{opt} ({}", "  ".repeat(depth + 1), spec.kind().name());
                if let Some(e) = spec.elements {
                    line.push_str(&format!(" of {}", e.name()));
                }
                if spec.required {
                    line.push_str(", required");
                }
                if let Some(d) = spec.default.as_ref().filter(|d| !d.is_null()) {
                    line.push_str(&format!(", default {d}"));
                }
                if let Some(c) = &spec.choices {
                    let c: Vec<String> = c.iter().map(crate::pyfmt::py_str).collect();
                    line.push_str(&format!(", one of {}", c.join(", ")));
                }
                if !spec.aliases.is_empty() {
                    line.push_str(&format!(", aliases {}", spec.aliases.join(", ")));
                }
                if spec.no_log {
                    line.push_str(", secret: no_log");
                }
                line.push(')');
                out.push_str(&line);
                out.push('\n');
                if let Some(sub) = &spec.options {
                    walk(out, sub, depth + 1);
                }
            }
        }
        walk(&mut out, &self.argument_spec, 0);
        out.push_str(if self.supports_check_mode {
            "\nSupports check mode (--check) and diff mode (--diff).\n"
        } else {
            "\nDoes not support check mode.\n"
        });
        out
    }

    /// Parses a spec written as JSON. A spec is part of the module's source, so a
    /// broken one is a programming error caught by each module's unit tests.
    pub fn from_json(text: &str) -> ModuleSpec {
        match Self::try_from_json(text) {
            Ok(spec) => spec,
            Err(e) => {
                crate::entry::fail_internal(&format!("internal error: invalid argument spec: {e}"))
            }
        }
    }

    pub fn try_from_json(text: &str) -> Result<ModuleSpec, String> {
        let mut spec: ModuleSpec = serde_json::from_str(text).map_err(|e| e.to_string())?;
        spec.source = text.to_string();
        spec.check().map(|()| spec)
    }

    /// The sanity checks Ansible makes on a spec itself.
    fn check(&self) -> Result<(), String> {
        fn walk(options: &IndexMap<String, OptionSpec>) -> Result<(), String> {
            for (name, opt) in options {
                if opt.required && opt.default.is_some() {
                    return Err(format!(
                        "internal error: required and default are mutually exclusive for {name}"
                    ));
                }
                if opt.elements.is_some() && opt.kind() != Kind::List {
                    return Err(format!(
                        "internal error: elements is only valid with type list ({name})"
                    ));
                }
                if let Some(sub) = &opt.options {
                    walk(sub)?;
                }
            }
            Ok(())
        }
        walk(&self.argument_spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_with_default_is_rejected() {
        let err = ModuleSpec::try_from_json(
            r#"{"argument_spec": {"a": {"required": true, "default": "x"}}}"#,
        )
        .unwrap_err();
        assert!(
            err.contains("required and default are mutually exclusive for a"),
            "{err}"
        );
    }

    #[test]
    fn unknown_spec_keys_are_rejected() {
        assert!(ModuleSpec::try_from_json(r#"{"argument_spec": {"a": {"tpye": "str"}}}"#).is_err());
    }

    #[test]
    fn usage_lists_every_option() {
        let spec = ModuleSpec::try_from_json(
            r#"{"argument_spec": {
                "name": {"type": "str", "required": true, "aliases": ["backend"]},
                "state": {"choices": ["present", "absent"], "default": "present"},
                "key": {"no_log": true},
                "hc": {"type": "dict", "options": {"path": {"default": "/"}}}
            }, "supports_check_mode": true}"#,
        )
        .expect("spec");
        let u = spec.usage("m");
        for line in [
            "  name (str, required, aliases backend)",
            "  state (str, default \"present\", one of present, absent)",
            "  key (str, secret: no_log)",
            "    path (str, default \"/\")",
            "Supports check mode",
        ] {
            assert!(u.contains(line), "{line:?} not in:\n{u}");
        }
    }
}
