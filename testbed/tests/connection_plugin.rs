//! The playbooks' `lxd_api` connection plugin against a real container: a push
//! that LXD acknowledged but never wrote is pushed again when the next command
//! trips over the missing file, and nothing else is retried; a command that
//! outlives `command_timeout` fails instead of hanging the task.
//!
//! Needs the project's venv (Ansible) and LXD.

use std::process::Command;

use testbed::{project_root, venv_bin, Container};

/// Drives the plugin as Ansible does for a module (mkdtemp, put, chmod, run,
/// rm), with the first push dropped after LXD would have answered it.
const HARNESS: &str = r##"
import json, os, sys, tempfile
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

plugins, instance = sys.argv[1], sys.argv[2]
connection_loader.add_directory(plugins)
conn = connection_loader.get("lxd_api", PlayContext(), None)
conn.set_options(direct={"remote_addr": instance})
real_push = conn._push
dropped = []
def push_lost_once(path, data):
    if not dropped:
        dropped.append(path)
        return
    real_push(path, data)
conn._push = push_lost_once
real_exec = conn._exec
execs = []
def counted_exec(cmd):
    execs.append(cmd)
    return real_exec(cmd)
conn._exec = counted_exec
conn._connect()

def module_task(name, script):
    """What Ansible sends for one module: mkdtemp, two pushes, chmod, run, rm."""
    base, tmp = "/root/.ansible/tmp", "/root/.ansible/tmp/" + name
    steps = {}
    steps["mkdtemp"] = conn.exec_command(
        "/bin/sh -c '( umask 77 && mkdir -p \"` echo %s `\"&& mkdir \"` echo %s `\" && echo %s=\"` echo %s `\" ) && sleep 0'"
        % (base, tmp, name, tmp))
    steps["made"] = conn.exec_command("stat -c %a " + tmp)
    for content, target in ((script, "AnsiballZ_t"), (b"its args", "args")):
        src = tempfile.NamedTemporaryFile(delete=False)
        src.write(content)
        src.close()
        conn.put_file(src.name, tmp + "/" + target)
        os.unlink(src.name)
    del execs[:]
    steps["chmod"] = conn.exec_command("/bin/sh -c 'chmod u+rwx %s/ %s/AnsiballZ_t %s/args && sleep 0'" % (tmp, tmp, tmp))
    steps["run"] = conn.exec_command("/bin/sh -c '%s/AnsiballZ_t %s/args && sleep 0'" % (tmp, tmp))
    steps["rm"] = conn.exec_command("/bin/sh -c 'rm -f -r %s/ > /dev/null 2>&1 && sleep 0'" % tmp)
    steps["commands"] = [len(execs), "", ""]
    steps["gone"] = conn.exec_command("test -e %s; echo $?" % tmp)
    return {k: [rc, o.decode() if isinstance(o, bytes) else o, e.decode() if isinstance(e, bytes) else e]
            for k, (rc, o, e) in steps.items()}

out = {}
out["plain"] = module_task("ansible-tmp-1-2-3", b"#!/bin/sh\necho module ran with $(cat $1)\n")
out["dropped"] = dropped
# A module that leaves a file of its own in the directory: Ansible's rm removes it.
out["leaves_a_file"] = module_task("ansible-tmp-4-5-6", b"#!/bin/sh\ntouch ${1%/args}/its-own\n")
out["other_missing"] = list(conn.exec_command("chmod u+x /root/.ansible/tmp/ansible-tmp-1-2-3/never-pushed"))
out["other_missing"][1:] = [x.decode() for x in out["other_missing"][1:]]
out["unconfirmed"] = list(conn._unconfirmed_puts)

import time
conn.set_options(direct={"remote_addr": instance, "command_timeout": 2})
started = time.monotonic()
try:
    conn.exec_command("sleep 20")
    out["bounded"] = ["finished", 0]
except Exception as e:
    out["bounded"] = [str(e), time.monotonic() - started]
print(json.dumps(out))
"##;

#[test]
fn a_push_lxd_lost_is_pushed_again() {
    let c = Container::launch("t-conn");
    c.wait_booted();
    let plugins = project_root().join("playbooks/connection_plugins");
    let out = Command::new(venv_bin("python3"))
        .args(["-c", HARNESS])
        .arg(&plugins)
        .arg(&c.name)
        .output()
        .expect("running the venv's python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "harness failed: {stderr}");
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    let tmp = "/root/.ansible/tmp/ansible-tmp-1-2-3";
    assert_eq!(r["dropped"][0], format!("{tmp}/AnsiballZ_t"));
    let plain = &r["plain"];
    // Ansible reads the directory's path from the last line of mkdtemp's output.
    assert_eq!(
        plain["mkdtemp"],
        serde_json::json!([0, format!("ansible-tmp-1-2-3={tmp}\n"), ""])
    );
    assert_eq!(plain["made"], serde_json::json!([0, "700\n", ""]), "{r}");
    assert_eq!(plain["chmod"][0], 0, "{r}");
    assert_eq!(
        plain["run"],
        serde_json::json!([0, "module ran with its args\n", ""]),
        "{r}"
    );
    assert_eq!(plain["rm"][0], 0, "{r}");
    assert_eq!(plain["gone"][1], "1\n", "left behind: {r}");
    // The run, and its re-run after the re-push: no other command.
    assert_eq!(plain["commands"][0], 2, "{r}");
    let leaves = &r["leaves_a_file"];
    assert_eq!(leaves["run"][0], 0, "{r}");
    assert_eq!(leaves["gone"][1], "1\n", "left behind: {r}");
    assert_eq!(leaves["commands"][0], 2, "the run and rm: {r}");
    assert!(
        stderr.contains("but it is not there: pushing it again"),
        "{stderr}"
    );
    // A missing file the plugin never pushed is the command's own failure.
    assert_ne!(r["other_missing"][0], 0, "{r}");
    assert_eq!(
        stderr.matches("pushing it again").count(),
        1,
        "retried more than the lost push: {stderr}"
    );
    assert_eq!(r["unconfirmed"], serde_json::json!([]), "{r}");
    // A command that outlives its limit fails the task, naming both.
    let message = r["bounded"][0].as_str().unwrap_or_default();
    assert!(
        message.contains(&format!("command in {} did not finish within 2s", c.name)),
        "{r}"
    );
    let waited = r["bounded"][1].as_f64().unwrap_or(99.0);
    assert!((1.5..10.0).contains(&waited), "waited {waited} s: {r}");
}

/// Commands and files in an instance of a remote LXD over HTTPS, with the
/// client certificate and the pinned server certificate; a server that
/// presents another certificate is refused before anything is sent.
const HTTPS_HARNESS: &str = r##"
import json, os, sys, tempfile
from ansible.playbook.play_context import PlayContext
from ansible.plugins.loader import connection_loader

plugins, instance, url, fp, cert, key = sys.argv[1:7]
connection_loader.add_directory(plugins)
def connect(pin):
    conn = connection_loader.get("lxd_api", PlayContext(), None)
    conn.set_options(direct={"remote_addr": instance, "url": url, "server_cert_fingerprint": pin,
                             "client_cert": cert, "client_key": key})
    conn._connect()
    return conn

out = {}
conn = connect(fp)
out["hostname"] = conn.exec_command("hostname")[1].decode()
src = tempfile.NamedTemporaryFile(delete=False)
src.write(b"over https\n")
src.close()
conn.put_file(src.name, "/root/t-conn-https")
os.unlink(src.name)
out["cat"] = conn.exec_command("cat /root/t-conn-https")[1].decode()
wrong = fp[:-1] + ("0" if fp[-1] != "0" else "1")
try:
    connect(wrong).exec_command("touch /root/t-conn-wrong-pin")
    out["wrong_pin"] = "accepted"
except Exception as e:
    out["wrong_pin"] = str(e)
out["after_wrong_pin"] = conn.exec_command("test -e /root/t-conn-wrong-pin; echo $?")[1].decode()
print(json.dumps(out))
"##;

#[test]
#[ignore = "needs the two-host test bed: make hosts-up"]
fn two_hosts_commands_and_files_over_https_with_a_pinned_certificate() {
    let hosts = testbed::multihost::hosts();
    let host = &hosts[1];
    let inst = testbed::multihost::NestedInstance::launch(host, "t-conn-mh");
    let plugins = project_root().join("playbooks/connection_plugins");
    let out = Command::new(venv_bin("python3"))
        .args(["-c", HTTPS_HARNESS])
        .arg(&plugins)
        .args([
            &inst.name,
            &host.url,
            &host.server_cert_fingerprint,
            &host.client_cert,
            &host.client_key,
        ])
        .output()
        .expect("running the venv's python");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "harness failed: {stderr}");
    let r: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    assert_eq!(r["hostname"], format!("{}\n", inst.name), "{r}");
    assert_eq!(r["cat"], "over https\n", "{r}");
    let refused = r["wrong_pin"].as_str().unwrap_or_default();
    assert!(refused.contains("not the pinned"), "{r}");
    assert_eq!(
        r["after_wrong_pin"], "1\n",
        "a command went through a wrong pin: {r}"
    );
}
