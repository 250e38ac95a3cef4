//! The arm64 builds (`make build-aarch64`, `dist/aarch64/`) on this x86_64
//! host, under qemu-user: every binary is a static aarch64 executable and
//! answers as its x86_64 build does; a check-mode run of a module gives the
//! same result on both; and the collection, asked to run a module on a host
//! whose `ansible_architecture` is `aarch64`, sends that host the aarch64
//! build (x86_64 hosts keep the module itself, other architectures fail
//! with a message saying so).
//!
//! Needs `make build` and `make build-aarch64` (which installs qemu-user-static).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};
use testbed::ansible::{path_with_venv, Runner};
use testbed::{dist_dir, module_binary, project_root, MODULES};

const NS: &str = "vrrp_lxd.ha";

fn aarch64_dir() -> PathBuf {
    dist_dir().join("aarch64")
}

/// A binary of the arm64 build; panics with the fix when it is missing.
fn aarch64_binary(rel: &str) -> PathBuf {
    let path = aarch64_dir().join(rel);
    assert!(
        path.is_file(),
        "{} is missing: run `make build-aarch64` first",
        path.display()
    );
    path
}

/// qemu's user-mode emulator for aarch64.
fn qemu() -> PathBuf {
    ["/usr/bin/qemu-aarch64-static", "/usr/bin/qemu-aarch64"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .expect(
            "no qemu-aarch64(-static): run `make build-aarch64`, which installs qemu-user-static",
        )
}

fn output(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `bin args...`, natively or under qemu, killed after a minute.
fn run_bin(bin: &Path, emulate: bool, args: &[&str]) -> Output {
    let mut cmd = Command::new("timeout");
    cmd.args(["--kill-after=5", "60"]);
    if emulate {
        cmd.arg(qemu());
    }
    output(cmd.arg(bin).args(args))
}

fn file_type(path: &Path) -> String {
    let out = output(Command::new("file").arg("-b").arg(path));
    assert!(out.status.success(), "file {}: {out:?}", path.display());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn assert_static_aarch64(path: &Path) {
    let desc = file_type(path);
    assert!(
        desc.contains("ARM aarch64") && desc.contains("statically linked"),
        "{} is not a static aarch64 executable: {desc}",
        path.display()
    );
}

fn json_of(what: &str, out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "{what} printed something that is not one JSON object ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn every_binary_is_static_aarch64_and_answers_as_the_x86_64_build() {
    for m in MODULES {
        let bin = aarch64_binary(&format!("library/{m}"));
        assert_static_aarch64(&bin);
        assert!(
            aarch64_dir().join(format!("library/{m}.yml")).is_file(),
            "library/{m}.yml sidecar missing beside the arm64 build"
        );
        let emulated = run_bin(&bin, true, &["--argument-spec"]);
        let native = run_bin(&module_binary(m), false, &["--argument-spec"]);
        assert!(
            emulated.status.success(),
            "{m} --argument-spec under qemu: {emulated:?}"
        );
        assert_eq!(
            json_of(&format!("{m} --argument-spec (aarch64)"), &emulated),
            json_of(&format!("{m} --argument-spec (x86_64)"), &native),
            "{m}: the two builds print different argument specs"
        );
    }
    let inventory = aarch64_binary("bin/lxd_inventory");
    assert_static_aarch64(&inventory);
    let emulated = run_bin(&inventory, true, &["--help"]);
    let native = run_bin(&testbed::dist_binary("lxd_inventory"), false, &["--help"]);
    assert!(
        emulated.status.success(),
        "lxd_inventory --help under qemu: {emulated:?}"
    );
    assert_eq!(
        emulated.stdout, native.stdout,
        "lxd_inventory --help differs"
    );
}

/// A haproxy_backend run in check mode against a file in `dir`: its arguments.
fn haproxy_args(dir: &Path) -> Value {
    json!({
        "name": "web",
        "config_path": dir.join("haproxy.cfg"),
        "admin_socket": dir.join("admin.sock"),
        "servers": [
            {"name": "web-01", "address": "10.0.0.1", "port": 80},
            {"name": "web-02", "address": "10.0.0.2", "port": 80}
        ],
        "_ansible_check_mode": true,
        "_ansible_diff": true
    })
}

const SEED_CFG: &str = "global\n    daemon\n";

#[test]
fn check_mode_run_under_qemu_gives_the_x86_64_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("haproxy.cfg");
    std::fs::write(&cfg, SEED_CFG).expect("write haproxy.cfg");
    let args = dir.path().join("args");
    std::fs::write(&args, haproxy_args(dir.path()).to_string()).expect("write args");
    let args = args.to_str().expect("utf-8 path");

    let emulated = run_bin(&aarch64_binary("library/haproxy_backend"), true, &[args]);
    let result = json_of("haproxy_backend (aarch64)", &emulated);
    assert!(
        emulated.status.success(),
        "haproxy_backend under qemu failed: {result}"
    );
    assert_eq!(result["changed"], true, "{result}");
    assert_eq!(result["backend"], "web", "{result}");
    let after = result["diff"]["after"].as_str().unwrap_or_default();
    assert!(
        after.contains("backend web") && after.contains("server web-02 10.0.0.2:80"),
        "the diff lacks the backend: {result}"
    );
    assert_eq!(
        std::fs::read_to_string(&cfg).expect("read haproxy.cfg"),
        SEED_CFG,
        "check mode changed the file"
    );

    let native = run_bin(&module_binary("haproxy_backend"), false, &[args]);
    assert_eq!(
        result,
        json_of("haproxy_backend (x86_64)", &native),
        "the aarch64 and x86_64 builds disagree"
    );
}

/// The collection built from `dist/` (arm64 builds included) and installed
/// under `dir`; returns the collections path.
fn build_and_install(dir: &Path) -> PathBuf {
    let out = output(
        Command::new("bash")
            .arg(project_root().join("scripts/build-collection.sh"))
            .current_dir(project_root())
            .env("COLLECTION_OUT", dir.join("out"))
            .env("PATH", path_with_venv()),
    );
    assert!(out.status.success(), "build-collection.sh: {out:?}");
    let tarball = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let collections = dir.join("collections");
    let out = output(
        Command::new(testbed::venv_bin("ansible-galaxy"))
            .args(["collection", "install", "--offline", "-p"])
            .arg(&collections)
            .arg(&tarball)
            .current_dir(dir)
            .env("PATH", path_with_venv())
            .env_remove("ANSIBLE_CONFIG"),
    );
    assert!(
        out.status.success(),
        "ansible-galaxy collection install: {out:?}"
    );
    collections
}

/// The module file a kept remote temp dir under `remote_tmp` holds.
fn kept_module(remote_tmp: &Path, module: &str) -> (PathBuf, PathBuf) {
    let mut found = vec![];
    for entry in std::fs::read_dir(remote_tmp)
        .into_iter()
        .flatten()
        .flatten()
    {
        let bin = entry.path().join(format!("AnsiballZ_{module}"));
        if bin.is_file() {
            found.push((bin, entry.path().join("args")));
        }
    }
    assert_eq!(
        found.len(),
        1,
        "expected one kept {module} in {}: {found:?}",
        remote_tmp.display()
    );
    found.remove(0)
}

/// Whether this kernel runs aarch64 executables through qemu by itself.
fn binfmt_aarch64() -> bool {
    std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|s| s.lines().next() == Some("enabled"))
}

#[test]
fn collection_sends_the_build_for_the_hosts_architecture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let collections = build_and_install(dir.path());
    let root = collections.join("ansible_collections/vrrp_lxd/ha");
    for m in MODULES {
        let shipped = root.join("libexec/aarch64").join(m);
        assert_eq!(
            std::fs::read(&shipped).unwrap_or_else(|e| panic!("{shipped:?}: {e}")),
            std::fs::read(aarch64_binary(&format!("library/{m}"))).expect("read build"),
            "{shipped:?} is not the arm64 build"
        );
        assert!(
            file_type(&root.join("plugins/modules").join(m)).contains("x86-64"),
            "plugins/modules/{m} is no longer the x86_64 build"
        );
    }
    assert_static_aarch64(&root.join("libexec/aarch64/lxd_inventory"));

    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    std::fs::write(work.join("haproxy.cfg"), SEED_CFG).expect("write haproxy.cfg");
    let mut module_args = haproxy_args(&work);
    let obj = module_args.as_object_mut().expect("object");
    obj.retain(|k, _| !k.starts_with("_ansible_"));
    let playbook = format!(
        r#"
- name: One module by FQCN on localhost
  hosts: local
  gather_facts: false
  tasks:
    - name: Backend
      {NS}.haproxy_backend: {module_args}
      check_mode: true
      diff: true
      ignore_errors: true
    - name: Architecture
      ansible.builtin.debug:
        var: ansible_architecture
"#
    );
    let no_library = dir.path().join("no-library");
    std::fs::create_dir_all(&no_library).expect("mkdir");
    let run = |name: &str, extra: Option<&str>| {
        let remote_tmp = dir.path().join(format!("remote-{name}"));
        let mut runner = Runner::localhost()
            .env("ANSIBLE_COLLECTIONS_PATH", &collections.to_string_lossy())
            .env("ANSIBLE_LIBRARY", &no_library.to_string_lossy())
            .env("ANSIBLE_KEEP_REMOTE_FILES", "1")
            .env("ANSIBLE_REMOTE_TMP", &remote_tmp.to_string_lossy());
        if let Some(arch) = extra {
            runner = runner.extra_var("ansible_architecture", arch);
        }
        let run = runner.run(&playbook);
        (run, remote_tmp)
    };

    // No facts gathered: the plugin asks the host (uname -m), runs the
    // module itself, and keeps the answer as the fact.
    let (native, remote_tmp) = run("native", None);
    native.assert_ok();
    let native_result = native.task("Backend", "localhost");
    assert_eq!(native_result["changed"], true, "{native_result}");
    assert!(native_result["failed"] != true, "{native_result}");
    assert_eq!(
        native.task("Architecture", "localhost")["ansible_architecture"],
        "x86_64",
        "the learned architecture was not kept as the fact"
    );
    let (bin, _) = kept_module(&remote_tmp, "haproxy_backend");
    assert_eq!(
        std::fs::read(&bin).expect("read kept module"),
        std::fs::read(root.join("plugins/modules/haproxy_backend")).expect("read module"),
        "an x86_64 host was not sent plugins/modules/haproxy_backend"
    );

    // The host says aarch64: it is sent the arm64 build. Without binfmt for
    // aarch64 this x86_64 kernel cannot run it, so the copy the host was given
    // is run here under qemu with the arguments Ansible wrote beside it.
    let (arm, remote_tmp) = run("aarch64", Some("aarch64"));
    let arm_result = arm.task("Backend", "localhost");
    let (bin, args) = kept_module(&remote_tmp, "haproxy_backend");
    assert_eq!(
        std::fs::read(&bin).expect("read kept module"),
        std::fs::read(aarch64_binary("library/haproxy_backend")).expect("read build"),
        "an aarch64 host was not sent the arm64 build"
    );
    assert_static_aarch64(&bin);
    if binfmt_aarch64() {
        arm.assert_ok();
        assert_eq!(arm_result["changed"], true, "{arm_result}");
        assert_eq!(arm_result["diff"], native_result["diff"], "{arm_result}");
    } else {
        let text = arm_result.to_string();
        assert!(
            arm_result["failed"] == true && text.contains("Exec format error"),
            "the arm64 build should not run natively on this x86_64 host: {arm_result}"
        );
    }
    let emulated = run_bin(&bin, true, &[args.to_str().expect("utf-8 path")]);
    let emulated = json_of("kept haproxy_backend under qemu", &emulated);
    assert_eq!(emulated["changed"], true, "{emulated}");
    assert_eq!(emulated["diff"], native_result["diff"], "{emulated}");
    assert_eq!(
        std::fs::read_to_string(work.join("haproxy.cfg")).expect("read haproxy.cfg"),
        SEED_CFG,
        "check mode changed the file"
    );

    // An architecture nothing was built for fails before anything is sent.
    let (other, _) = run("riscv64", Some("riscv64"));
    let other_result = other.task("Backend", "localhost");
    assert_eq!(other_result["failed"], true, "{other_result}");
    assert!(
        other_result["msg"]
            .as_str()
            .is_some_and(|m| m.contains("x86_64 and aarch64 only") && m.contains("riscv64")),
        "{other_result}"
    );
}
