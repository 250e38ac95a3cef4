//! The `vrrp_lxd.ha` collection as users get it: built by
//! `scripts/build-collection.sh` from `dist/`, installed with
//! `ansible-galaxy collection install -p` into a temp path, documented by
//! `ansible-doc`, and its module, inventory plugin and playbooks run by their
//! collection names against real containers.
//!
//! Needs `make build` (module binaries, sidecar docs, `lxd_inventory`) and LXD.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testbed::ansible::{path_with_venv, Runner};
use testbed::container::lxc;
use testbed::{project_root, unique_name, venv_bin, Container, MODULES};

const NS: &str = "vrrp_lxd.ha";
const PLAYBOOKS: [&str; 4] = ["site", "add_web", "add_lb", "remove_web"];

/// The AWX inventory source's file in the project, and the variables of the
/// source (which AWX passes to a project source's sync as its environment).
const AWX_INVENTORY_FILE: &str = "awx/inventory/lxd.vrrp_lxd.yml";
const AWX_SOURCE_VARS: [(&str, &str); 1] =
    [("ANSIBLE_INVENTORY_ENABLED", "vrrp_lxd.ha.lxd_inventory")];
/// What AWX sets for every inventory sync (STANDARD_INVENTORY_UPDATE_ENV).
const AWX_SYNC_ENV: [(&str, &str); 3] = [
    ("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True"),
    ("ANSIBLE_INVENTORY_EXPORT", "True"),
    ("ANSIBLE_VERBOSE_TO_STDERR", "True"),
];
/// The wrappers AWX job templates run, one per playbook of the collection.
const AWX_WRAPPERS: &str = "awx/playbooks";

/// The collection built into and installed under a temp dir.
struct Installed {
    dir: tempfile::TempDir,
    tarball: PathBuf,
}

impl Installed {
    /// What goes into `ANSIBLE_COLLECTIONS_PATH`.
    fn collections(&self) -> PathBuf {
        self.dir.path().join("collections")
    }

    /// `.../ansible_collections/vrrp_lxd/ha`.
    fn root(&self) -> PathBuf {
        self.collections().join("ansible_collections/vrrp_lxd/ha")
    }

    /// An `ansible-*` tool that sees only this installation of the collection
    /// (and the ones bundled with Ansible), run outside the repository so its
    /// ansible.cfg and library path play no part.
    fn tool(&self, tool: &str) -> Command {
        let mut cmd = Command::new(venv_bin(tool));
        cmd.current_dir(self.dir.path())
            .env("PATH", path_with_venv())
            .env("ANSIBLE_COLLECTIONS_PATH", self.collections())
            .env("ANSIBLE_LIBRARY", self.dir.path().join("no-library"))
            .env("ANSIBLE_LOCAL_TEMP", self.dir.path().join("ansible-local"))
            .env_remove("ANSIBLE_CONFIG");
        cmd
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn assert_success(what: &str, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `scripts/build-collection.sh` with the tarball written to `out`.
fn build_collection(out: &Path) -> PathBuf {
    let script = project_root().join("scripts/build-collection.sh");
    let output = run(Command::new("bash")
        .arg(&script)
        .current_dir(project_root())
        .env("COLLECTION_OUT", out)
        .env("PATH", path_with_venv()));
    let stdout = assert_success(
        "scripts/build-collection.sh (run `make build` first)",
        &output,
    );
    let tarball = PathBuf::from(stdout.trim());
    assert!(
        tarball.is_file(),
        "the build printed {tarball:?}, which is not a file"
    );
    assert!(tarball.starts_with(out), "{tarball:?} is not under {out:?}");
    tarball
}

fn build_and_install() -> Installed {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("no-library")).expect("mkdir");
    let tarball = build_collection(&dir.path().join("out"));
    let installed = Installed { dir, tarball };
    let out = run(installed
        .tool("ansible-galaxy")
        .args(["collection", "install", "--offline", "-p"])
        .arg(installed.collections())
        .arg(&installed.tarball));
    assert_success("ansible-galaxy collection install", &out);
    assert!(
        installed.root().join("MANIFEST.json").is_file(),
        "nothing installed at {:?}",
        installed.root()
    );
    installed
}

/// A value from `ansible-inventory --list`, which may wrap strings as
/// `{"__ansible_unsafe": ...}`.
fn plain(v: &Value) -> Value {
    v.get("__ansible_unsafe")
        .cloned()
        .unwrap_or_else(|| v.clone())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// The `.yml` files of a directory of the project, as paths relative to the
/// project root, sorted.
fn project_yml_files(dir: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(project_root().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .map(|n| format!("{dir}/{n}"))
        .collect();
    files.sort();
    files
}

/// What an AWX inventory sync of the project source runs: `ansible-inventory`
/// in the project's checkout (so its ansible.cfg applies) on the source's file,
/// with the collection installed, AWX's sync settings, the source's variables
/// and the credential's environment (`env`). Returns the output.
fn awx_inventory_sync(c: &Installed, source_vars: &[(&str, &str)], env: &[(&str, &str)]) -> Output {
    let mut cmd = c.tool("ansible-inventory");
    cmd.current_dir(project_root())
        .args([
            "--list",
            "--export",
            "-i",
            AWX_INVENTORY_FILE,
            "--playbook-dir",
        ])
        .arg(
            project_root()
                .join(AWX_INVENTORY_FILE)
                .parent()
                .expect("dir"),
        );
    for (k, v) in AWX_SYNC_ENV.iter().chain(source_vars).chain(env) {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

#[test]
fn collection_builds_installs_and_documents_every_module() {
    let c = build_and_install();
    let root = c.root();

    // Same version again: the script replaces the tarball instead of failing.
    let again = build_collection(&c.dir.path().join("out"));
    assert_eq!(again, c.tarball);

    use std::os::unix::fs::PermissionsExt;
    for m in MODULES {
        let bin = root.join("plugins/modules").join(m);
        let mode = std::fs::metadata(&bin)
            .unwrap_or_else(|e| panic!("{bin:?}: {e}"))
            .permissions()
            .mode();
        assert!(
            mode & 0o111 != 0,
            "{bin:?} is not executable (mode {mode:o})"
        );
        let head = std::fs::read(&bin).expect("read module");
        assert_eq!(&head[..4], b"\x7fELF", "{bin:?} is not the static binary");
        assert!(
            root.join("plugins/modules")
                .join(format!("{m}.yml"))
                .is_file(),
            "{m}.yml sidecar missing"
        );
    }
    assert!(root.join("libexec/lxd_inventory").is_file());
    assert!(root.join("plugins/inventory/lxd_inventory.py").is_file());
    assert!(root.join("meta/runtime.yml").is_file());
    for p in PLAYBOOKS {
        assert!(
            root.join("playbooks").join(format!("{p}.yml")).is_file(),
            "playbook {p}.yml missing"
        );
    }

    // Inside the collection the roles and playbooks name the modules by FQCN.
    let mut files = vec![];
    walk(&root.join("roles"), &mut files);
    walk(&root.join("playbooks"), &mut files);
    let mut fqcn_uses = 0;
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        for m in MODULES {
            assert!(
                !text.contains(&format!("ansible.legacy.{m}")),
                "{f:?} still calls ansible.legacy.{m}"
            );
            fqcn_uses += text.matches(&format!("{NS}.{m}")).count();
        }
    }
    assert!(
        fqcn_uses >= MODULES.len(),
        "roles/playbooks call the modules by FQCN only {fqcn_uses} times"
    );

    // ansible-doc finds every module by FQCN through its sidecar.
    for m in MODULES {
        let fqcn = format!("{NS}.{m}");
        let out = run(c.tool("ansible-doc").args(["--json", &fqcn]));
        let stdout = assert_success(&format!("ansible-doc {fqcn}"), &out);
        let json: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("ansible-doc --json {fqcn}: {e}\n{stdout}"));
        let doc = &json[&fqcn]["doc"];
        assert!(
            doc["filename"].as_str().is_some_and(|f| f.starts_with(root.to_str().unwrap_or("?")) && f.ends_with(".yml")),
            "{fqcn} documented from {:?}",
            doc["filename"]
        );
        assert!(
            doc["short_description"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{fqcn}: no short_description"
        );
        assert!(
            doc["options"]
                .as_object()
                .is_some_and(|o| !o.is_empty() && o.values().all(|v| !v["description"].is_null())),
            "{fqcn}: options undocumented: {doc}"
        );
        // The plain-text rendering users see.
        let out = run(c.tool("ansible-doc").arg(&fqcn));
        let text = assert_success(&format!("ansible-doc {fqcn}"), &out);
        assert!(
            text.contains(&fqcn) && text.contains("OPTIONS"),
            "ansible-doc {fqcn}:\n{text}"
        );
    }
    let out = run(c
        .tool("ansible-doc")
        .args(["-t", "inventory", &format!("{NS}.lxd_inventory")]));
    assert_success("ansible-doc -t inventory vrrp_lxd.ha.lxd_inventory", &out);

    // Every playbook resolves by FQCN, roles included.
    for p in PLAYBOOKS {
        let fqcn = format!("{NS}.{p}");
        let out =
            run(c
                .tool("ansible-playbook")
                .args(["-i", "localhost,", "--syntax-check", &fqcn]));
        assert_success(&format!("ansible-playbook --syntax-check {fqcn}"), &out);
    }
}

#[test]
fn plugins_next_to_the_playbooks_are_collection_plugins_with_docs() {
    let c = build_and_install();
    let root = c.root();
    // Plugins next to the playbooks (playbooks/connection_plugins/x.py) are
    // collection plugins (plugins/connection/x.py), documented by FQCN.
    for dir in std::fs::read_dir(project_root().join("playbooks"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let dir_name = dir.file_name().to_string_lossy().into_owned();
        let Some(kind) = dir_name.strip_suffix("_plugins") else {
            continue;
        };
        for file in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            if path.extension().and_then(|e| e.to_str()) != Some("py") {
                continue;
            }
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                root.join("plugins")
                    .join(kind)
                    .join(format!("{stem}.py"))
                    .is_file(),
                "{path:?} not in plugins/{kind}"
            );
            let fqcn = format!("{NS}.{stem}");
            let out = run(c.tool("ansible-doc").args(["-t", kind, &fqcn]));
            assert_success(&format!("ansible-doc -t {kind} {fqcn}"), &out);
        }
        assert!(
            !root.join("playbooks").join(&dir_name).exists(),
            "playbooks/{dir_name} left in the collection"
        );
    }
}

#[test]
fn module_by_fqcn_and_inventory_plugin_against_a_container() {
    let c = build_and_install();
    let web = Container::launch("t-col");
    web.wait_booted();

    // The collection's module, and only it: the library path is an empty dir.
    let playbook = format!(
        r#"
- name: A module from the installed collection
  hosts: targets
  gather_facts: false
  tasks:
    - name: Site by FQCN
      {NS}.apache_site:
        name: t-col
        port: 8081
        index_content: "served by {NS}.apache_site on {{{{ inventory_hostname }}}}\n"
"#
    );
    let runner = Runner::for_containers(&[&web])
        .env(
            "ANSIBLE_COLLECTIONS_PATH",
            &c.collections().to_string_lossy(),
        )
        .env(
            "ANSIBLE_LIBRARY",
            &c.dir.path().join("no-library").to_string_lossy(),
        )
        .env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini");
    let first = runner.run(&playbook);
    first.assert_ok();
    let result = first.task("Site by FQCN", &web.name);
    assert_eq!(
        result["changed"], true,
        "first run did not change anything: {result}"
    );
    let page = web.sh("curl -fsS http://127.0.0.1:8081/");
    assert!(
        page.contains(&format!("served by {NS}.apache_site on {}", web.name)),
        "page: {page}"
    );

    let second = runner.run(&playbook);
    second.assert_ok();
    let result = second.task("Site by FQCN", &web.name);
    assert_eq!(
        result["changed"], false,
        "second run changed again: {result}"
    );

    // Without the collection the same FQCN is not found: the run above used it.
    let none = tempfile::tempdir().expect("temp dir");
    let missing = Runner::for_containers(&[&web])
        .env("ANSIBLE_COLLECTIONS_PATH", &none.path().to_string_lossy())
        .env(
            "ANSIBLE_LIBRARY",
            &c.dir.path().join("no-library").to_string_lossy(),
        )
        .env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.ini")
        .run(&playbook);
    assert_ne!(
        missing.rc, 0,
        "the playbook ran without the collection installed:\n{}",
        missing.stdout
    );

    // The inventory plugin runs the bundled binary and lists the container with
    // its DHCP address and the lxd connection.
    let inv = c.dir.path().join("local.vrrp_lxd.yml");
    std::fs::write(&inv, format!("plugin: {NS}.lxd_inventory\n")).expect("write inventory");
    let out = run(c
        .tool("ansible-inventory")
        .env("ANSIBLE_INVENTORY_ENABLED", format!("{NS}.lxd_inventory"))
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "true")
        .arg("-i")
        .arg(&inv)
        .arg("--list"));
    let stdout = assert_success("ansible-inventory with vrrp_lxd.ha.lxd_inventory", &out);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ansible-inventory: {e}\n{stdout}"));
    let hv = &json["_meta"]["hostvars"][&web.name];
    assert_eq!(
        plain(&hv["ansible_host"]),
        Value::from(web.ipv4.to_string()),
        "hostvars of {}: {hv}",
        web.name
    );
    assert_eq!(
        plain(&hv["ansible_connection"]),
        Value::from("community.general.lxd"),
        "hostvars: {hv}"
    );

    // With connection: ssh the plugin's choice also wins over the collection
    // playbooks' group_vars (which pick an LXD connection for the `lxd` group).
    let ssh_inv = c.dir.path().join("ssh.vrrp_lxd.yml");
    std::fs::write(
        &ssh_inv,
        format!("plugin: {NS}.lxd_inventory\nconnection: ssh\nssh_user: root\n"),
    )
    .expect("write inventory");
    let out = run(c
        .tool("ansible")
        .env("ANSIBLE_INVENTORY_ENABLED", format!("{NS}.lxd_inventory"))
        .arg("-i")
        .arg(&ssh_inv)
        .arg("--playbook-dir")
        .arg(c.root().join("playbooks"))
        .arg(&web.name)
        .args([
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ ansible_connection }}/{{ ansible_user }}",
        ]));
    let stdout = assert_success("ansible with connection: ssh", &out);
    assert!(stdout.contains("\"msg\": \"ssh/root\""), "{stdout}");
}

/// Deletes every instance whose name starts with the prefix, also when the
/// test fails half way (unless KEEP=1).
struct Topology {
    prefix: String,
}

impl Topology {
    fn instances(&self) -> Vec<String> {
        let out = lxc(&["list", "--format", "csv", "-c", "n"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|n| n.starts_with(&self.prefix))
            .map(String::from)
            .collect()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        if testbed::keep() {
            eprintln!("KEEP=1: leaving the instances {}*", self.prefix);
            return;
        }
        for name in self.instances() {
            let _ = lxc(&["delete", "-f", &name]);
        }
    }
}

#[test]
fn site_by_fqcn_deploys_a_topology() {
    let c = build_and_install();
    // Instances t-col-<pid>-<n>-lb-01, -lb-02 and -web-01 (two LBs: the VIP has
    // somewhere to move); VIP and VRID from the range left free for static use.
    let topo = Topology {
        prefix: format!("{}-", unique_name("t-col")),
    };
    let (vip, vrid) = ("10.231.0.61", "161");

    let inv = c.dir.path().join("topology.vrrp_lxd.yml");
    std::fs::write(&inv, format!("plugin: {NS}.lxd_inventory\n")).expect("write inventory");
    let out = run(c
        .tool("ansible-playbook")
        .env("ANSIBLE_INVENTORY_ENABLED", format!("{NS}.lxd_inventory"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_FORKS", "10")
        // A hung `lxc exec` (seen on a loaded host) fails the task instead of the
        // whole test waiting forever.
        .env("ANSIBLE_TASK_TIMEOUT", "600")
        .arg("-i")
        .arg(&inv)
        .arg(format!("{NS}.site"))
        .args(["-e", &format!("vrrp_prefix={}", topo.prefix)])
        .args(["-e", "lb_count=2", "-e", "web_count=1"])
        .args([
            "-e",
            &format!("vrrp_vip={vip}"),
            "-e",
            &format!("vrrp_vrid={vrid}"),
        ])
        .args([
            "-e",
            &format!(
                "vrrp_credentials_dir={}",
                c.dir.path().join("credentials").display()
            ),
        ]));
    assert_success(&format!("ansible-playbook {NS}.site"), &out);

    let mut names = topo.instances();
    names.sort();
    let lb = format!("{}lb-01", topo.prefix);
    let web = format!("{}web-01", topo.prefix);
    assert_eq!(
        names,
        vec![lb.clone(), format!("{}lb-02", topo.prefix), web.clone()],
        "instances after site.yml"
    );

    // Through the VIP (from inside the bridge) HAProxy answers with the web node's page.
    let out = lxc(&[
        "exec",
        &lb,
        "--",
        "curl",
        "-fsS",
        "--max-time",
        "5",
        &format!("http://{vip}/"),
    ]);
    let page = assert_success(&format!("curl http://{vip}/ on {lb}"), &out);
    assert!(
        page.contains(&web),
        "the page through the VIP does not name {web}: {page}"
    );
}

#[test]
fn execution_environment_context_holds_the_binaries_and_the_collection() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The EE file names its files relative to itself (../dist/...): give it a
    // dist/ with the real binaries and a freshly built collection.
    let awx = dir.path().join("awx");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(&awx).expect("mkdir");
    std::fs::create_dir_all(dist.join("bin")).expect("mkdir");
    std::fs::copy(
        project_root().join("awx/execution-environment.yml"),
        awx.join("execution-environment.yml"),
    )
    .expect("copy EE file");
    std::fs::create_dir_all(awx.join("collections")).expect("mkdir");
    std::fs::copy(
        project_root().join("awx/collections/requirements.yml"),
        awx.join("collections/requirements.yml"),
    )
    .expect("copy requirements");
    std::os::unix::fs::symlink(testbed::library_dir(), dist.join("library"))
        .expect("symlink library");
    std::os::unix::fs::symlink(
        testbed::dist_binary("lxd_inventory"),
        dist.join("bin/lxd_inventory"),
    )
    .expect("symlink inventory");
    let tarball = build_collection(&dist);

    let context = dir.path().join("context");
    let out = run(Command::new(venv_bin("ansible-builder"))
        .current_dir(dir.path())
        .env("PATH", path_with_venv())
        .args(["create", "-f", "awx/execution-environment.yml", "--context"])
        .arg(&context));
    let log = assert_success("ansible-builder create", &out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A file missing from additional_build_files is only a warning: look for each.
    assert!(
        !log.contains("No matches") && !stderr.contains("No matches"),
        "ansible-builder: {log}{stderr}"
    );
    let build = context.join("_build/vrrp_lxd");
    for m in MODULES {
        assert!(
            build.join("library").join(m).is_file(),
            "{m} not in the build context"
        );
        assert!(
            build.join("library").join(format!("{m}.yml")).is_file(),
            "{m}.yml not in the build context"
        );
    }
    assert!(build.join("bin/lxd_inventory").is_file());
    // The collection's own requirements, from awx/collections/requirements.yml.
    let requirements = std::fs::read_to_string(context.join("_build/requirements.yml"))
        .unwrap_or_else(|e| panic!("no Galaxy requirements in the build context: {e}"));
    assert!(requirements.contains("community.general"), "{requirements}");
    let name = tarball.file_name().expect("tarball name");
    assert!(
        build.join("collection").join(name).is_file(),
        "collection tarball not in the build context"
    );
    let containerfile = ["Containerfile", "Dockerfile"]
        .iter()
        .map(|f| context.join(f))
        .find(|p| p.is_file())
        .expect("no Containerfile/Dockerfile in the context");
    let text = std::fs::read_to_string(containerfile).expect("read Containerfile");
    assert!(
        text.contains("ENV ANSIBLE_LIBRARY=/usr/share/ansible/plugins/modules"),
        "{text}"
    );
    assert!(
        text.contains("ansible-galaxy collection install --offline"),
        "{text}"
    );
}

#[test]
fn awx_configuration_lints_clean_and_parses() {
    let out = run(Command::new(venv_bin("ansible-lint"))
        .current_dir(project_root())
        .env("PATH", path_with_venv())
        .args(["--profile", "production", "--offline", "--nocolor", "awx"]));
    assert_success("ansible-lint --profile production awx", &out);

    let out = run(Command::new(venv_bin("ansible-playbook"))
        .current_dir(project_root())
        .env("PATH", path_with_venv())
        .args(["--syntax-check", "awx/configure.yml"]));
    assert_success("ansible-playbook --syntax-check awx/configure.yml", &out);
}

#[test]
fn awx_wrappers_import_playbooks_of_the_installed_collection() {
    let c = build_and_install();
    let wrappers = project_yml_files(AWX_WRAPPERS);
    assert!(!wrappers.is_empty(), "no wrappers in {AWX_WRAPPERS}");
    // As a job runs one: in the project's checkout (its ansible.cfg read), the
    // collection found only where it is installed.
    let syntax_check = |playbook: &Path| {
        run(c
            .tool("ansible-playbook")
            .current_dir(project_root())
            .env("ANSIBLE_INVENTORY_ENABLED", "ansible.builtin.host_list")
            .args(["-i", "localhost,", "--syntax-check"])
            .arg(playbook))
    };
    for w in &wrappers {
        let text = std::fs::read_to_string(project_root().join(w)).expect("read wrapper");
        assert!(
            text.contains(&format!("import_playbook: {NS}.")),
            "{w} does not import a playbook of {NS}:\n{text}"
        );
        let out = syntax_check(&project_root().join(w));
        assert_success(&format!("ansible-playbook --syntax-check {w}"), &out);
    }
    // The check has teeth: a playbook the collection lacks fails it.
    let missing = c.dir.path().join("missing.yml");
    std::fs::write(
        &missing,
        format!("---\n- name: Missing\n  import_playbook: {NS}.no_such_playbook\n"),
    )
    .expect("write");
    let out = syntax_check(&missing);
    assert!(
        !out.status.success(),
        "a wrapper of {NS}.no_such_playbook passed the syntax check"
    );

    // ansible-lint, which leaves them out of the repository-wide run (they
    // need the collection): on a copy, outside the repository and its
    // .ansible-lint, with the collection installed.
    let lint = c.dir.path().join("lint");
    std::fs::create_dir_all(lint.join(AWX_WRAPPERS)).expect("mkdir");
    for w in &wrappers {
        std::fs::copy(project_root().join(w), lint.join(w)).expect("copy wrapper");
    }
    let out = run(c.tool("ansible-lint").current_dir(&lint).args([
        "--profile",
        "production",
        "--offline",
        "--nocolor",
        AWX_WRAPPERS,
    ]));
    assert_success("ansible-lint --profile production awx/playbooks", &out);
}

/// `awx/tests/fake_awx.py` on a free loopback port, stopped on drop.
struct FakeAwx {
    child: std::process::Child,
    url: String,
}

impl FakeAwx {
    fn start(dir: &Path) -> FakeAwx {
        let port_file = dir.join("fake-awx.port");
        let child = Command::new(venv_bin("python"))
            .arg(project_root().join("awx/tests/fake_awx.py"))
            .arg(&port_file)
            .arg(project_root())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start awx/tests/fake_awx.py: {e}"));
        let mut fake = FakeAwx {
            child,
            url: String::new(),
        };
        let start = std::time::Instant::now();
        while fake.url.is_empty() {
            if let Ok(port) = std::fs::read_to_string(&port_file) {
                if !port.trim().is_empty() {
                    fake.url = format!("http://127.0.0.1:{}", port.trim());
                }
            }
            assert!(start.elapsed().as_secs() < 20, "fake AWX did not start");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        fake
    }

    fn dump(&self) -> Value {
        let out = run(Command::new("curl").args([
            "-fsS",
            "--max-time",
            "10",
            &format!("{}/_dump", self.url),
        ]));
        let body = assert_success("GET /_dump", &out);
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("dump: {e}\n{body}"))
    }
}

impl Drop for FakeAwx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `awx/configure.yml` against the fake API; returns the play recap of localhost.
fn configure(fake: &FakeAwx, dir: &Path, extra: &[String]) -> Value {
    let mut cmd = Command::new(venv_bin("ansible-playbook"));
    cmd.current_dir(project_root())
        .env("PATH", path_with_venv())
        .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-local"))
        .arg("awx/configure.yml")
        .args(["-e", &format!("controller_host={}", fake.url)])
        .args([
            "-e",
            "controller_username=admin",
            "-e",
            "controller_password=not-a-secret",
        ])
        .args(["-e", "awx_ssh_public_key='ssh-ed25519 AAAAC3Nza test'"]);
    for e in extra {
        cmd.args(["-e", e]);
    }
    let out = run(&mut cmd);
    let stdout = assert_success("ansible-playbook awx/configure.yml", &out);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("configure.yml output: {e}\n{stdout}"));
    json["stats"]["localhost"].clone()
}

fn by_name<'a>(dump: &'a Value, resource: &str, name: &str) -> &'a Value {
    dump[resource]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|i| i["name"] == name || i["identifier"] == name)
        })
        .unwrap_or_else(|| panic!("no {resource} named {name:?} in {}", dump[resource]))
}

#[test]
fn awx_configuration_loads_into_an_awx_api_and_runs_again_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fake = FakeAwx::start(dir.path());
    let files: Vec<(&str, &str)> = vec![
        (
            "awx_lxd_client_cert_file",
            "-----BEGIN CERTIFICATE-----\nclient\n-----END CERTIFICATE-----\n",
        ),
        (
            "awx_lxd_client_key_file",
            "-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n",
        ),
        (
            "awx_lxd_server_cert_file",
            "-----BEGIN CERTIFICATE-----\nserver\n-----END CERTIFICATE-----\n",
        ),
        (
            "awx_ssh_private_key_file",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nssh\n-----END OPENSSH PRIVATE KEY-----\n",
        ),
    ];
    let mut extra = vec!["awx_lxd_url=https://10.231.0.1:8443".to_string()];
    for (var, content) in &files {
        let path = dir.path().join(var);
        std::fs::write(&path, content).expect("write secret file");
        extra.push(format!("{var}={}", path.display()));
    }

    let first = configure(&fake, dir.path(), &extra);
    assert_eq!(first["failures"], 0, "{first}");
    assert!(
        first["changed"].as_u64().unwrap_or(0) >= 11,
        "first run: {first}"
    );
    // Without the secret files the credentials are left as they are, and
    // nothing else changes either.
    let second = configure(&fake, dir.path(), &[]);
    assert_eq!(
        second["changed"], 0,
        "second run changed something: {second}"
    );

    let d = fake.dump();
    let lxd_type = by_name(&d, "credential_types", "LXD client certificate");
    assert_eq!(lxd_type["kind"], "cloud");
    // AWX's own templates reach AWX untouched.
    assert_eq!(
        lxd_type["injectors"]["env"]["LXD_INVENTORY_CLIENT_CERT"],
        "{{ tower.filename.client_cert }}"
    );
    assert_eq!(
        lxd_type["injectors"]["extra_vars"]["lxd_host_client_key"],
        "{{ tower.filename.client_key }}"
    );
    let lxd = by_name(&d, "credentials", "vrrp-lxd LXD");
    assert_eq!(lxd["inputs"]["client_key"], "$encrypted$");
    assert!(lxd["inputs"]["client_cert"]
        .as_str()
        .is_some_and(|c| c.contains("client")));

    // The collection's inventory plugin on a file of the project, enabled by
    // the source's variables (the environment of the sync).
    let source = by_name(&d, "inventory_sources", "vrrp-lxd LXD instances");
    assert_eq!(source["source"], "scm");
    assert_eq!(source["credential"], lxd["id"]);
    assert_eq!(source["source_path"], AWX_INVENTORY_FILE);
    let source_vars: Value = match &source["source_vars"] {
        Value::String(text) => {
            serde_json::from_str(text).unwrap_or_else(|e| panic!("source_vars {text:?}: {e}"))
        }
        other => other.clone(),
    };
    assert_eq!(
        source_vars,
        Value::Object(
            AWX_SOURCE_VARS
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect()
        ),
        "source_vars"
    );
    let text = std::fs::read_to_string(project_root().join(AWX_INVENTORY_FILE))
        .unwrap_or_else(|e| panic!("{AWX_INVENTORY_FILE}: {e}"));
    let file: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{AWX_INVENTORY_FILE}: {e}"));
    for (key, want) in [
        ("plugin", "vrrp_lxd.ha.lxd_inventory"),
        ("connection", "ssh"),
        ("ssh_user", "root"),
    ] {
        assert_eq!(
            file[key].as_str(),
            Some(want),
            "{AWX_INVENTORY_FILE}: {key}"
        );
    }

    let credentials: Vec<Value> = [
        "vrrp-lxd LXD",
        "vrrp-lxd instances (SSH)",
        "vrrp-lxd HAProxy stats",
    ]
    .iter()
    .map(|n| by_name(&d, "credentials", n)["id"].clone())
    .collect();
    let jts = d["job_templates"].as_array().expect("job templates");
    let playbooks: Vec<&str> = jts.iter().filter_map(|j| j["playbook"].as_str()).collect();
    assert_eq!(
        playbooks,
        [
            "awx/playbooks/site.yml",
            "awx/playbooks/add_web.yml",
            "awx/playbooks/add_lb.yml",
            "awx/playbooks/remove_web.yml",
            "awx/playbooks/rolling_restart_web.yml",
            "awx/playbooks/teardown.yml",
        ]
    );
    // Every wrapper is some template's (the fake, like AWX, refused any
    // playbook it would not list for the project).
    let mut sorted = playbooks.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, project_yml_files(AWX_WRAPPERS), "wrappers");
    for jt in jts {
        let playbook = jt["playbook"].as_str().unwrap_or("?");
        assert!(
            project_root().join(playbook).is_file(),
            "{playbook} is not in the repository"
        );
        let linked = &d["_associations"][format!("job_templates/{}/credentials", jt["id"])];
        for c in &credentials {
            assert!(
                linked.as_array().is_some_and(|l| l.contains(c)),
                "{playbook}: credential {c} not attached: {linked}"
            );
        }
        let survey = &d["_surveys"][format!("job_templates/{}", jt["id"])];
        if playbook.ends_with("/rolling_restart_web.yml") || playbook.ends_with("/teardown.yml") {
            // Nothing to ask (the VIP is not written there): no survey.
            assert_eq!(jt["survey_enabled"], false, "{playbook}: {jt}");
            assert!(survey.is_null(), "{playbook}: survey {survey}");
        } else {
            assert_eq!(jt["survey_enabled"], true, "{playbook}: {jt}");
        }
        let vars: Vec<&str> = survey["spec"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|q| q["variable"].as_str())
            .collect();
        assert!(
            survey.is_null() || vars.contains(&"vrrp_vip"),
            "{playbook}: survey {survey}"
        );
        if playbook.ends_with("/site.yml") {
            assert_eq!(
                vars,
                ["lb_count", "web_count", "vrrp_vip"],
                "site.yml survey"
            );
        }
        assert!(
            jt["extra_vars"]
                .as_str()
                .is_some_and(|e| e.contains("ssh-ed25519 AAAAC3Nza test")),
            "{jt}"
        );
    }

    // sync -> add_web -> sync -> converge
    let node = |id: &str| by_name(&d, "workflow_job_template_nodes", id);
    let chain = ["sync-before", "add-web", "sync-after", "converge"];
    for pair in chain.windows(2) {
        let next = &d["_associations"][format!(
            "workflow_job_template_nodes/{}/success_nodes",
            node(pair[0])["id"]
        )];
        assert_eq!(
            next,
            &serde_json::json!([node(pair[1])["id"]]),
            "{} -> {}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(node("sync-before")["unified_job_template"], source["id"]);
    assert_eq!(
        node("add-web")["unified_job_template"],
        by_name(
            &d,
            "job_templates",
            "vrrp-lxd: add a web node (add_web.yml)"
        )["id"]
    );
    assert_eq!(
        node("converge")["unified_job_template"],
        by_name(&d, "job_templates", "vrrp-lxd: converge (site.yml)")["id"]
    );

    // A sync of that source as AWX runs it, with the source's variables as
    // they reached AWX and the LXD credential's environment. The collection's
    // binary is replaced by a stand-in that lists one host and shows the
    // settings it was given, so no LXD is needed (the test below runs the real one).
    let c = build_and_install();
    std::fs::write(
        c.root().join("libexec/lxd_inventory"),
        format!(
            r#"#!{}
import json, os, sys
if sys.argv[1:] != ["--list"]:
    sys.exit("stand-in: only --list")
env = {{k: v for k, v in os.environ.items() if k.startswith("LXD_INVENTORY_")}}
# As lxd_inventory does: the connection variables on the group of every instance.
if env.get("LXD_INVENTORY_CONNECTION") == "ssh":
    gvars = {{"ansible_connection": "ssh", "ansible_user": env.get("LXD_INVENTORY_SSH_USER")}}
else:
    gvars = {{"ansible_connection": "lxd_api"}}
print(json.dumps({{
    "_meta": {{"hostvars": {{"web-01": {{"ansible_host": "192.0.2.10", "stand_in_env": env}}}}}},
    "all": {{"children": ["lxd", "web"]}},
    "lxd": {{"hosts": ["web-01"], "vars": gvars}},
    "web": {{"hosts": ["web-01"]}},
}}))
"#,
            venv_bin("python").display()
        ),
    )
    .expect("write stand-in binary");
    let vars: Vec<(String, String)> = source_vars
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let credential_env = [
        ("LXD_INVENTORY_URL", "https://10.231.0.1:8443"),
        ("LXD_INVENTORY_CLIENT_CERT", "/runner/env/tmp-client-cert"),
    ];
    let out = awx_inventory_sync(&c, &vars, &credential_env);
    let stdout = assert_success("the inventory sync", &out);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ansible-inventory: {e}\n{stdout}"));
    let hv = &json["_meta"]["hostvars"]["web-01"];
    assert_eq!(plain(&hv["ansible_connection"]), Value::from("ssh"), "{hv}");
    assert_eq!(plain(&hv["ansible_user"]), Value::from("root"), "{hv}");
    let seen = &hv["stand_in_env"];
    for (k, v) in credential_env.iter().chain(&[
        ("LXD_INVENTORY_CONNECTION", "ssh"),
        ("LXD_INVENTORY_SSH_USER", "root"),
    ]) {
        assert_eq!(plain(&seen[k]), Value::from(*v), "{k}: {hv}");
    }
    // Without the source's variables the project's ansible.cfg (script plugin
    // only) leaves the file unparsed, which fails the sync.
    let out = awx_inventory_sync(&c, &[], &credential_env);
    assert!(
        !out.status.success(),
        "the sync succeeded without the source's variables:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // What a job then sees: the plugin's choice over the collection playbooks'
    // group_vars (which pick lxd_api for the `lxd` group).
    assert_eq!(
        awx_host_connection(&c, "web-01", &vars),
        "ssh/root/192.0.2.10"
    );
}

/// `ansible_connection/ansible_user/ansible_host` of a host from the AWX inventory file,
/// with the collection playbooks' group_vars loaded, as a job sees them.
fn awx_host_connection(c: &Installed, host: &str, source_vars: &[(&str, &str)]) -> String {
    let mut cmd = c.tool("ansible");
    cmd.current_dir(project_root())
        .args(["-i", AWX_INVENTORY_FILE, "--playbook-dir"])
        .arg(c.root().join("playbooks"))
        .arg(host)
        .args([
            "-m",
            "ansible.builtin.debug",
            "-a",
            "msg={{ ansible_connection }}/{{ ansible_user }}/{{ ansible_host }}",
        ]);
    for (k, v) in source_vars {
        cmd.env(k, v);
    }
    let out = run(&mut cmd);
    let stdout = assert_success(&format!("ansible {host} -m debug"), &out);
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix("\"msg\": \""))
        .and_then(|m| m.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no msg in: {stdout}"))
        .to_string()
}

#[test]
fn awx_inventory_source_reaches_instances_over_ssh_over_playbook_group_vars() {
    let c = build_and_install();
    let instance = Container::launch("t-col");
    // What an AWX inventory sync runs, with the collection's binary on the
    // local LXD; then what a job sees for the instance with the collection
    // playbooks' group_vars loaded.
    let out = awx_inventory_sync(&c, &AWX_SOURCE_VARS, &[]);
    let stdout = assert_success("the inventory sync", &out);
    let json: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("ansible-inventory: {e}\n{stdout}"));
    let hv = &json["_meta"]["hostvars"][&instance.name];
    assert_eq!(plain(&hv["ansible_connection"]), Value::from("ssh"), "{hv}");
    assert_eq!(plain(&hv["ansible_user"]), Value::from("root"), "{hv}");
    assert_eq!(
        plain(&hv["ansible_host"]),
        Value::from(instance.ipv4.to_string()),
        "{hv}"
    );
    assert_eq!(
        awx_host_connection(&c, &instance.name, &AWX_SOURCE_VARS),
        format!("ssh/root/{}", instance.ipv4)
    );
}
