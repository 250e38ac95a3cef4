//! A user's first hour, from the repository root: a broken inventory stops
//! Ansible with the inventory binary's own message; `ansible-doc` finds every
//! module, in `dist/library` and in the installed collection; the summary and
//! `make help` say how to put the venv on PATH; `make help` lists every target;
//! `ansible-lint` at the root lints what `make test` lints.
//!
//! Needs `make build` (the binaries and sidecar docs in `dist/`), the venv, and
//! LXD for the summary playbook (it reads the inventory).

use std::path::Path;
use std::process::{Command, Output};

use testbed::ansible::path_with_venv;
use testbed::{dist_binary, library_dir, project_root, venv_bin};

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A Makefile variable's words (`MODULES := a b c`), or the `.PHONY` targets.
fn makefile_words(name: &str) -> Vec<String> {
    let makefile = std::fs::read_to_string(project_root().join("Makefile")).expect("read Makefile");
    let mut words = vec![];
    for line in makefile.lines() {
        let Some((lhs, rhs)) = line.split_once(':') else {
            continue;
        };
        if lhs.trim() == name {
            let rhs = rhs.strip_prefix('=').unwrap_or(rhs);
            words.extend(rhs.split_whitespace().map(str::to_owned));
        }
    }
    assert!(!words.is_empty(), "no {name} in the Makefile");
    words
}

/// The module binaries `make build` installs (the Makefile's MODULES).
fn modules() -> Vec<String> {
    makefile_words("MODULES")
}

/// An Ansible tool from the repository root, as a user runs it after
/// `export PATH=/opt/vrrp-lxd/venv/bin:$PATH` (the project's ansible.cfg).
fn ansible_at_root(tool: &str) -> Command {
    let mut cmd = Command::new(venv_bin(tool));
    cmd.current_dir(project_root())
        .env("PATH", path_with_venv())
        .env_remove("ANSIBLE_CONFIG")
        .env_remove("ANSIBLE_INVENTORY")
        .env_remove("LXD_INVENTORY_CONFIG");
    cmd
}

#[test]
fn a_broken_inventory_stops_the_run_with_the_binary_message() {
    dist_binary("lxd_inventory");
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("no-lxd-here.sock");
    let url = format!("unix:{}", socket.display());
    // The binary's own line, as inventory/README.md shows it.
    let message = format!("lxd_inventory: host local: cannot reach LXD at {url}");

    let out = run(ansible_at_root("ansible-inventory")
        .arg("--graph")
        .env("LXD_INVENTORY_URL", &url));
    let stderr = text(&out.stderr);
    eprintln!("--- ansible-inventory --graph: {}\n{stderr}", out.status);
    assert!(
        !out.status.success(),
        "ansible-inventory succeeded on a broken inventory:\n{}",
        text(&out.stdout)
    );
    assert!(
        stderr.contains(&message),
        "the binary's message is not shown without -v:\n{stderr}"
    );
    assert!(
        !text(&out.stdout).contains("@all"),
        "an (empty) inventory was printed:\n{}",
        text(&out.stdout)
    );

    // A playbook stops before its first play instead of running against the
    // implicit localhost.
    let out = run(ansible_at_root("ansible-playbook")
        .arg("playbooks/summary.yml")
        .env("LXD_INVENTORY_URL", &url));
    let stderr = text(&out.stderr);
    eprintln!(
        "--- ansible-playbook playbooks/summary.yml: {}\n{stderr}",
        out.status
    );
    assert!(!out.status.success(), "{}", text(&out.stdout));
    assert!(stderr.contains(&message), "{stderr}");
    assert!(
        !text(&out.stdout).contains("PLAY ["),
        "{}",
        text(&out.stdout)
    );
}

/// For each module, how `ansible-doc -l` treated it: listed, or left out with
/// ansible-core's known complaint about reading the binary (docs/awx.md:
/// the listing reads the module file itself first and keeps that error even
/// after reading the sidecar). Anything else is a failure.
fn check_listing(what: &str, out: &Output, fqcns: &[String]) {
    let stdout = text(&out.stdout);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{what}: {}\n{stderr}", out.status);
    for fqcn in fqcns {
        let listed = stdout
            .lines()
            .any(|l| l.split_whitespace().next() == Some(fqcn.as_str()));
        let known_limit = stderr.contains(&format!("{fqcn} has a documentation formatting error"));
        eprintln!(
            "{what}: {fqcn} {}",
            if listed {
                "listed"
            } else if known_limit {
                "left out (ansible-core reads the binary; docs/awx.md)"
            } else {
                "MISSING"
            }
        );
        assert!(
            listed || known_limit,
            "{what}: {fqcn} neither listed nor reported:\n{stderr}"
        );
    }
}

/// `ansible-doc -F` (plugins with their files) names every module with its
/// binary: the listing the docs point users to.
fn check_files(what: &str, out: &Output, fqcns: &[String], dir: &Path) {
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{what}: {}", text(&out.stderr));
    for fqcn in fqcns {
        let m = fqcn.rsplit('.').next().unwrap_or(fqcn);
        let file = dir.join(m).display().to_string();
        let line = stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(fqcn.as_str()));
        assert!(
            line.is_some_and(|l| l.split_whitespace().nth(1) == Some(file.as_str())),
            "{what}: {fqcn} not listed with {file}: {line:?}"
        );
    }
}

/// Plain `ansible-doc <module>` renders the sidecar.
fn check_rendered(what: &str, out: &Output, fqcn: &str) {
    let stdout = text(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OPTIONS") && stdout.contains(".yml"),
        "{what} {fqcn}: {}\n{stdout}{}",
        out.status,
        text(&out.stderr)
    );
}

#[test]
fn ansible_doc_finds_every_module_in_dist_library() {
    let library = library_dir();
    let fqcns: Vec<String> = modules()
        .iter()
        .map(|m| {
            assert!(
                library.join(format!("{m}.yml")).is_file(),
                "{m}.yml is missing from {}: run `make build`",
                library.display()
            );
            format!("ansible.legacy.{m}")
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    // Outside the repository, so only -M names the library.
    let doc = || {
        let mut cmd = Command::new(venv_bin("ansible-doc"));
        cmd.current_dir(dir.path())
            .env("PATH", path_with_venv())
            .env_remove("ANSIBLE_CONFIG")
            .env_remove("ANSIBLE_LIBRARY")
            .arg("-M")
            .arg(&library);
        cmd
    };
    check_listing(
        "ansible-doc -l -M dist/library",
        &run(doc().arg("-l")),
        &fqcns,
    );
    check_files(
        "ansible-doc -F -M dist/library",
        &run(doc().arg("-F")),
        &fqcns,
        &library,
    );
    for m in modules() {
        check_rendered("ansible-doc -M dist/library", &run(doc().arg(&m)), &m);
    }
}

#[test]
fn ansible_doc_finds_every_module_in_the_installed_collection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("out");
    let build = run(Command::new("bash")
        .arg(project_root().join("scripts/build-collection.sh"))
        .current_dir(project_root())
        .env("COLLECTION_OUT", &out_dir)
        .env("PATH", path_with_venv()));
    assert!(
        build.status.success(),
        "scripts/build-collection.sh (run `make build` first): {}",
        text(&build.stderr)
    );
    let tarball = text(&build.stdout).trim().to_owned();
    let collections = dir.path().join("collections");
    let tool = |name: &str| {
        let mut cmd = Command::new(venv_bin(name));
        cmd.current_dir(dir.path())
            .env("PATH", path_with_venv())
            .env("ANSIBLE_COLLECTIONS_PATH", &collections)
            .env("ANSIBLE_LIBRARY", dir.path().join("no-library"))
            .env("ANSIBLE_LOCAL_TEMP", dir.path().join("ansible-local"))
            .env_remove("ANSIBLE_CONFIG");
        cmd
    };
    let install = run(tool("ansible-galaxy")
        .args(["collection", "install", "--offline", "-p"])
        .arg(&collections)
        .arg(&tarball));
    assert!(install.status.success(), "{}", text(&install.stderr));
    let plugins = collections.join("ansible_collections/vrrp_lxd/ha/plugins/modules");
    let fqcns: Vec<String> = modules()
        .iter()
        .map(|m| format!("vrrp_lxd.ha.{m}"))
        .collect();
    check_listing(
        "ansible-doc -l vrrp_lxd.ha",
        &run(tool("ansible-doc").args(["-l", "vrrp_lxd.ha"])),
        &fqcns,
    );
    check_files(
        "ansible-doc -F vrrp_lxd.ha",
        &run(tool("ansible-doc").args(["-F", "vrrp_lxd.ha"])),
        &fqcns,
        &plugins,
    );
    for fqcn in &fqcns {
        check_rendered("ansible-doc", &run(tool("ansible-doc").arg(fqcn)), fqcn);
    }
}

/// The line that puts the venv on PATH.
fn path_line() -> String {
    let bin = venv_bin("ansible-playbook");
    let dir = bin.parent().expect("venv bin").display().to_string();
    format!("export PATH={dir}:$PATH")
}

#[test]
fn the_summary_says_how_to_put_the_venv_on_path_beside_how_to_grow() {
    let out = run(ansible_at_root("ansible-playbook").arg("playbooks/summary.yml"));
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    let tools = lines
        .iter()
        .position(|l| l.contains(&path_line()))
        .unwrap_or_else(|| panic!("no {:?} in the summary:\n{stdout}", path_line()));
    let grow = lines
        .iter()
        .position(|l| l.contains("playbooks/add_web.yml") && l.contains("playbooks/add_lb.yml"))
        .unwrap_or_else(|| panic!("no add_web/add_lb line in the summary:\n{stdout}"));
    assert!(
        tools.abs_diff(grow) <= 2,
        "the PATH line is not beside the add_web/add_lb line:\n{stdout}"
    );
    // And the README's two commands say it too.
    let readme = std::fs::read_to_string(project_root().join("README.md")).expect("README");
    let two = readme
        .split("## Two commands")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("README has a Two commands section");
    assert!(
        two.contains("export PATH=/opt/vrrp-lxd/venv/bin:$PATH"),
        "{two}"
    );
}

#[test]
fn make_help_lists_every_phony_target() {
    let out = run(Command::new("make")
        .args(["-s", "help"])
        .current_dir(project_root()));
    let help = text(&out.stdout);
    assert!(out.status.success(), "{help}{}", text(&out.stderr));
    for target in makefile_words(".PHONY") {
        let shown = help.lines().any(|l| {
            l.trim_start()
                .strip_prefix("make ")
                .and_then(|rest| rest.split_whitespace().next())
                == Some(target.as_str())
        });
        assert!(shown, "make help does not list `make {target}`:\n{help}");
    }
    assert!(
        help.contains("export PATH=") && help.contains("/bin:$PATH"),
        "make help does not say how to put the venv on PATH:\n{help}"
    );
}

#[test]
fn ansible_lint_at_the_root_lints_what_make_test_lints() {
    // scripts/test.sh runs plain `ansible-lint` at the root, so the two agree.
    let test_sh = std::fs::read_to_string(project_root().join("scripts/test.sh")).expect("test.sh");
    assert!(
        test_sh.lines().any(|l| l.trim() == "ansible-lint"),
        "scripts/test.sh does not run plain `ansible-lint`"
    );
    let config: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(project_root().join(".ansible-lint")).expect(".ansible-lint"),
    )
    .expect(".ansible-lint is YAML");
    assert_eq!(config["profile"].as_str(), Some("production"));
    let excluded: Vec<&str> = config["exclude_paths"]
        .as_sequence()
        .expect("exclude_paths")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    // The AWX wrappers import the collection's playbooks, which resolve only
    // with it installed: collection.rs lints them that way.
    let linted_with_the_collection = ["awx/playbooks/"];
    for content in ["roles", "playbooks", "awx", "molecule"] {
        assert!(
            !excluded.iter().any(|e| {
                e.trim_end_matches('/') == content
                    || (e.starts_with(&format!("{content}/"))
                        && !linted_with_the_collection.contains(e))
            }),
            "{content}/ is excluded from ansible-lint: {excluded:?}"
        );
    }
    for generated in ["target", "dist"] {
        assert!(
            excluded
                .iter()
                .any(|e| e.trim_end_matches('/') == generated),
            "{generated}/ is not excluded: {excluded:?}"
        );
    }
}

#[test]
fn ansible_lint_and_syntax_checks_do_not_need_lxd() {
    // ansible.cfg sets any_unparsed_is_failed, which ansible-lint's syntax
    // check turns off again; unparsed_is_failed it would not, and the lint
    // would fail wherever LXD does not answer (or before `make build`).
    let out = run(ansible_at_root("ansible-lint")
        .args(["--nocolor", "playbooks/summary.yml"])
        .env("ANSIBLE_INVENTORY", "/nonexistent/lxd_inventory"));
    assert!(
        out.status.success(),
        "ansible-lint needs the inventory:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
}
