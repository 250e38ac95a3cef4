//! A module's ansible-doc sidecar (`<module>.yml`) against its argument spec:
//! the same options, types, defaults, choices, elements, aliases and
//! requirements, suboptions included, and EXAMPLES that parse as YAML.

use serde_json::{Map, Value};

/// Panics with the first difference between `spec_json` (the module's
/// `SPEC`) and the sidecar at `path`, or when it has fewer than
/// `min_examples` examples.
pub fn assert_matches_spec(spec_json: &str, path: &std::path::Path, min_examples: usize) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).expect("sidecar is YAML");
    let doc = serde_json::to_value(doc).expect("as JSON");
    for key in ["DOCUMENTATION", "EXAMPLES", "RETURN"] {
        assert!(!doc[key].is_null(), "{key} missing");
    }
    let examples: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(doc["EXAMPLES"].as_str().expect("EXAMPLES is text"))
            .expect("EXAMPLES is YAML");
    let count = examples.as_sequence().map_or(0, |s| s.len());
    assert!(
        count >= min_examples,
        "{count} examples, want {min_examples}"
    );
    let spec: Value = serde_json::from_str(spec_json).expect("spec is JSON");
    compare(
        "",
        spec["argument_spec"].as_object().expect("argument_spec"),
        doc["DOCUMENTATION"]["options"]
            .as_object()
            .expect("options"),
    );
}

fn compare(path: &str, spec: &Map<String, Value>, doc: &Map<String, Value>) {
    let mut spec_keys: Vec<&String> = spec.keys().collect();
    let mut doc_keys: Vec<&String> = doc.keys().collect();
    spec_keys.sort();
    doc_keys.sort();
    assert_eq!(spec_keys, doc_keys, "options of {path}");
    for (name, s) in spec {
        let d = &doc[name];
        let at = format!("{path}{name}");
        assert!(
            d["description"].is_string() || d["description"].is_array(),
            "{at}: no description"
        );
        for key in ["type", "default", "choices", "elements", "aliases"] {
            assert_eq!(s[key], d[key], "{at}: {key}");
        }
        assert_eq!(
            s["required"].as_bool().unwrap_or(false),
            d["required"].as_bool().unwrap_or(false),
            "{at}: required"
        );
        match (s["options"].as_object(), d["suboptions"].as_object()) {
            (Some(so), Some(dso)) => compare(&format!("{at}."), so, dso),
            (None, None) => {}
            _ => panic!("{at}: suboptions differ"),
        }
    }
}
