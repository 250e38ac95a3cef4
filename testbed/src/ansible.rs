//! Real `ansible-playbook` runs of our binaries, with the results read back from
//! the JSON stdout callback.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::container::Container;
use crate::{library_dir, project_root, venv_bin};

/// One `ansible-playbook` invocation.
#[derive(Debug, Clone)]
pub struct Runner {
    /// `None`: the project's own inventory from `ansible.cfg` (the LXD binary).
    inventory: Option<String>,
    env: Vec<(String, String)>,
    args: Vec<String>,
}

/// What a run produced.
#[derive(Debug)]
pub struct Run {
    pub rc: i32,
    pub stdout: String,
    pub stderr: String,
    pub json: Value,
}

impl Runner {
    /// An inventory of containers reached through the project's `lxd_api`
    /// connection plugin (the one the playbooks use: it re-pushes a file LXD
    /// acknowledged but lost, which `lxc file push` under load can do).
    pub fn for_containers(containers: &[&Container]) -> Runner {
        let mut inv = String::from("[targets]\n");
        for c in containers {
            inv.push_str(&format!(
                "{0} ansible_connection=lxd_api ansible_lxd_host={0} ansible_python_interpreter=/usr/bin/python3 ansible_host_ip={1}\n",
                c.name, c.ipv4
            ));
        }
        Runner::with_inventory(inv)
    }

    /// The controller itself (for `lxd_instance`, which talks to the LXD API).
    pub fn localhost() -> Runner {
        Runner::with_inventory(
            "[local]\nlocalhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3\n".into(),
        )
    }

    /// Any inventory text (INI or YAML).
    pub fn with_inventory(inventory: String) -> Runner {
        Runner {
            inventory: Some(inventory),
            env: vec![],
            args: vec![],
        }
    }

    /// The project as a user runs it: `ansible.cfg` at the root, the dynamic
    /// inventory binary, `dist/library`.
    pub fn project() -> Runner {
        Runner {
            inventory: None,
            env: vec![],
            args: vec![],
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    pub fn check(self) -> Self {
        self.arg("--check")
    }

    pub fn diff(self) -> Self {
        self.arg("--diff")
    }

    pub fn extra_var(self, key: &str, value: &str) -> Self {
        self.arg("-e").arg(&format!("{key}={value}"))
    }

    /// Extra variables as one JSON object: maps, lists, numbers and booleans
    /// reach the playbook with their types, which `key=value` turns to strings.
    pub fn extra_vars(self, vars: &Value) -> Self {
        self.arg("-e").arg(&vars.to_string())
    }

    /// Runs a playbook given as YAML text.
    pub fn run(&self, playbook_yaml: &str) -> Run {
        let dir = tempfile::tempdir().expect("temp dir");
        let playbook = dir.path().join("playbook.yml");
        std::fs::write(&playbook, playbook_yaml).expect("write playbook");
        self.run_file(&playbook, Some(dir.path()))
    }

    /// Runs one of the project's `playbooks/` with `extra` variables and
    /// says how it went (rc, seconds, changed) on stderr.
    pub fn playbook(mut self, playbook: &str, extra: &[(&str, &str)]) -> Run {
        for (k, v) in extra {
            self = self.extra_var(k, v);
        }
        let started = std::time::Instant::now();
        let run = self.run_file(&project_root().join("playbooks").join(playbook), None);
        eprintln!(
            "{playbook} {extra:?}: rc {} in {:.1} s, changed {}",
            run.rc,
            started.elapsed().as_secs_f64(),
            run.changed_total()
        );
        run
    }

    /// Runs one of the scenarios in `testbed/playbooks/`, which the benchmarks
    /// run too.
    pub fn scenario(&self, playbook: &str) -> Run {
        self.run_file(&crate::scenario_playbook(playbook), None)
    }

    /// Runs a playbook file (e.g. one of `playbooks/`).
    pub fn run_file(&self, playbook: &Path, scratch: Option<&Path>) -> Run {
        let tmp;
        let scratch = match scratch {
            Some(s) => s.to_path_buf(),
            None => {
                tmp = tempfile::tempdir().expect("temp dir");
                tmp.path().to_path_buf()
            }
        };
        // A hung `lxc exec` under load must fail the test, not stall the run.
        let limit = std::env::var("VRRP_PLAYBOOK_TIMEOUT").unwrap_or_else(|_| "1500".into());
        let mut cmd = Command::new("timeout");
        cmd.args(["--kill-after=15", &limit])
            .arg(venv_bin("ansible-playbook"));
        cmd.current_dir(project_root());
        if let Some(text) = &self.inventory {
            let inventory = scratch.join("inventory.ini");
            std::fs::write(&inventory, text).expect("write inventory");
            // ansible.cfg enables only the script plugin (our binary); a test's
            // own INI/YAML inventory needs those parsers too.
            cmd.arg("-i").arg(&inventory).env(
                "ANSIBLE_INVENTORY_ENABLED",
                "ansible.builtin.script,ansible.builtin.ini,ansible.builtin.yaml",
            );
        }
        cmd.arg(playbook)
            .args(&self.args)
            .env("ANSIBLE_LIBRARY", library_dir())
            .env(
                "ANSIBLE_CONNECTION_PLUGINS",
                project_root().join("playbooks/connection_plugins"),
            )
            .env("ANSIBLE_STDOUT_CALLBACK", "ansible.posix.json")
            .env("ANSIBLE_HOST_KEY_CHECKING", "False")
            .env("ANSIBLE_RETRY_FILES_ENABLED", "False")
            .env("ANSIBLE_LOCAL_TEMP", scratch.join("ansible-local"))
            .env("PATH", path_with_venv());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run ansible-playbook (run `make up`): {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        Run {
            rc: out.status.code().unwrap_or(-1),
            stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            json,
        }
    }
}

/// PATH with the venv first, so `ansible-*` tools find each other.
pub fn path_with_venv() -> String {
    let venv: PathBuf = venv_bin("ansible");
    let venv_dir = venv
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    format!("{venv_dir}:{}", std::env::var("PATH").unwrap_or_default())
}

impl Run {
    /// Panics with the whole output unless the run succeeded.
    pub fn assert_ok(&self) -> &Self {
        assert_eq!(
            self.rc, 0,
            "ansible-playbook failed (rc {}):\n{}\n{}",
            self.rc, self.stdout, self.stderr
        );
        self
    }

    /// A converged re-run: it succeeded and changed nothing.
    pub fn assert_unchanged(&self) -> &Self {
        self.assert_ok();
        assert_eq!(
            self.changed_total(),
            0,
            "a converged re-run changed something:\n{}",
            self.stdout
        );
        self
    }

    /// Every task result as (task name, host, result).
    pub fn results(&self) -> Vec<(String, String, Value)> {
        let mut out = vec![];
        for play in self.json["plays"].as_array().into_iter().flatten() {
            for task in play["tasks"].as_array().into_iter().flatten() {
                let name = task["task"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(hosts) = task["hosts"].as_object() {
                    for (host, result) in hosts {
                        out.push((name.clone(), host.clone(), result.clone()));
                    }
                }
            }
        }
        out
    }

    /// The result of the task named `task` on `host` (the last one, if repeated).
    pub fn task(&self, task: &str, host: &str) -> Value {
        self.results()
            .into_iter()
            .rev()
            .find(|(n, h, _)| n == task && h == host)
            .map(|(_, _, r)| r)
            .unwrap_or_else(|| {
                panic!(
                    "no result for task {task:?} on {host}:\n{}\n{}",
                    self.stdout, self.stderr
                )
            })
    }

    /// The play recap for `host` (`changed`, `failures`, `ok`, ...).
    pub fn stats(&self, host: &str) -> Value {
        self.json["stats"][host].clone()
    }

    /// Number of changed tasks over all hosts.
    pub fn changed_total(&self) -> u64 {
        self.json["stats"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, s)| s["changed"].as_u64().unwrap_or(0))
            .sum()
    }
}

/// A task running `module` (`ansible.legacy.<module>`) with `args`, YAML with
/// one option per line; its failure is kept for the test to read
/// (`ignore_errors`).
pub fn module_task(module: &str, name: &str, args: &str) -> String {
    format!(
        "    - name: {name}\n      ansible.legacy.{module}:\n{}\n      ignore_errors: true\n",
        args.lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

/// A play of one task, named after `module`, running it with `args` (YAML
/// already indented for the task: 8 spaces); a failure fails the run.
pub fn module_play(module: &str, args: &str) -> String {
    format!(
        "- hosts: targets\n  gather_facts: false\n  tasks:\n    - name: {module}\n      ansible.legacy.{module}:\n{args}\n"
    )
}

/// One play of `tasks` on the `targets` group, facts not gathered.
pub fn play(name: &str, tasks: &[String]) -> String {
    format!(
        "- name: {name}\n  hosts: targets\n  gather_facts: false\n  tasks:\n{}",
        tasks.concat()
    )
}
