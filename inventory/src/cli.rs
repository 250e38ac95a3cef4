//! The command line: Ansible's script-inventory protocol.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use crate::config::{AddressSource, Config, LxdHost};
use crate::instance::{Instance, InstanceState};
use crate::inventory::{HostListing, Inventory};
use crate::leases::{self, NetworkLeases};

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

/// Load the config, read every LXD host, and render the answer.
pub fn run(args: &Args) -> anyhow::Result<Vec<u8>> {
    let env = |k: &str| std::env::var(k).ok();
    let (cfg, _file) = Config::load(&env, &config_dirs())?;
    let inventory = fetch(&cfg)?;
    // The script protocol has no warnings channel: stderr is what Ansible
    // shows (with -v), and `all.vars.lxd_inventory_warnings` has them too.
    for w in &inventory.warnings {
        eprintln!("lxd_inventory: warning: {w}");
    }
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

/// Every configured LXD host read at once (a thread each, see [`read_host`]),
/// merged into one inventory; gives up on a host after
/// `cfg.timeout` seconds. A host that fails fails the whole inventory, unless
/// `skip_unreachable` and it could not be reached: then it is left out and
/// named in [`Inventory::warnings`].
pub fn fetch(cfg: &Config) -> anyhow::Result<Inventory> {
    let hosts = cfg.lxd_hosts();
    let (tx, rx) = std::sync::mpsc::channel();
    for (i, host) in hosts.iter().enumerate() {
        let (tx, host, cfg) = (tx.clone(), host.clone(), cfg.clone());
        // Each host is read on its own thread so that one slow host does not
        // delay the others and a hung LXD cannot hang Ansible: past the
        // deadline the process reports and exits.
        std::thread::spawn(move || {
            let _ = tx.send((i, read_host(&host, &cfg)));
        });
    }
    drop(tx);
    let deadline = Instant::now() + Duration::from_secs(cfg.timeout);
    let mut answers: Vec<Option<Result<HostListing, HostFailure>>> =
        hosts.iter().map(|_| None).collect();
    let mut waiting = hosts.len();
    while waiting > 0 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok((i, answer)) = rx.recv_timeout(left) else {
            break;
        };
        if let Err(f) = &answer {
            if !(cfg.skip_unreachable && f.unreachable) {
                anyhow::bail!("{}", f.message);
            }
        }
        answers[i] = Some(answer);
        waiting -= 1;
    }

    let mut listings = Vec::new();
    let mut warnings = Vec::new();
    let mut silent = Vec::new();
    for (host, answer) in hosts.iter().zip(answers) {
        match answer {
            Some(Ok(listing)) => listings.push(listing),
            Some(Err(f)) => warnings.push(f.message),
            None => silent.push(format!("host {} ({})", host.name, host.endpoint())),
        }
    }
    if !silent.is_empty() {
        let msg = format!(
            "{} did not answer within {} s (timeout)",
            silent.join(", "),
            cfg.timeout
        );
        if !cfg.skip_unreachable {
            anyhow::bail!(msg);
        }
        warnings.push(msg);
    }
    let warnings = warnings
        .into_iter()
        .map(|w| format!("{w}; its instances are left out (skip_unreachable)"))
        .collect();
    Ok(Inventory::merge(&listings, cfg, warnings)?)
}

/// Why a host gave no listing: the message names the host.
#[derive(Debug)]
struct HostFailure {
    message: String,
    /// Could not be reached (the socket or port is not there, the address does
    /// not answer): what `skip_unreachable` skips. A certificate that does not
    /// match its pin, a client LXD does not trust or an unknown project always
    /// fail.
    unreachable: bool,
}

fn read_host(host: &LxdHost, cfg: &Config) -> Result<HostListing, HostFailure> {
    read_host_inner(host, cfg).map_err(|e| HostFailure {
        unreachable: matches!(
            e.downcast_ref::<lxd_api::Error>(),
            Some(lxd_api::Error::Connect { reason, .. }) if !reason.contains("certificate")
        ),
        message: format!(
            "host {}: {}",
            host.name,
            format!("{e:#}").replace('\n', " ")
        ),
    })
}

/// One host's instances, each running one that the inventory lists with its
/// state: from one `recursion=2` request (`address_source: state`), or from
/// `recursion=1`, the leases and, where those do not tell, its own state
/// (see [`fill_states`]).
fn read_host_inner(host: &LxdHost, cfg: &Config) -> anyhow::Result<HostListing> {
    let lxd = lxd_api::Client::connect(host.url.as_deref(), &host.tls())?;
    // A cluster's members come with their status from a second request, made
    // while the instances are read: the listing costs no more time.
    std::thread::scope(|s| {
        let members = host.cluster.then(|| s.spawn(|| lxd.cluster_members()));
        let mut listing = read_instances(&lxd, host, cfg)?;
        if let Some(m) = members {
            listing.members = m
                .join()
                .map_err(|_| anyhow::anyhow!("reading the cluster members failed"))?
                .context("reading the cluster members")?;
        }
        Ok(listing)
    })
}

fn read_instances(
    lxd: &lxd_api::Client,
    host: &LxdHost,
    cfg: &Config,
) -> anyhow::Result<HostListing> {
    let (items, read_early) = match host.address_source {
        AddressSource::State => (
            lxd.list_instances_full(Some(&host.project))?,
            Networks::new(),
        ),
        AddressSource::Leases => list_with_profile_networks(lxd, &host.project)?,
    };
    // LXD answers an empty list for a project that does not exist: only then
    // is a second request worth making, so that a typo is not an empty inventory.
    if items.is_empty() && host.project != "default" {
        let path = format!("/1.0/projects/{}", lxd_api::encode(&host.project));
        match lxd.get(&path) {
            Err(e) if e.is_not_found() => {
                let backend = lxd.backend();
                anyhow::bail!(
                    "{backend} has no project {:?} (see `{} project list`)",
                    host.project,
                    backend.cli()
                )
            }
            other => {
                other?;
            }
        }
    }
    let mut instances: Vec<Instance> = items
        .into_iter()
        .map(serde_json::from_value)
        .collect::<Result<_, _>>()
        .with_context(|| format!("unexpected instance list from {}", lxd.backend()))?;
    if host.address_source == AddressSource::Leases {
        fill_states(lxd, &host.project, cfg, &mut instances, read_early)?;
    }
    Ok(HostListing {
        host: for_connection_vars(host)?,
        instances,
        members: Vec::new(),
    })
}

/// The `recursion=1` listing of `project`, and beside it the networks its
/// profiles put NICs on ([`read_profile_networks`]).
fn list_with_profile_networks(
    lxd: &lxd_api::Client,
    project: &str,
) -> anyhow::Result<(Vec<serde_json::Value>, Networks)> {
    std::thread::scope(|s| {
        let early = s.spawn(|| read_profile_networks(lxd, project));
        let path = project_path("/1.0/instances?recursion=1", project);
        let items = match lxd.get(&path)? {
            serde_json::Value::Array(items) => items,
            other => anyhow::bail!("unexpected instance list from {}: {other}", lxd.backend()),
        };
        match early.join() {
            Ok(networks) => Ok((items, networks)),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// How many threads [`side_by_side`] spreads its items over. A network's
/// read is two requests at once, and the profiles' networks are read beside
/// the listing, so a host may see a few more requests than this in flight.
const PARALLEL_REQUESTS: usize = 8;

/// Gives each running instance the inventory lists (a `recursion=1` listing
/// of `project`) its state: from the leases of the managed networks its NICs
/// are on (one request for the network and one for its leases, networks side
/// by side), else from `GET /1.0/instances/<name>/state` (those side by side),
/// or from one `recursion=2` listing when most need it
/// ([`leases::one_listing_is_cheaper`]).
fn fill_states(
    lxd: &lxd_api::Client,
    project: &str,
    cfg: &Config,
    instances: &mut Vec<Instance>,
    read_early: Networks,
) -> anyhow::Result<()> {
    let wanted = leases::wanted(instances, cfg);
    let names: Vec<String> = leases::networks(wanted.iter().map(|&i| &instances[i]))
        .into_iter()
        .filter(|n| !read_early.contains_key(n))
        .collect();
    let mut networks = read_networks(lxd, &names, project)?;
    networks.extend(read_early);
    let networks: BTreeMap<String, NetworkLeases> = networks
        .into_iter()
        .filter_map(|(name, leases)| Some((name, leases?)))
        .collect();
    let unknown = leases::fill_from_leases(instances, &wanted, project, cfg, &networks);
    let states: Vec<Option<InstanceState>> =
        if leases::one_listing_is_cheaper(unknown.len(), wanted.len()) {
            let mut listed = states_by_name(lxd, project)?;
            unknown
                .iter()
                .map(|&i| listed.remove(&instances[i].name))
                .collect()
        } else {
            side_by_side(&unknown, |&i| {
                let inst = &instances[i];
                read_state(lxd, &inst.name, inst.project_or(project))
            })
            .into_iter()
            .collect::<anyhow::Result<_>>()?
        };
    let mut gone = Vec::new();
    for (i, state) in unknown.into_iter().zip(states) {
        match state {
            Some(state) => instances[i].state = Some(state),
            None => gone.push(i),
        }
    }
    // Deleted between the listing and the state: as if listed a moment later.
    for i in gone.into_iter().rev() {
        instances.remove(i);
    }
    Ok(())
}

/// `path` with `?project=` (or `&project=`) unless it is the default project.
fn project_path(path: &str, project: &str) -> String {
    if project == "default" {
        path.to_owned()
    } else {
        lxd_api::with_query(path, &[("project", project)])
    }
}

/// Networks by name, each with its leases when it is a managed bridge.
type Networks = BTreeMap<String, Option<NetworkLeases>>;

/// The networks the project's profiles put NICs on ([`read_network`]), read
/// while the instances are listed: most instances' NICs come from a profile,
/// so their leases are at hand when the listing is. A network only an
/// instance's own device names is read after the listing, and so is one
/// whose read failed here: a profile no instance uses must not fail the
/// inventory, and one that is used fails it there.
fn read_profile_networks(lxd: &lxd_api::Client, project: &str) -> Networks {
    let Ok(profiles) = lxd.get(&project_path("/1.0/profiles?recursion=1", project)) else {
        return Networks::new();
    };
    let names: Vec<String> = leases::profile_networks(&profiles)
        .into_iter()
        .take(PARALLEL_REQUESTS)
        .collect();
    read_each_network(lxd, &names, project)
        .filter_map(|(name, answer)| Some((name, answer.ok()?)))
        .collect()
}

/// [`read_network`] of each of `names`, side by side; the first failure fails.
fn read_networks(
    lxd: &lxd_api::Client,
    names: &[String],
    project: &str,
) -> anyhow::Result<Networks> {
    read_each_network(lxd, names, project)
        .map(|(name, answer)| answer.map(|a| (name, a)))
        .collect()
}

/// Each of `names` with what [`read_network`] answered for it, read side by side.
fn read_each_network<'a>(
    lxd: &lxd_api::Client,
    names: &'a [String],
    project: &str,
) -> impl Iterator<Item = (String, anyhow::Result<Option<NetworkLeases>>)> + 'a {
    names
        .iter()
        .cloned()
        .zip(side_by_side(names, |n| read_network(lxd, n, project)))
}

/// A managed bridge's prefix length and leases; `None` when LXD does not
/// manage it as a bridge or will not list its leases (an error answer: the
/// instances on it are then read one by one). The network and its leases
/// are asked side by side. A failure to reach LXD fails.
fn read_network(
    lxd: &lxd_api::Client,
    name: &str,
    project: &str,
) -> anyhow::Result<Option<NetworkLeases>> {
    let path = format!("/1.0/networks/{}", lxd_api::encode(name));
    let answer = |p: &str| match lxd.get(&project_path(p, project)) {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.status().is_some() => Ok(None),
        Err(e) => Err(e),
    };
    let (network, list) = std::thread::scope(|s| {
        let list = s.spawn(|| answer(&format!("{path}/leases")));
        let network = answer(&path);
        let list = match list.join() {
            Ok(list) => list,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        (network, list)
    });
    let Some(network) = network?.filter(leases::is_managed_bridge) else {
        return Ok(None);
    };
    let Some(list) = list? else {
        return Ok(None);
    };
    let list = leases::leases_from_value(list).with_context(|| {
        format!(
            "unexpected lease list of network {name} from {}",
            lxd.backend()
        )
    })?;
    Ok(NetworkLeases::new(&network, list))
}

/// Every instance's state from one `GET /1.0/instances?recursion=2`.
fn states_by_name(
    lxd: &lxd_api::Client,
    project: &str,
) -> anyhow::Result<BTreeMap<String, InstanceState>> {
    let mut out = BTreeMap::new();
    for item in lxd.list_instances_full(Some(project))? {
        let inst: Instance = serde_json::from_value(item)
            .with_context(|| format!("unexpected instance list from {}", lxd.backend()))?;
        if let Some(state) = inst.state {
            out.insert(inst.name, state);
        }
    }
    Ok(out)
}

/// `GET /1.0/instances/<name>/state`; `None` for an instance deleted since it
/// was listed.
fn read_state(
    lxd: &lxd_api::Client,
    name: &str,
    project: &str,
) -> anyhow::Result<Option<InstanceState>> {
    match lxd.instance_state(name, Some(project)) {
        Ok(v) => Ok(Some(serde_json::from_value(v).with_context(|| {
            format!("unexpected state of instance {name} from {}", lxd.backend())
        })?)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `f` on every item, at most [`PARALLEL_REQUESTS`] at a time, the results
/// in the items' order (a single item runs on this thread).
fn side_by_side<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    if items.len() <= 1 {
        return items.iter().map(f).collect();
    }
    let per_thread = items.len().div_ceil(PARALLEL_REQUESTS);
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| s.spawn(move || chunk.iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(v) => v,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The host as the connection variables name it: for HTTPS, the pin as a
/// fingerprint (also when it was given as a certificate file), the client
/// certificate that was actually used (the `lxc` client's own by default) and
/// absolute paths, since Ansible may run the connection from elsewhere.
fn for_connection_vars(host: &LxdHost) -> anyhow::Result<LxdHost> {
    let mut out = host.clone();
    if host.https_url().is_none() {
        return Ok(out);
    }
    let tls = host.tls();
    if out.server_cert_fingerprint.is_none() {
        if let Some(pem) = &tls.server_cert {
            out.server_cert_fingerprint = Some(lxd_api::fingerprint_of_pem_file(pem)?);
        }
    }
    let (cert, key) = match (tls.client_cert, tls.client_key) {
        (Some(c), Some(k)) => (Some(c), Some(k)),
        _ => default_client_pair().unzip(),
    };
    let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
    out.client_cert = cert.map(absolute);
    out.client_key = key.map(absolute);
    out.server_cert = tls.server_cert.map(absolute);
    Ok(out)
}

/// The `lxc` client's own certificate, which the LXD client library uses when
/// none is configured: the first pair that exists.
fn default_client_pair() -> Option<(PathBuf, PathBuf)> {
    let mut dirs = Vec::new();
    if let Some(conf) = std::env::var_os("LXD_CONF") {
        dirs.push(PathBuf::from(conf));
    }
    if let Some(home) = std::env::var_os("HOME") {
        let h = PathBuf::from(home);
        dirs.extend([
            h.join(".config/lxc"),
            h.join("snap/lxd/common/config"),
            h.join("snap/lxd/current/.config/lxc"),
        ]);
    }
    dirs.into_iter()
        .map(|d| (d.join("client.crt"), d.join("client.key")))
        .find(|(c, k)| c.is_file() && k.is_file())
}
