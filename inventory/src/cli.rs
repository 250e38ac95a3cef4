//! The command line: Ansible's script-inventory protocol.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

use crate::config::Config;
use crate::instance::Instance;
use crate::inventory::Inventory;

/// Ansible dynamic inventory for LXD (script-inventory protocol).
///
/// Settings come from $LXD_INVENTORY_CONFIG, else lxd_inventory.yml (or .yaml,
/// .toml) beside this binary or in the current directory, then from
/// LXD_INVENTORY_* environment variables.
#[derive(Debug, Parser)]
#[command(name = "lxd_inventory", version)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["list", "host"])))]
pub struct Args {
    /// Print every group and `_meta.hostvars`.
    #[arg(long)]
    pub list: bool,
    /// Print the variables of one host (`{}` when there is no such host).
    #[arg(long, value_name = "NAME")]
    pub host: Option<String>,
    /// Indent the JSON.
    #[arg(long)]
    pub pretty: bool,
}

/// Run and print; returns the exit code. Errors are one line on stderr, and
/// nothing is printed on stdout then.
pub fn main(args: &Args) -> i32 {
    match run(args).and_then(|out| {
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&out)
            .and_then(|()| stdout.flush())
            .context("cannot write the inventory to stdout")
    }) {
        Ok(()) => 0,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("lxd_inventory: {msg}");
            1
        }
    }
}

/// Directories searched for the config file: beside the binary as called,
/// beside it with symlinks resolved, and the current directory.
fn config_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    let argv0 = std::env::args_os().next().map(PathBuf::from);
    let exe = std::env::current_exe().ok();
    for p in [argv0, exe].into_iter().flatten() {
        if let Some(d) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            dirs.push(d.to_owned());
        }
    }
    if let Ok(cwd) = std::env::current_dir() {
        dirs.push(cwd);
    }
    dirs.dedup();
    dirs
}

/// Load the config, make the one request, and render the answer.
pub fn run(args: &Args) -> anyhow::Result<Vec<u8>> {
    let env = |k: &str| std::env::var(k).ok();
    let (cfg, _file) = Config::load(&env, &config_dirs())?;
    let inventory = fetch(&cfg)?;
    let value = match &args.host {
        Some(name) => inventory.host_json(name),
        None => inventory.list_json(),
    };
    let out = if args.pretty {
        serde_json::to_vec_pretty(&value)
    } else {
        serde_json::to_vec(&value)
    }?;
    Ok(out)
}

/// `GET /1.0/instances?recursion=2` in the configured project, built into
/// an inventory; gives up after `cfg.timeout` seconds.
pub fn fetch(cfg: &Config) -> anyhow::Result<Inventory> {
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = cfg.clone();
    // The request runs on its own thread so that a hung LXD cannot hang
    // Ansible: past the deadline the process reports and exits.
    std::thread::spawn(move || {
        let _ = tx.send(fetch_blocking(&worker));
    });
    let limit = std::time::Duration::from_secs(cfg.timeout);
    match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => anyhow::bail!(
            "LXD at {} did not answer within {} s (timeout)",
            cfg.url.as_deref().unwrap_or("the local socket"),
            cfg.timeout
        ),
    }
}

fn fetch_blocking(cfg: &Config) -> anyhow::Result<Inventory> {
    let lxd = lxd_api::Client::connect(cfg.url.as_deref(), &cfg.tls())?;
    let items = lxd.list_instances_full(Some(&cfg.project))?;
    // LXD answers an empty list for a project that does not exist: only then
    // is a second request worth making, so that a typo is not an empty inventory.
    if items.is_empty() && cfg.project != "default" {
        let path = format!("/1.0/projects/{}", lxd_api::encode(&cfg.project));
        match lxd.get(&path) {
            Err(e) if e.is_not_found() => {
                anyhow::bail!(
                    "LXD has no project {:?} (see `lxc project list`)",
                    cfg.project
                )
            }
            other => {
                other?;
            }
        }
    }
    let instances: Vec<Instance> = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .context("unexpected instance list from LXD")?;
    Ok(Inventory::build(&instances, cfg))
}
