//! The ansible-doc sidecar documents exactly the options the module accepts,
//! with the same types, defaults, choices and requirements.

#[test]
fn sidecar_matches_the_argument_spec() {
    testbed::sidecar::assert_matches_spec(
        haproxy_backend::params::SPEC,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("haproxy_backend.yml"),
        5,
    );
}
