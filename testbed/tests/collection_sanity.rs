//! `ansible-test sanity` on the `vrrp_lxd.ha` collection as built by
//! `scripts/build-collection.sh`, the check Galaxy and Automation Hub reviewers
//! run, through `scripts/collection-sanity.sh`; and the same check failing on
//! a copy with a broken plugin and broken module documentation.
//!
//! Needs `make build` and the ansible-test environments that
//! `scripts/setup-host.sh` makes. ansible-test runs in a network namespace of
//! its own (`unshare --net`): nothing it does can reach another machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use testbed::ansible::path_with_venv;
use testbed::{dist_dir, project_root};

/// Sanity tests that must run and pass, not be skipped: the ones reviewers
/// look at and the ones the binaries and the sidecar docs concern.
const MUST_PASS: [&str; 12] = [
    "action-plugin-docs",
    "ansible-doc",
    "changelog",
    "compile-python-3",
    "ignores",
    "import-python-3",
    "pep8",
    "pylint",
    "runtime-metadata",
    "shebang",
    "validate-modules",
    "yamllint",
];

/// `program args...` killed after `secs`: a hung tool fails the test.
fn bounded(secs: u32, program: &str) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=10", &secs.to_string(), program]);
    cmd.current_dir(project_root())
        .env("PATH", path_with_venv());
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn assert_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}",
        out.status,
        text(out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The collection built from `dist/` and unpacked into
/// `<dir>/ansible_collections/vrrp_lxd/ha`, which is returned.
fn build_and_unpack(dir: &Path) -> PathBuf {
    let out = run(bounded(300, "bash")
        .arg(project_root().join("scripts/build-collection.sh"))
        .env("VRRP_DIST", dist_dir())
        .env("COLLECTION_OUT", dir.join("out")));
    let stdout = assert_success("scripts/build-collection.sh (run `make build` first)", &out);
    let tarball = PathBuf::from(stdout.trim());
    let root = dir.join("ansible_collections/vrrp_lxd/ha");
    std::fs::create_dir_all(&root).expect("mkdir");
    let out = run(bounded(60, "tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&root));
    assert_success("tar -xzf", &out);
    root
}

/// `scripts/collection-sanity.sh <root> --junit` with no network.
fn sanity(root: &Path) -> Output {
    let out = run(bounded(600, "unshare")
        .args(["--net", "bash"])
        .arg(project_root().join("scripts/collection-sanity.sh"))
        .arg(root)
        .arg("--junit"));
    let log = text(&out);
    assert!(
        !log.contains("Downloading pip") && !log.contains("Installing requirements"),
        "ansible-test wanted to install something: its environments are not made \
         (run scripts/setup-host.sh):\n{log}"
    );
    out
}

/// Per sanity test (`pylint`, `compile-python-3.11`, ...): "passed", "skipped"
/// or "failed", from the JUnit files ansible-test wrote.
fn results(root: &Path) -> Vec<(String, &'static str)> {
    let dir = root.join("tests/output/junit");
    let mut found = vec![];
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{dir:?}: {e}"))
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(test) = name
            .strip_prefix("ansible-test-sanity-")
            .and_then(|n| n.strip_suffix(".xml"))
        else {
            continue;
        };
        let xml = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let state = if xml.contains("<failure") || xml.contains("<error") {
            "failed"
        } else if xml.contains("<skipped") {
            "skipped"
        } else {
            "passed"
        };
        found.push((test.to_string(), state));
    }
    found.sort();
    found
}

#[test]
fn built_collection_passes_ansible_test_sanity_and_fails_when_broken() {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = build_and_unpack(dir.path());

    let started = std::time::Instant::now();
    let out = sanity(&root);
    let took = started.elapsed();
    assert_success("ansible-test sanity on the built collection", &out);
    let got = results(&root);
    eprintln!("ansible-test sanity in {took:.1?}: {got:?}");
    for want in MUST_PASS {
        assert!(
            got.iter()
                .any(|(test, state)| test.starts_with(want) && *state == "passed"),
            "sanity test {want} did not run and pass: {got:?}"
        );
    }

    // A copy with a Python file that does not compile and a module whose
    // sidecar documentation lost its short_description: the check must fail
    // and name both, so the skipped binaries do not hide their docs.
    let broken = tempfile::tempdir().expect("temp dir");
    let copy = broken.path().join("ansible_collections/vrrp_lxd/ha");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    let out = run(bounded(60, "cp").arg("-a").arg(&root).arg(&copy));
    assert_success("cp -a", &out);
    let _ = std::fs::remove_dir_all(copy.join("tests/output"));
    let utils = copy.join("plugins/module_utils");
    std::fs::create_dir_all(&utils).expect("mkdir");
    std::fs::write(utils.join("planted.py"), "def broken(:\n").expect("write");
    let doc = copy.join("plugins/modules/dns_zone.yml");
    let yaml = std::fs::read_to_string(&doc).expect("read dns_zone.yml");
    let without: String = yaml
        .lines()
        .filter(|l| !l.trim_start().starts_with("short_description:"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_ne!(without, yaml, "dns_zone.yml has no short_description");
    std::fs::write(&doc, without).expect("write dns_zone.yml");

    let out = sanity(&copy);
    let log = text(&out);
    assert!(
        !out.status.success(),
        "ansible-test sanity passed on a broken collection:\n{log}"
    );
    assert!(
        log.contains("plugins/module_utils/planted.py"),
        "the Python file that does not compile is not named:\n{log}"
    );
    assert!(
        log.contains("plugins/modules/dns_zone.yml") && log.contains("short_description"),
        "validate-modules did not check the sidecar documentation:\n{log}"
    );
    let failed: Vec<String> = results(&copy)
        .into_iter()
        .filter(|(_, state)| *state == "failed")
        .map(|(test, _)| test)
        .collect();
    assert!(
        failed.iter().any(|t| t.starts_with("compile-python-3"))
            && failed.iter().any(|t| t == "validate-modules"),
        "failed sanity tests: {failed:?}"
    );
}
