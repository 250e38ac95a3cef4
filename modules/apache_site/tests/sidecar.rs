//! The ansible-doc sidecar describes exactly the options the module accepts,
//! with the same types, defaults and choices.

use serde_json::Value as Json;
use serde_yaml::Value as Yaml;

fn yaml_to_json(y: &Yaml) -> Json {
    serde_json::to_value(y).unwrap_or(Json::Null)
}

fn compare(path: &str, spec: &serde_json::Map<String, Json>, doc: &serde_yaml::Mapping) {
    let spec_names: Vec<&String> = spec.keys().collect();
    let mut doc_names: Vec<String> = doc
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    let mut sorted_spec: Vec<String> = spec_names.iter().map(|s| s.to_string()).collect();
    sorted_spec.sort();
    doc_names.sort();
    assert_eq!(
        doc_names, sorted_spec,
        "{path}: documented options differ from the spec"
    );
    for (name, opt) in spec {
        let d = &doc[name.as_str()];
        let where_ = format!("{path}{name}");
        assert!(d.get("description").is_some(), "{where_}: no description");
        let kind = opt.get("type").and_then(Json::as_str).unwrap_or("str");
        assert_eq!(d["type"].as_str(), Some(kind), "{where_}: type");
        for key in ["default", "choices", "elements"] {
            let s = opt.get(key).cloned().unwrap_or(Json::Null);
            let y = d.get(key).map(yaml_to_json).unwrap_or(Json::Null);
            assert_eq!(y, s, "{where_}: {key}");
        }
        let required = opt.get("required").and_then(Json::as_bool).unwrap_or(false);
        let doc_required = d.get("required").and_then(Yaml::as_bool).unwrap_or(false);
        assert_eq!(doc_required, required, "{where_}: required");
        if let Some(sub) = opt.get("options").and_then(Json::as_object) {
            let doc_sub = d["suboptions"]
                .as_mapping()
                .unwrap_or_else(|| panic!("{where_}: suboptions are not documented"));
            compare(&format!("{where_}."), sub, doc_sub);
        }
    }
}

#[test]
fn documented_options_match_the_argument_spec() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/apache_site.yml"))
        .expect("read apache_site.yml");
    let doc: Yaml = serde_yaml::from_str(&text).expect("apache_site.yml is YAML");
    assert_eq!(doc["DOCUMENTATION"]["module"].as_str(), Some("apache_site"));
    assert!(doc["EXAMPLES"]
        .as_str()
        .is_some_and(|e| e.contains("ansible.legacy.apache_site")));
    assert!(doc["RETURN"]
        .as_mapping()
        .is_some_and(|r| r.contains_key("actions")));
    let spec: Json = serde_json::from_str(apache_site::params::SPEC).expect("spec");
    let options = doc["DOCUMENTATION"]["options"]
        .as_mapping()
        .expect("DOCUMENTATION.options");
    compare(
        "",
        spec["argument_spec"].as_object().expect("argument_spec"),
        options,
    );
}
