//! The ansible-doc sidecar documents exactly the options the module accepts,
//! with the same types, defaults, choices and requirements.

use serde_json::{Map, Value};

fn doc_options() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/haproxy_backend.yml"))
        .expect("sidecar");
    let doc: serde_yaml::Value = serde_yaml::from_str(&text).expect("sidecar is YAML");
    let json = serde_json::to_value(doc).expect("as JSON");
    for key in ["DOCUMENTATION", "EXAMPLES", "RETURN"] {
        assert!(!json[key].is_null(), "{key} missing");
    }
    let examples: serde_yaml::Value =
        serde_yaml::from_str(json["EXAMPLES"].as_str().expect("EXAMPLES is text"))
            .expect("EXAMPLES is YAML");
    assert!(examples.as_sequence().is_some_and(|s| s.len() >= 5));
    json["DOCUMENTATION"]["options"].clone()
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
        assert_eq!(s["type"], d["type"], "{at}: type");
        assert_eq!(s["default"], d["default"], "{at}: default");
        assert_eq!(s["choices"], d["choices"], "{at}: choices");
        assert_eq!(s["elements"], d["elements"], "{at}: elements");
        assert_eq!(s["aliases"], d["aliases"], "{at}: aliases");
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

#[test]
fn sidecar_matches_the_argument_spec() {
    let spec: Value = serde_json::from_str(haproxy_backend::params::SPEC).expect("spec");
    let doc = doc_options();
    compare(
        "",
        spec["argument_spec"].as_object().expect("argument_spec"),
        doc.as_object().expect("options"),
    );
}
