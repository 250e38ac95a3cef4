//! `no_log` masking, as Ansible's `remove_values` does it: a value equal to a
//! secret becomes the placeholder, a value containing one has it starred out.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::pyfmt::py_str;
use crate::NO_LOG_PLACEHOLDER;

pub fn remove_values(value: &Value, secrets: &BTreeSet<String>) -> Value {
    if secrets.is_empty() {
        return value.clone();
    }
    match value {
        Value::String(s) => {
            if secrets.contains(s) {
                return Value::String(NO_LOG_PLACEHOLDER.into());
            }
            let mut out = s.clone();
            for secret in secrets {
                out = out.replace(secret.as_str(), "********");
            }
            Value::String(out)
        }
        Value::Number(_) => {
            let text = py_str(value);
            if secrets.contains(&text) || secrets.iter().any(|s| text.contains(s.as_str())) {
                Value::String(NO_LOG_PLACEHOLDER.into())
            } else {
                value.clone()
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| remove_values(v, secrets)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), remove_values(v, secrets)))
                .collect(),
        ),
        Value::Bool(_) | Value::Null => value.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn masks_exact_and_embedded() {
        let secrets: BTreeSet<String> = ["s3cret".to_string()].into();
        let out = remove_values(
            &json!({"a": "s3cret", "b": "user:s3cret", "c": true}),
            &secrets,
        );
        assert_eq!(
            out,
            json!({"a": NO_LOG_PLACEHOLDER, "b": "user:********", "c": true})
        );
    }
}
