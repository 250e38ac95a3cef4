//! Argument validation, step for step as ansible-core's `ArgumentSpecValidator`
//! (2.19): the same order of checks, the same coercions, the same messages. The
//! first error is the one a module reports, so the order matters as much as the
//! wording.

use std::collections::BTreeSet;

use indexmap::IndexMap;
use serde_json::{Map, Value};

use crate::pyfmt::{py_class, py_eq, py_float, py_repr, py_str, py_type_name};
use crate::spec::{Kind, ModuleSpec, OptionSpec, Relations};

/// What validation produced: the coerced parameters (every option present, unset
/// ones as `null`), the errors in the order Ansible finds them, and the values
/// that must never be printed.
#[derive(Debug, Default)]
pub struct Validated {
    pub params: Map<String, Value>,
    pub errors: Vec<ValidationError>,
    pub no_log_values: BTreeSet<String>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    pub msg: String,
    pub unsupported: bool,
}

impl Validated {
    /// The message `AnsibleModule` fails with, if any.
    pub fn failure(&self, module_name: &str) -> Option<String> {
        let first = self.errors.first()?;
        Some(if first.unsupported {
            format!(
                "Unsupported parameters for ({module_name}) module: {}",
                first.msg
            )
        } else {
            first.msg.clone()
        })
    }
}

type Unsupported = Vec<(Vec<String>, Vec<String>, Vec<String>)>; // (context path, supported, aliases)

struct Run {
    errors: Vec<ValidationError>,
    no_log: BTreeSet<String>,
    warnings: Vec<String>,
    unsupported: Unsupported,
}

impl Run {
    fn err(&mut self, msg: String) {
        self.errors.push(ValidationError {
            msg,
            unsupported: false,
        });
    }
}

pub fn validate(spec: &ModuleSpec, params: Map<String, Value>) -> Validated {
    let mut run = Run {
        errors: vec![],
        no_log: BTreeSet::new(),
        warnings: vec![],
        unsupported: vec![],
    };
    let mut params = params;
    let opts = &spec.argument_spec;
    let relations = spec.relations();

    let aliases = handle_aliases(
        opts,
        &mut params,
        &mut |option, alias| format!("Both option {option} and its alias {alias} are set."),
        &mut run.warnings,
    );
    if let Err(e) = list_no_log_values(opts, &params, &mut run.no_log) {
        run.err(e);
    }
    collect_unsupported(opts, &params, &aliases, &[], &mut run.unsupported);
    check_level(opts, &relations, &mut params, &[], "", &mut run);
    validate_sub_specs(opts, &mut params, "", &mut vec![], &mut run);

    if !run.unsupported.is_empty() {
        let mut names: Vec<String> = run
            .unsupported
            .iter()
            .map(|(ctx, _, _)| ctx.join("."))
            .collect();
        names.sort();
        names.dedup();
        // Ansible lists the options of the level of the last unsupported name it saw.
        let (_, supported, aliases) = run.unsupported.last().cloned().unwrap_or_default();
        let mut supported_string = supported.join(", ");
        if !aliases.is_empty() {
            supported_string.push_str(&format!(" ({})", aliases.join(", ")));
        }
        run.errors.push(ValidationError {
            msg: format!(
                "{}. Supported parameters include: {}.",
                names.join(", "),
                supported_string
            ),
            unsupported: true,
        });
    }

    Validated {
        params,
        errors: run.errors,
        no_log_values: run.no_log,
        warnings: run.warnings,
    }
}

/// The checks one level of options gets, in Ansible's order (after aliases and
/// unsupported names): mutually exclusive, defaults, required, types, choices,
/// the relations, then `None` for everything unset.
fn check_level(
    opts: &IndexMap<String, OptionSpec>,
    relations: &Relations,
    params: &mut Map<String, Value>,
    ctx: &[String],
    prefix: &str,
    run: &mut Run,
) {
    if let Err(e) = check_mutually_exclusive(&relations.mutually_exclusive, params, ctx) {
        run.err(e);
    }
    set_defaults(opts, params, false, &mut run.no_log);
    if let Err(e) = check_required_arguments(opts, params, ctx) {
        run.err(e);
    }
    validate_types(opts, params, prefix, ctx, run);
    validate_values(opts, params, ctx, run);
    for check in [
        check_required_together(&relations.required_together, params, ctx),
        check_required_one_of(&relations.required_one_of, params, ctx),
        check_required_if(relations, params, ctx),
        check_required_by(relations, params, ctx),
    ] {
        if let Err(e) = check {
            run.err(e);
        }
    }
    set_defaults(opts, params, true, &mut run.no_log);
}

fn found_in(msg: String, ctx: &[String]) -> String {
    if ctx.is_empty() {
        msg
    } else {
        format!("{msg} found in {}", ctx.join(" -> "))
    }
}

fn handle_aliases(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
    warning: &mut dyn FnMut(&str, &str) -> String,
    warnings: &mut Vec<String>,
) -> IndexMap<String, String> {
    let mut aliases = IndexMap::new();
    for (name, opt) in opts {
        for alias in &opt.aliases {
            aliases.insert(alias.clone(), name.clone());
            if let Some(v) = params.get(alias).cloned() {
                if params.contains_key(name) {
                    warnings.push(warning(name, alias));
                }
                params.insert(name.clone(), v);
            }
        }
    }
    aliases
}

fn collect_unsupported(
    opts: &IndexMap<String, OptionSpec>,
    params: &Map<String, Value>,
    aliases: &IndexMap<String, String>,
    ctx: &[String],
    out: &mut Unsupported,
) {
    for key in params.keys() {
        if opts.contains_key(key) || aliases.contains_key(key) {
            continue;
        }
        // New ansible-core versions add internal keys; they are never the user's.
        if ctx.is_empty() && key.starts_with("_ansible_") {
            continue;
        }
        let mut path = ctx.to_vec();
        path.push(key.clone());
        let supported: Vec<String> = opts
            .keys()
            .filter(|k| !aliases.contains_key(*k))
            .cloned()
            .collect();
        let mut supported_sorted = supported;
        supported_sorted.sort();
        let mut alias_names: Vec<String> = aliases.keys().cloned().collect();
        alias_names.sort();
        out.push((path, supported_sorted, alias_names));
    }
}

fn count_terms(terms: &[String], params: &Map<String, Value>) -> usize {
    terms
        .iter()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|t| params.contains_key(*t))
        .count()
}

fn check_mutually_exclusive(
    terms: &[Vec<String>],
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    let hits: Vec<String> = terms
        .iter()
        .filter(|t| count_terms(t, params) > 1)
        .map(|t| t.join("|"))
        .collect();
    if hits.is_empty() {
        return Ok(());
    }
    Err(found_in(
        format!("parameters are mutually exclusive: {}", hits.join(", ")),
        ctx,
    ))
}

fn check_required_together(
    terms: &[Vec<String>],
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    for term in terms {
        let counts: Vec<usize> = term
            .iter()
            .map(|f| usize::from(params.contains_key(f)))
            .collect();
        if counts.iter().any(|c| *c > 0) && counts.contains(&0) {
            return Err(found_in(
                format!("parameters are required together: {}", term.join(", ")),
                ctx,
            ));
        }
    }
    Ok(())
}

fn check_required_one_of(
    terms: &[Vec<String>],
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    for term in terms {
        if count_terms(term, params) == 0 {
            return Err(found_in(
                format!("one of the following is required: {}", term.join(", ")),
                ctx,
            ));
        }
    }
    Ok(())
}

fn check_required_if(
    relations: &Relations,
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    for rule in &relations.required_if {
        let max_missing = if rule.any { rule.requirements.len() } else { 0 };
        let mut missing = vec![];
        if params.get(&rule.key).is_some_and(|v| py_eq(v, &rule.value)) {
            for req in &rule.requirements {
                if !params.contains_key(req) {
                    missing.push(req.clone());
                }
            }
        }
        if !missing.is_empty() && missing.len() >= max_missing {
            let requires = if rule.any { "any" } else { "all" };
            return Err(found_in(
                format!(
                    "{} is {} but {} of the following are missing: {}",
                    rule.key,
                    py_str(&rule.value),
                    requires,
                    missing.join(", ")
                ),
                ctx,
            ));
        }
    }
    Ok(())
}

fn check_required_by(
    relations: &Relations,
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    let unset = |k: &str| params.get(k).is_none_or(Value::is_null);
    for (key, required) in &relations.required_by {
        if unset(key) {
            continue;
        }
        let missing: Vec<String> = required.names().into_iter().filter(|r| unset(r)).collect();
        if !missing.is_empty() {
            return Err(found_in(
                format!(
                    "missing parameter(s) required by '{key}': {}",
                    missing.join(", ")
                ),
                ctx,
            ));
        }
    }
    Ok(())
}

fn check_required_arguments(
    opts: &IndexMap<String, OptionSpec>,
    params: &Map<String, Value>,
    ctx: &[String],
) -> Result<(), String> {
    let mut missing: Vec<&String> = opts
        .iter()
        .filter(|(k, o)| o.required && !params.contains_key(*k))
        .map(|(k, _)| k)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    missing.sort();
    let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
    Err(found_in(
        format!("missing required arguments: {}", names.join(", ")),
        ctx,
    ))
}

fn set_defaults(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
    all: bool,
    no_log: &mut BTreeSet<String>,
) {
    for (name, opt) in opts {
        if params.contains_key(name) {
            continue;
        }
        let default = opt.default.clone().unwrap_or(Value::Null);
        if !default.is_null() || all {
            if opt.no_log && is_truthy(&default) {
                no_log_strings(&default, no_log);
            }
            params.insert(name.clone(), default);
        }
    }
}

fn is_truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// The strings Ansible hides for a `no_log` value (`_return_datastructure_name`).
fn no_log_strings(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::String(s) if !s.is_empty() => {
            out.insert(s.clone());
        }
        Value::Number(_) => {
            out.insert(py_str(v));
        }
        Value::Array(items) => items.iter().for_each(|i| no_log_strings(i, out)),
        Value::Object(map) => map.values().for_each(|i| no_log_strings(i, out)),
        _ => {}
    }
}

fn list_no_log_values(
    opts: &IndexMap<String, OptionSpec>,
    params: &Map<String, Value>,
    out: &mut BTreeSet<String>,
) -> Result<(), String> {
    for (name, opt) in opts {
        let value = params.get(name);
        if opt.no_log {
            if let Some(v) = value.filter(|v| is_truthy(v)) {
                no_log_strings(v, out);
            }
        }
        let (Some(sub_spec), Some(sub)) = (&opt.options, value) else {
            continue;
        };
        if sub.is_null() || !opt.has_sub_spec() {
            continue;
        }
        let items = match sub {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        };
        for item in items {
            let item = match item {
                Value::String(_) => check_dict(&item)?,
                other => other,
            };
            let Value::Object(map) = &item else {
                return Err(format!(
                    "Value '{}' in the sub parameter field '{}' must be a {}, not '{}'",
                    py_str(&item),
                    name,
                    opt.kind().name(),
                    py_type_name(&item)
                ));
            };
            list_no_log_values(sub_spec, map, out)?;
        }
    }
    Ok(())
}

fn validate_types(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
    _prefix: &str,
    ctx: &[String],
    run: &mut Run,
) {
    for (name, opt) in opts {
        let Some(value) = params.get(name).cloned() else {
            continue;
        };
        if value.is_null() && !opt.required && opt.default.is_none() {
            continue;
        }
        match check_type(opt.kind(), &value) {
            Ok(converted) => {
                let converted = match (opt.elements, converted) {
                    (Some(elements), Value::Array(items)) => {
                        let mut ok = Vec::with_capacity(items.len());
                        for item in items {
                            match check_type(elements, &item) {
                                Ok(v) => ok.push(v),
                                Err(e) => {
                                    let mut msg = format!("Elements value for option '{name}'");
                                    if !ctx.is_empty() {
                                        msg.push_str(&format!(" found in '{}'", ctx.join(" -> ")));
                                    }
                                    msg.push_str(&format!(
                                        " is of type {} and we were unable to convert to {}: {e}",
                                        py_type_name(&item),
                                        elements.name()
                                    ));
                                    run.err(msg);
                                }
                            }
                        }
                        Value::Array(ok)
                    }
                    (_, converted) => converted,
                };
                params.insert(name.clone(), converted);
            }
            Err(e) => {
                let mut msg = format!("argument '{name}' is of type {}", py_type_name(&value));
                if !ctx.is_empty() {
                    msg.push_str(&format!(" found in '{}'.", ctx.join(" -> ")));
                }
                msg.push_str(&format!(
                    " and we were unable to convert to {}: {e}",
                    opt.kind().name()
                ));
                run.err(msg);
            }
        }
    }
}

fn validate_values(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
    ctx: &[String],
    run: &mut Run,
) {
    for (name, opt) in opts {
        let Some(choices) = &opt.choices else {
            continue;
        };
        let Some(value) = params.get(name).cloned() else {
            continue;
        };
        let in_choices = |v: &Value| choices.iter().any(|c| py_eq(c, v));
        let choices_str = choices.iter().map(py_str).collect::<Vec<_>>().join(", ");
        if let Value::Array(items) = &value {
            let diff: Vec<String> = items
                .iter()
                .filter(|i| !in_choices(i))
                .map(py_str)
                .collect();
            if !diff.is_empty() {
                run.err(found_in(
                    format!("value of {name} must be one or more of: {choices_str}. Got no match for: {}", diff.join(", ")),
                    ctx,
                ));
            }
            continue;
        }
        if in_choices(&value) {
            continue;
        }
        // YAML 1.1 turns `no` into False; when exactly one choice is a boolean
        // spelling of it, Ansible maps the value back.
        let mut value = value;
        for (text, truth) in [("False", false), ("True", true)] {
            if value == Value::String(text.into()) {
                let overlap: Vec<&Value> = choices
                    .iter()
                    .filter(|c| parse_bool(c) == Some(truth) && !c.is_null())
                    .collect();
                if overlap.len() == 1 {
                    value = overlap[0].clone();
                    params.insert(name.clone(), value.clone());
                }
            }
        }
        if !in_choices(&value) {
            run.err(found_in(
                format!(
                    "value of {name} must be one of: {choices_str}, got: {}",
                    py_str(&value)
                ),
                ctx,
            ));
        }
    }
}

fn validate_sub_specs(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
    prefix: &str,
    ctx: &mut Vec<String>,
    run: &mut Run,
) {
    for (name, opt) in opts {
        let wanted_sub = opt.kind == Some(Kind::Dict)
            || (opt.kind == Some(Kind::List) && opt.elements == Some(Kind::Dict));
        if !wanted_sub {
            continue;
        }
        let Some(sub_spec) = &opt.options else {
            continue;
        };
        if opt.apply_defaults {
            if params.get(name).is_none_or(Value::is_null) {
                params.insert(name.clone(), Value::Object(Map::new()));
            }
        } else if params.get(name).is_none_or(Value::is_null) {
            continue;
        }
        ctx.push(name.clone());
        let relations = opt.relations();
        let Some(slot) = params.get_mut(name) else {
            continue;
        };
        let is_list = matches!(slot, Value::Array(_));
        let mut elements: Vec<&mut Value> = match slot {
            Value::Array(items) => items.iter_mut().collect(),
            other => vec![other],
        };
        for (idx, element) in elements.iter_mut().enumerate() {
            let Value::Object(sub) = element else {
                run.err(format!(
                    "value of '{name}' must be of type dict or list of dicts"
                ));
                continue;
            };
            let mut new_prefix = format!("{prefix}{name}");
            if opt.kind == Some(Kind::List) && is_list {
                new_prefix.push_str(&format!("[{idx}]"));
            }
            new_prefix.push('.');
            let p = new_prefix.clone();
            let aliases = handle_aliases(
                sub_spec,
                sub,
                &mut |o, a| format!("Both option {p}{o} and its alias {p}{a} are set."),
                &mut run.warnings,
            );
            if let Err(e) = list_no_log_values(sub_spec, sub, &mut run.no_log) {
                run.err(e);
            }
            collect_unsupported(sub_spec, sub, &aliases, ctx, &mut run.unsupported);
            check_level(sub_spec, &relations, sub, ctx, &new_prefix, run);
            validate_sub_specs(sub_spec, sub, &new_prefix, ctx, run);
        }
        ctx.pop();
    }
}

// ---- the typed view a module body parses -------------------------------------

/// The validated parameters as a module's typed struct reads them: a boolean
/// in an `int` option (or an `elements: int` list, at any depth of
/// sub-`options`) becomes 1 or 0, and in a `float` option 1.0 or 0.0.
///
/// Validation leaves `True` in an `int` option as it is, as ansible-core's
/// `check_type_int` does (Python's bool is an int, so a Python module doing
/// arithmetic with it sees 1); the result's `invocation` shows it that way.
/// Only what a module body parses gets the number.
pub(crate) fn numbers_for_bools(
    opts: &IndexMap<String, OptionSpec>,
    params: &mut Map<String, Value>,
) {
    for (name, opt) in opts {
        let Some(value) = params.get_mut(name) else {
            continue;
        };
        match (opt.kind(), value) {
            (kind @ (Kind::Int | Kind::Float), value) => number_for_bool(kind, value),
            (Kind::List, Value::Array(items)) => {
                for item in items {
                    match (opt.elements, item) {
                        (Some(kind @ (Kind::Int | Kind::Float)), item) => {
                            number_for_bool(kind, item);
                        }
                        (Some(Kind::Dict), Value::Object(sub)) => {
                            if let Some(sub_spec) = &opt.options {
                                numbers_for_bools(sub_spec, sub);
                            }
                        }
                        _ => {}
                    }
                }
            }
            (Kind::Dict, Value::Object(sub)) => {
                if let Some(sub_spec) = &opt.options {
                    numbers_for_bools(sub_spec, sub);
                }
            }
            _ => {}
        }
    }
}

fn number_for_bool(kind: Kind, value: &mut Value) {
    let Value::Bool(b) = *value else {
        return;
    };
    *value = match kind {
        Kind::Float => Value::from(f64::from(u8::from(b))),
        _ => Value::from(i64::from(b)),
    };
}

// ---- type checkers (ansible.module_utils.common.validation.check_type_*) ----

fn check_type(kind: Kind, value: &Value) -> Result<Value, String> {
    match kind {
        Kind::Str => Ok(Value::String(check_str(value))),
        Kind::Path => Ok(Value::String(expand_path(&check_str(value)))),
        Kind::Raw => Ok(value.clone()),
        Kind::Int => check_int(value),
        Kind::Float => check_float(value),
        Kind::Bool => check_bool(value),
        Kind::List => check_list(value),
        Kind::Dict => check_dict(value),
    }
}

fn check_str(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        other => py_str(other),
    }
}

fn check_int(value: &Value) -> Result<Value, String> {
    let fail = || format!("\"{}\" cannot be converted to an int", py_repr(value));
    match value {
        // Python's bool is an int, so Ansible passes it through unchanged.
        Value::Bool(_) => Ok(value.clone()),
        Value::Number(n) if !n.is_f64() => Ok(value.clone()),
        Value::Number(n) => {
            let f = n.as_f64().ok_or_else(fail)?;
            if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18 {
                Ok(Value::from(f as i64))
            } else {
                Err(fail())
            }
        }
        Value::String(s) => parse_decimal_int(s).map(Value::from).ok_or_else(fail),
        _ => Err(fail()),
    }
}

/// `int(decimal.Decimal(s))` when the decimal has no fractional part.
fn parse_decimal_int(s: &str) -> Option<i64> {
    let t = s.trim();
    if t.is_empty() || t.starts_with('_') || t.ends_with('_') || t.contains("__") {
        return None;
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    if let Ok(i) = cleaned.parse::<i64>() {
        return Some(i);
    }
    if !cleaned
        .chars()
        .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return None;
    }
    let f: f64 = cleaned.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

fn check_float(value: &Value) -> Result<Value, String> {
    let fail = || format!("{} cannot be converted to a float", py_class(value));
    let f = match value {
        Value::Number(n) => n.as_f64().ok_or_else(fail)?,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => parse_py_float(s).ok_or_else(fail)?,
        _ => return Err(fail()),
    };
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| format!("{} is not representable in JSON", py_float(f)))
}

fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if ["inf", "infinity", "nan"].contains(&body) {
        return lower.parse().ok();
    }
    if t.is_empty() || t.contains("__") || t.starts_with('_') || t.ends_with('_') {
        return None;
    }
    let cleaned: String = t.chars().filter(|c| *c != '_').collect();
    if !cleaned
        .chars()
        .all(|c| c.is_ascii_digit() || "+-.eE".contains(c))
    {
        return None;
    }
    cleaned.parse().ok()
}

const BOOLEANS_TRUE: [&str; 6] = ["y", "yes", "on", "1", "true", "t"];
const BOOLEANS_FALSE: [&str; 6] = ["n", "no", "off", "0", "false", "f"];

fn parse_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_f64() {
            Some(1.0) => Some(true),
            Some(0.0) => Some(false),
            _ => None,
        },
        Value::String(s) => {
            let norm = s.trim().to_lowercase();
            if BOOLEANS_TRUE.contains(&norm.as_str()) {
                Some(true)
            } else if BOOLEANS_FALSE.contains(&norm.as_str()) {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

fn check_bool(value: &Value) -> Result<Value, String> {
    match value {
        Value::Bool(_) | Value::Number(_) | Value::String(_) => {
            parse_bool(value).map(Value::Bool).ok_or_else(|| {
                let valid: Vec<String> = BOOLEANS_TRUE
                    .iter()
                    .chain(BOOLEANS_FALSE.iter())
                    .map(|s| format!("'{s}'"))
                    .chain(["1".to_string(), "0".to_string()])
                    .collect();
                format!(
                    "The value '{}' is not a valid boolean. Valid booleans include: {}",
                    py_str(value),
                    valid.join(", ")
                )
            })
        }
        _ => Err(format!("{} cannot be converted to a bool", py_class(value))),
    }
}

fn check_list(value: &Value) -> Result<Value, String> {
    match value {
        Value::Array(_) => Ok(value.clone()),
        Value::String(s) => Ok(Value::Array(
            s.split(',').map(|p| Value::String(p.to_string())).collect(),
        )),
        Value::Number(_) | Value::Bool(_) => Ok(Value::Array(vec![Value::String(py_str(value))])),
        _ => Err(format!("{} cannot be converted to a list", py_class(value))),
    }
}

fn check_dict(value: &Value) -> Result<Value, String> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        Value::String(s) if s.starts_with('{') => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err("unable to evaluate string as dictionary".into()),
        },
        Value::String(s) if s.contains('=') => parse_key_value(s),
        Value::String(_) => Err("dictionary requested, could not parse JSON or key=value".into()),
        _ => Err(format!("{} cannot be converted to a dict", py_class(value))),
    }
}

/// `k1=v1 k2="v 2",k3=v3`, split as Ansible splits it (quotes and backslashes).
fn parse_key_value(s: &str) -> Result<Value, String> {
    let mut fields = vec![];
    let mut buf = String::new();
    let mut in_quote: Option<char> = None;
    let mut in_escape = false;
    for c in s.trim().chars() {
        if in_escape {
            buf.push(c);
            in_escape = false;
        } else if c == '\\' {
            in_escape = true;
        } else if in_quote.is_none() && (c == '\'' || c == '"') {
            in_quote = Some(c);
        } else if in_quote == Some(c) {
            in_quote = None;
        } else if in_quote.is_none() && (c == ',' || c == ' ') {
            if !buf.is_empty() {
                fields.push(std::mem::take(&mut buf));
            }
        } else {
            buf.push(c);
        }
    }
    if !buf.is_empty() {
        fields.push(buf);
    }
    let mut map = Map::new();
    for f in fields {
        let (k, v) = f.split_once('=').ok_or_else(|| {
            "unable to evaluate string in the \"key=value\" format as dictionary".to_string()
        })?;
        map.insert(k.to_string(), Value::String(v.to_string()));
    }
    Ok(Value::Object(map))
}

/// `os.path.expanduser(os.path.expandvars(value))`.
fn expand_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '$' {
            let (name, end) = if chars.get(i + 1) == Some(&'{') {
                match chars[i + 2..].iter().position(|c| *c == '}') {
                    Some(p) => (
                        chars[i + 2..i + 2 + p].iter().collect::<String>(),
                        i + 3 + p,
                    ),
                    None => (String::new(), i),
                }
            } else {
                let n: String = chars[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_alphanumeric() || **c == '_')
                    .collect();
                let len = n.len();
                (n, i + 1 + len)
            };
            if !name.is_empty() {
                if let Ok(v) = std::env::var(&name) {
                    out.push_str(&v);
                    i = end;
                    continue;
                }
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    if out == "~" || out.starts_with("~/") {
        if let Ok(home) = std::env::var("HOME") {
            return format!("{home}{}", &out[1..]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: &str, args: Value) -> Validated {
        let spec = ModuleSpec::try_from_json(spec).expect("spec");
        validate(&spec, args.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn missing_required_are_sorted() {
        let v = run(
            r#"{"argument_spec": {"b": {"required": true}, "a": {"required": true}}}"#,
            json!({}),
        );
        assert_eq!(
            v.failure("m").as_deref(),
            Some("missing required arguments: a, b")
        );
    }

    #[test]
    fn unsupported_lists_supported_and_aliases() {
        let v = run(
            r#"{"argument_spec": {"name": {"aliases": ["n"]}, "state": {}}}"#,
            json!({"bakend": 1}),
        );
        assert_eq!(
            v.failure("haproxy_backend").as_deref(),
            Some("Unsupported parameters for (haproxy_backend) module: bakend. Supported parameters include: name, state (n).")
        );
    }

    #[test]
    fn internal_keys_are_ignored() {
        let v = run(
            r#"{"argument_spec": {}}"#,
            json!({"_ansible_brand_new_key": 1}),
        );
        assert!(v.errors.is_empty());
    }

    #[test]
    fn coercions() {
        let v = run(
            r#"{"argument_spec": {"b": {"type": "bool"}, "i": {"type": "int"}, "l": {"type": "list"}}}"#,
            json!({"b": "Yes", "i": "42", "l": "a,b"}),
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        assert_eq!(v.params["b"], json!(true));
        assert_eq!(v.params["i"], json!(42));
        assert_eq!(v.params["l"], json!(["a", "b"]));
    }

    #[test]
    fn choices_message() {
        let v = run(
            r#"{"argument_spec": {"state": {"choices": ["present", "absent"]}}}"#,
            json!({"state": "gone"}),
        );
        assert_eq!(
            v.failure("m").as_deref(),
            Some("value of state must be one of: present, absent, got: gone")
        );
    }

    #[test]
    fn bools_stay_bools_in_int_options_as_in_ansible() {
        let v = run(
            r#"{"argument_spec": {"port": {"type": "int"}, "ratio": {"type": "float"}}}"#,
            json!({"port": true, "ratio": false}),
        );
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        // check_type_int keeps True (an int in Python); check_type_float
        // returns float(True).
        assert_eq!(v.params["port"], json!(true));
        assert_eq!(v.params["ratio"], json!(0.0));
    }

    #[test]
    fn bools_become_numbers_at_every_depth() {
        let spec = ModuleSpec::try_from_json(
            r#"{"argument_spec": {
                "port": {"type": "int"},
                "off": {"type": "int"},
                "ratio": {"type": "float"},
                "flag": {"type": "bool"},
                "blob": {"type": "raw"},
                "name": {"type": "str"},
                "ports": {"type": "list", "elements": "int"},
                "ratios": {"type": "list", "elements": "float"},
                "tags": {"type": "list", "elements": "raw"},
                "health_check": {"type": "dict", "apply_defaults": true, "options": {
                    "rise": {"type": "int", "default": true},
                    "inner": {"type": "dict", "options": {"fall": {"type": "int"}}}
                }},
                "servers": {"type": "list", "elements": "dict", "options": {
                    "port": {"type": "int", "default": 80},
                    "weights": {"type": "list", "elements": "int"},
                    "check": {"type": "bool", "default": true}
                }},
                "labels": {"type": "dict"}
            }}"#,
        )
        .expect("spec");
        let args = json!({
            "port": true, "off": false, "ratio": true, "flag": true, "blob": true,
            "name": true, "ports": [true, "2", false], "ratios": [true],
            "tags": [true], "health_check": {"inner": {"fall": false}},
            "servers": [{"port": true, "weights": [false, 3]}, {"check": false}],
            "labels": {"x": true}
        });
        let mut v = validate(&spec, args.as_object().cloned().unwrap_or_default());
        assert!(v.errors.is_empty(), "{:?}", v.errors);
        numbers_for_bools(&spec.argument_spec, &mut v.params);
        let p = Value::Object(v.params);
        assert_eq!(p["port"], json!(1));
        assert_eq!(p["off"], json!(0));
        assert_eq!(p["ratio"], json!(1.0));
        assert_eq!(p["flag"], json!(true));
        assert_eq!(p["blob"], json!(true), "raw is handed over as given");
        assert_eq!(p["name"], json!("True"), "str was converted by validation");
        assert_eq!(p["ports"], json!([1, 2, 0]));
        assert_eq!(p["ratios"], json!([1.0]));
        assert_eq!(p["tags"], json!([true]));
        assert_eq!(p["health_check"]["rise"], json!(1), "a default counts too");
        assert_eq!(p["health_check"]["inner"]["fall"], json!(0));
        assert_eq!(p["servers"][0]["port"], json!(1));
        assert_eq!(p["servers"][0]["weights"], json!([0, 3]));
        assert_eq!(p["servers"][0]["check"], json!(true));
        assert_eq!(p["servers"][1]["port"], json!(80));
        assert_eq!(p["servers"][1]["check"], json!(false));
        assert_eq!(p["labels"], json!({"x": true}), "a dict without options");
    }

    #[test]
    fn sub_options_report_their_path() {
        let v = run(
            r#"{"argument_spec": {"servers": {"type": "list", "elements": "dict", "options": {"name": {"required": true}, "port": {"type": "int"}}}}}"#,
            json!({"servers": [{"name": "a", "prot": 1}]}),
        );
        assert_eq!(
            v.failure("m").as_deref(),
            Some("Unsupported parameters for (m) module: servers.prot. Supported parameters include: name, port.")
        );
    }
}
