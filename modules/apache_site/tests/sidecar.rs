//! The ansible-doc sidecar describes exactly the options the module accepts,
//! with the same types, defaults and choices, and says what the module returns.

use serde_yaml_ng::Value as Yaml;

#[test]
fn documented_options_match_the_argument_spec() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("apache_site.yml");
    testbed::sidecar::assert_matches_spec(apache_site::params::SPEC, &path, 3);
    let text = std::fs::read_to_string(&path).expect("read apache_site.yml");
    let doc: Yaml = serde_yaml_ng::from_str(&text).expect("apache_site.yml is YAML");
    assert_eq!(doc["DOCUMENTATION"]["module"].as_str(), Some("apache_site"));
    assert!(doc["EXAMPLES"]
        .as_str()
        .is_some_and(|e| e.contains("ansible.legacy.apache_site")));
    assert!(doc["RETURN"]
        .as_mapping()
        .is_some_and(|r| r.contains_key("actions")));
}
