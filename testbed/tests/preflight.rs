//! `scripts/preflight.sh`, the host check at the start of `make setup`, `make up`
//! and `make test`: each problem is one line on stderr that says what is wrong
//! and what to do, and the exit code is non-zero. Run as a user who is not
//! root, with no Rust on PATH, with a Rust that is too old, on systems other
//! than Debian 12/13, on a filesystem that is too small, and against an LXD
//! that is not there or does not answer.
//!
//! Needs `lxc` (the host prepared by `make setup`); the small-filesystem test
//! needs root (it mounts a tmpfs) and says so when it cannot run.

use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use testbed::project_root;

fn script() -> PathBuf {
    project_root().join("scripts/preflight.sh")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `preflight.sh ARGS` with a clean environment: only what is given here.
fn preflight(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs it, prints what it said (so `--nocapture` shows the messages) and
/// checks the form: every stderr line is one `preflight: ...` line.
fn run(what: &str, cmd: &mut Command) -> (Output, Vec<String>) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("--- {what}: {}\n{stderr}", out.status);
    let lines: Vec<String> = stderr.lines().map(str::to_owned).collect();
    for l in &lines {
        assert!(
            l.starts_with("preflight: "),
            "{what}: a line that is not a preflight message: {l:?}\n{stderr}"
        );
    }
    (out, lines)
}

fn line_with<'a>(lines: &'a [String], needle: &str) -> Option<&'a String> {
    lines.iter().find(|l| l.contains(needle))
}

fn assert_failed_with(what: &str, out: &Output, lines: &[String], needles: &[&str]) {
    assert!(!out.status.success(), "{what}: preflight passed: {lines:?}");
    let Some(line) = line_with(lines, needles[0]) else {
        panic!("{what}: no line with {:?} in {lines:#?}", needles[0]);
    };
    for n in &needles[1..] {
        assert!(line.contains(n), "{what}: {n:?} missing from {line:?}");
    }
}

/// A PATH directory with every command of the system directories except Rust's
/// (`cargo`, `rustc`, `rustup`), so that the result does not depend on whether
/// this machine has Debian's rustc.
fn path_without_rust(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir bin");
    for sys in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        for entry in std::fs::read_dir(sys).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let s = name.to_string_lossy();
            if ["cargo", "rustc", "rustup"].contains(&s.as_ref()) || bin.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
        }
    }
    bin
}

fn os_release(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write os-release");
    p.display().to_string()
}

const DEBIAN_12: &str =
    "ID=debian\nVERSION_ID=\"12\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n";
const DEBIAN_13: &str =
    "ID=debian\nVERSION_ID=\"13\"\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n";

/// The workspace's `rust-version`, which the script reads from Cargo.toml.
fn rust_version() -> String {
    let toml = std::fs::read_to_string(project_root().join("Cargo.toml")).expect("Cargo.toml");
    toml.lines()
        .find_map(|l| l.trim().strip_prefix("rust-version"))
        .and_then(|l| l.split('"').nth(1))
        .expect("rust-version in Cargo.toml")
        .to_owned()
}

/// The script, the settings it sources and Cargo.toml, copied where any user
/// can read them (the checkout may be under a home only root can enter).
fn world_readable_copy(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let root = dir.join("checkout");
    std::fs::create_dir_all(root.join("scripts")).expect("mkdir");
    for f in ["scripts/preflight.sh", "scripts/env.sh", "Cargo.toml"] {
        std::fs::copy(project_root().join(f), root.join(f)).expect("copy");
    }
    for d in [dir, &root, &root.join("scripts")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    root.join("scripts/preflight.sh")
}

#[test]
fn a_user_who_is_not_root_is_told_to_use_sudo() {
    let path = "/usr/sbin:/usr/bin:/sbin:/bin";
    let dir = tempfile::tempdir().expect("tempdir");
    let copy = world_readable_copy(dir.path());
    let mut cmd = if is_root() {
        // nobody, with no groups: what `make up` without sudo looks like.
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "bash",
        ])
        .arg(&copy)
        .args(["host", "up"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/nonexistent");
        c
    } else {
        preflight(&["host", "up"], &[("PATH", path), ("HOME", "/nonexistent")])
    };
    let (out, lines) = run("not root", &mut cmd);
    assert_failed_with(
        "not root",
        &out,
        &lines,
        &["preflight: run as root", "sudo make up"],
    );

    // The LXD check as that user: the socket is root's.
    if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "bash",
        ])
        .arg(&copy)
        .args(["lxd", "test"])
        .env_clear()
        .env("PATH", path)
        .env("HOME", "/nonexistent");
        let (out, lines) = run("LXD as nobody", &mut c);
        assert_failed_with(
            "LXD as nobody",
            &out,
            &lines,
            &[
                "preflight: no permission to use LXD's socket",
                "sudo make test",
            ],
        );
    }
}

#[test]
fn without_rust_it_says_what_to_install_for_this_debian() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = path_without_rust(dir.path());
    let path = bin.display().to_string();
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir home");
    let home = home.display().to_string();

    // Debian 12: no rustup package, its rustc too old: rustup.rs, online.
    let d12 = os_release(dir.path(), "d12", DEBIAN_12);
    let (out, lines) = run(
        "no Rust, Debian 12",
        &mut preflight(
            &["host", "up"],
            &[("PATH", &path), ("HOME", &home), ("VRRP_OS_RELEASE", &d12)],
        ),
    );
    assert_failed_with(
        "no Rust, Debian 12",
        &out,
        &lines,
        &[
            "preflight: no Rust toolchain",
            &format!("Rust >= {}", rust_version()),
            "x86_64-unknown-linux-musl",
            "Debian 12 has no rustup package",
            "https://sh.rustup.rs",
            "needs the internet",
        ],
    );

    // Debian 13 packages rustup.
    let d13 = os_release(dir.path(), "d13", DEBIAN_13);
    let (out, lines) = run(
        "no Rust, Debian 13",
        &mut preflight(
            &["host", "up"],
            &[("PATH", &path), ("HOME", &home), ("VRRP_OS_RELEASE", &d13)],
        ),
    );
    assert_failed_with(
        "no Rust, Debian 13",
        &out,
        &lines,
        &[
            "preflight: no Rust toolchain",
            "apt-get install rustup && rustup default stable",
        ],
    );
    assert!(
        line_with(&lines, "Debian GNU/Linux 13").is_none(),
        "Debian 13 is supported, yet: {lines:?}"
    );
}

#[test]
fn a_rustc_older_than_the_workspace_needs_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = path_without_rust(dir.path());
    // Debian 12's own rustc, as `rustc --version` prints it.
    let rustc = bin.join("rustc");
    std::fs::write(
        &rustc,
        "#!/bin/sh\ncase \"$1\" in --version) echo 'rustc 1.63.0';; --print) echo /usr;; esac\n",
    )
    .expect("write rustc");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let d12 = os_release(dir.path(), "d12", DEBIAN_12);
    let home = dir.path().display().to_string();
    let (out, lines) = run(
        "old rustc",
        &mut preflight(
            &["host", "up"],
            &[
                ("PATH", &bin.display().to_string()),
                ("HOME", &home),
                ("VRRP_OS_RELEASE", &d12),
            ],
        ),
    );
    assert_failed_with(
        "old rustc",
        &out,
        &lines,
        &[
            "preflight: Rust 1.63.0",
            &rustc.display().to_string(),
            &format!("older than the {}", rust_version()),
            "rust-version in Cargo.toml",
            "no rustup",
            "https://sh.rustup.rs",
        ],
    );
}

#[test]
fn systems_other_than_debian_12_and_13() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();

    // Another apt system: a warning, and the check carries on.
    let ubuntu = os_release(
        dir.path(),
        "ubuntu",
        "ID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n",
    );
    let (_, lines) = run(
        "Ubuntu",
        &mut preflight(
            &["host", "up"],
            &[
                ("PATH", &path),
                ("HOME", &home),
                ("VRRP_OS_RELEASE", &ubuntu),
            ],
        ),
    );
    assert!(
        line_with(
            &lines,
            "preflight: warning: Ubuntu 24.04 LTS is not Debian 12 or 13"
        )
        .is_some(),
        "{lines:#?}"
    );

    // A Debian without an lxd package: refused.
    let d11 = os_release(
        dir.path(),
        "d11",
        "ID=debian\nVERSION_ID=\"11\"\nPRETTY_NAME=\"Debian GNU/Linux 11 (bullseye)\"\n",
    );
    let (out, lines) = run(
        "Debian 11",
        &mut preflight(
            &["host", "up"],
            &[("PATH", &path), ("HOME", &home), ("VRRP_OS_RELEASE", &d11)],
        ),
    );
    assert_failed_with(
        "Debian 11",
        &out,
        &lines,
        &[
            "preflight: Debian GNU/Linux 11 (bullseye) has no lxd package",
            "use Debian 12 or 13",
        ],
    );
}

/// A tmpfs mounted for the life of the value.
struct SmallFs(PathBuf);

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn too_little_free_disk_names_the_filesystem_and_what_needs_it() {
    if !is_root() {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let mnt = dir.path().join("small");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&mnt)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs here");
        return;
    }
    let small = SmallFs(mnt.clone());
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let venv = mnt.join("venv").display().to_string();
    let cache = mnt.join("cache").display().to_string();
    let (out, lines) = run(
        "small filesystem",
        &mut preflight(
            &["host", "up"],
            &[
                ("PATH", &path),
                ("HOME", &home),
                ("VRRP_VENV", &venv),
                ("VRRP_IMAGE_CACHE", &cache),
            ],
        ),
    );
    assert_failed_with(
        "small filesystem",
        &out,
        &lines,
        &[
            &format!("free on {}", mnt.display()),
            "1.3 GiB needed for make up",
            "Ansible venv 1000 MiB",
            "image build 300 MiB",
            "VRRP_VENV, VRRP_IMAGE_CACHE",
        ],
    );
    drop(small);
}

#[test]
fn lxd_that_is_not_there_or_does_not_answer() {
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();

    // The LXD of this host answers (the tests need it anyway).
    let (out, lines) = run(
        "this host's LXD",
        &mut preflight(&["lxd", "test"], &[("PATH", &path), ("HOME", &home)]),
    );
    assert!(out.status.success() || !is_root(), "{lines:#?}");

    // No daemon: no socket.
    let dir = tempfile::tempdir().expect("tempdir");
    let gone = dir.path().join("gone");
    let gone_s = gone.display().to_string();
    let (out, lines) = run(
        "no LXD",
        &mut preflight(
            &["lxd", "test"],
            &[("PATH", &path), ("HOME", &home), ("LXD_DIR", &gone_s)],
        ),
    );
    assert_failed_with(
        "no LXD",
        &out,
        &lines,
        &[
            "preflight: LXD is not running",
            &format!("{gone_s}/unix.socket"),
            "systemctl start lxd",
        ],
    );

    // A daemon that takes the connection and never answers: bounded by the
    // timeout, not by `lxd waitready`'s minute.
    let hung = dir.path().join("hung");
    std::fs::create_dir_all(&hung).expect("mkdir");
    let _listener = UnixListener::bind(hung.join("unix.socket")).expect("bind");
    let hung_s = hung.display().to_string();
    let started = Instant::now();
    let (out, lines) = run(
        "hung LXD",
        &mut preflight(
            &["lxd", "test"],
            &[
                ("PATH", &path),
                ("HOME", &home),
                ("LXD_DIR", &hung_s),
                ("VRRP_LXD_TIMEOUT", "2"),
            ],
        ),
    );
    let took = started.elapsed();
    assert_failed_with(
        "hung LXD",
        &out,
        &lines,
        &[
            "preflight: LXD did not answer",
            &format!("{hung_s}/unix.socket within 2 s"),
            "systemctl restart lxd",
        ],
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn this_host_passes_what_make_test_checks() {
    if !is_root() {
        eprintln!("skipped: the host check wants root");
        return;
    }
    let path = std::env::var("PATH").unwrap_or_default();
    let home = std::env::var("HOME").unwrap_or_default();
    let mut env = vec![("PATH", path.as_str()), ("HOME", home.as_str())];
    let cargo_home = std::env::var("CARGO_HOME").unwrap_or_default();
    if !cargo_home.is_empty() {
        env.push(("CARGO_HOME", &cargo_home));
    }
    let (out, lines) = run("this host", &mut preflight(&["host", "test"], &env));
    assert!(out.status.success(), "{lines:#?}");
}
