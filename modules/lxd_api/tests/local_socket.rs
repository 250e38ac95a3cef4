//! Against the real local LXD (fails when LXD is missing).

use std::time::Duration;

use lxd_api::{Client, TlsOptions};

#[test]
fn lists_instances_and_reports_errors_readably() {
    let lxd = Client::connect(None, &TlsOptions::default()).expect("local LXD socket");
    assert!(lxd.is_trusted().expect("GET /1.0"));
    let all = lxd.list_instances_full(None).expect("instances");
    for inst in &all {
        assert!(inst.get("name").is_some());
        assert!(inst.get("state").is_some(), "recursion=2 includes state");
    }
    let err = lxd
        .get("/1.0/instances/t-lxd-api-does-not-exist")
        .expect_err("missing instance");
    assert!(err.is_not_found(), "{err}");
    assert_eq!(
        err.to_string(),
        "LXD refused GET /1.0/instances/t-lxd-api-does-not-exist: Instance not found (HTTP 404)"
    );
    assert!(lxd
        .instance("t-lxd-api-does-not-exist", None)
        .expect("lookup")
        .is_none());

    // A failing background operation: creating from an image that is not there.
    let mut lxd = lxd;
    lxd.set_operation_timeout(Duration::from_secs(30));
    let err = lxd
        .post(
            "/1.0/instances",
            &serde_json::json!({
                "name": format!("t-lxd-api-{}", std::process::id()),
                "source": {"type": "image", "alias": "t-lxd-no-such-image"},
            }),
        )
        .expect_err("unknown image");
    let text = err.to_string();
    assert!(
        text.contains("t-lxd-no-such-image") || text.contains("not found"),
        "{text}"
    );
}

#[test]
fn exec_collects_output_and_exit_code() {
    let c = testbed::Container::launch_with(
        "t-lxd-api-exec",
        testbed::LaunchOpts {
            wait_ipv4: false,
            ..testbed::LaunchOpts::default()
        },
    );
    let lxd = Client::connect(None, &TlsOptions::default()).expect("local LXD socket");
    let out = lxd
        .exec(
            &c.name,
            None,
            &["sh", "-c", "echo out; echo err >&2; exit 3"],
            Duration::from_secs(30),
        )
        .expect("exec");
    assert_eq!(out.return_code, 3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");

    let state = lxd.instance_state(&c.name, None).expect("state");
    assert_eq!(state["status"], serde_json::json!("Running"));
    let listed = lxd.list_instances_full(None).expect("list");
    let me = listed
        .iter()
        .find(|i| i["name"] == serde_json::json!(c.name))
        .expect("listed");
    assert_eq!(me["state"]["status"], serde_json::json!("Running"));
    let everywhere = lxd.list_instances_all_projects().expect("all projects");
    assert!(everywhere
        .iter()
        .any(|i| i["name"] == serde_json::json!(c.name)
            && i["project"] == serde_json::json!("default")));
}
