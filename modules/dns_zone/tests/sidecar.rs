//! The ansible-doc sidecar documents exactly the options the module accepts.

#[test]
fn sidecar_matches_the_argument_spec() {
    testbed::sidecar::assert_matches_spec(
        dns_zone::SPEC,
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dns_zone.yml"),
        4,
    );
}
