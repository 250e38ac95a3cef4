//! The ansible-doc sidecar documents exactly the options the module accepts.

#[test]
fn sidecar_matches_the_argument_spec() {
    testbed::sidecar::assert_matches_spec(
        resolver::SPEC,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("resolver.yml"),
        3,
    );
}
