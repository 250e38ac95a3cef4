//! Settings: a small YAML or TOML file, then `LXD_INVENTORY_*` environment
//! variables on top.
//!
//! File lookup: `$LXD_INVENTORY_CONFIG` (must exist when set), else
//! `lxd_inventory.{yml,yaml,toml}` beside the binary (as called, then with
//! symlinks resolved), else in the current directory, else built-in defaults.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer};

/// The file names looked for beside the binary and in the current directory.
pub const FILE_NAMES: [&str; 3] = [
    "lxd_inventory.yml",
    "lxd_inventory.yaml",
    "lxd_inventory.toml",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("bad config file {path}: {msg}")]
    Parse { path: PathBuf, msg: String },
    #[error("bad value in ${var}: {msg}")]
    Env { var: &'static str, msg: String },
    #[error("bad config: {0}")]
    Invalid(String),
}

/// Everything the inventory can be told.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `unix:/path/to/unix.socket` (or a bare path) or `https://host:8443`.
    /// Default: `$LXD_DIR/unix.socket`, then Debian's
    /// `/var/lib/lxd/unix.socket`, then the snap's socket, whichever exists.
    pub url: Option<String>,
    /// Client certificate and key (PEM) for HTTPS. Default: the `lxc`
    /// client's own (`~/.config/lxc/client.crt`) when it exists.
    #[serde(alias = "cert_file")]
    pub client_cert: Option<PathBuf>,
    #[serde(alias = "key_file")]
    pub client_key: Option<PathBuf>,
    /// The server's certificate (PEM) to pin for HTTPS.
    pub server_cert: Option<PathBuf>,
    /// Or the SHA-256 fingerprint of the server certificate to pin.
    pub server_cert_fingerprint: Option<String>,
    /// LXD project to list.
    pub project: String,
    /// Name of the `lxc` remote that reaches this LXD, for the
    /// `community.general.lxd` connection (`ansible_lxd_remote`).
    pub remote: Option<String>,
    /// Interfaces whose address becomes `ansible_host`, first match wins.
    #[serde(deserialize_with = "string_or_list")]
    pub interface: Vec<String>,
    /// Address family for `ansible_host`.
    pub family: Family,
    /// Where the addresses come from: `leases` (the DHCP leases of the
    /// LXD-managed networks the instances are on, each instance's state only
    /// where they do not tell), or `state` (every instance's state, read by
    /// LXD from inside each one: `lxd_addresses` as LXD reports it, slower).
    pub address_source: AddressSource,
    /// Only list instances in these states (`running`, `stopped`, `frozen`,
    /// ...); empty lists every instance.
    #[serde(deserialize_with = "string_or_list")]
    pub state: Vec<String>,
    /// `container`, `virtual-machine` or `both`.
    #[serde(rename = "type")]
    pub type_filter: TypeFilter,
    /// How Ansible reaches the instances.
    pub connection: Connection,
    /// `ansible_user` for `connection: ssh`.
    pub ssh_user: Option<String>,
    /// Seconds to wait for LXD's answer before giving up.
    pub timeout: u64,
    /// Prefix of the per-host variables taken from LXD (`lxd_status`, ...).
    pub vars_prefix: String,
    /// How groups are formed.
    pub groups: GroupRules,
    /// Several LXD hosts, read side by side. Empty: one host from the
    /// top-level `url`, `client_cert`, ... keys, named [`DEFAULT_HOST_NAME`]
    /// (or its `remote`).
    pub hosts: Vec<HostEntry>,
    /// A YAML file with a `hosts:` list (the file the playbooks place the
    /// topology by, `vrrp_hosts_file`): its entries are read as `hosts:`;
    /// keys of an entry the inventory has no use for (`profiles`, `image`)
    /// are left to the playbooks.
    pub hosts_file: Option<PathBuf>,
    /// A host that cannot be reached (or does not answer within `timeout`) is
    /// left out with a warning instead of failing the whole inventory.
    pub skip_unreachable: bool,
}

/// The name of the one host made from the top-level keys when there is no
/// `hosts:` list and no `remote`.
pub const DEFAULT_HOST_NAME: &str = "local";

/// One entry of `hosts:`: the same keys, meaning and defaults as the
/// top-level ones, plus a name. `client_cert`/`client_key` and `project` left
/// out here fall back to the top-level values.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    /// Name of the host: the `<vars_prefix>host` variable and the
    /// `lxdhost_<name>` group.
    pub name: String,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default, alias = "cert_file")]
    pub client_cert: Option<PathBuf>,
    #[serde(default, alias = "key_file")]
    pub client_key: Option<PathBuf>,
    #[serde(default)]
    pub server_cert: Option<PathBuf>,
    #[serde(default)]
    pub server_cert_fingerprint: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    #[serde(default)]
    pub remote: Option<String>,
    /// The endpoint is an LXD cluster: its members (and their status) are read
    /// too, with one more request.
    #[serde(default)]
    pub cluster: bool,
    /// This host's own `address_source`, e.g. `state` for a host or cluster
    /// whose instances sit on macvlan, where no lease can tell an address.
    #[serde(default)]
    pub address_source: Option<AddressSource>,
}

/// One LXD host to read, every default applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LxdHost {
    pub name: String,
    /// `None`: the local socket, found at run time.
    pub url: Option<String>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
    pub server_cert: Option<PathBuf>,
    pub server_cert_fingerprint: Option<String>,
    pub project: String,
    pub remote: Option<String>,
    /// Read the cluster's members as well (`cluster: true` on the entry).
    pub cluster: bool,
    /// The entry's `address_source`, else the top-level one.
    pub address_source: AddressSource,
}

impl LxdHost {
    /// How to authenticate to (and trust) this host over HTTPS.
    pub fn tls(&self) -> lxd_api::TlsOptions {
        lxd_api::TlsOptions {
            client_cert: self.client_cert.as_deref().map(expand_home),
            client_key: self.client_key.as_deref().map(expand_home),
            server_cert: self.server_cert.as_deref().map(expand_home),
            server_cert_fingerprint: self.server_cert_fingerprint.clone(),
        }
    }

    /// The endpoint as LXD's client writes it (`https://h:8443`,
    /// `unix:/path`), or `the local socket`.
    pub fn endpoint(&self) -> String {
        match &self.url {
            Some(u) => lxd_api::Endpoint::parse(u).map_or_else(|_| u.clone(), |e| e.to_string()),
            None => "the local socket".into(),
        }
    }

    /// The socket path of a host whose `url` names a unix socket (`None`
    /// when it is found automatically or reached over HTTPS): the connection
    /// plugin must use that socket too, e.g. Incus's beside a running LXD.
    pub fn unix_socket(&self) -> Option<String> {
        match lxd_api::Endpoint::parse(self.url.as_deref()?).ok()? {
            lxd_api::Endpoint::Unix(p) => Some(p.display().to_string()),
            lxd_api::Endpoint::Https(_) => None,
        }
    }

    /// The `https://host:port` of an HTTPS host, `None` for a unix socket.
    pub fn https_url(&self) -> Option<String> {
        match lxd_api::Endpoint::parse(self.url.as_deref()?).ok()? {
            lxd_api::Endpoint::Https(u) => Some(u),
            lxd_api::Endpoint::Unix(_) => None,
        }
    }
}

/// The 64 lower-case hex digits the `lxd_api` connection plugin takes.
pub use lxd_api::fingerprint_hex;

impl Default for Config {
    fn default() -> Self {
        Self {
            url: None,
            client_cert: None,
            client_key: None,
            server_cert: None,
            server_cert_fingerprint: None,
            project: "default".into(),
            remote: None,
            interface: vec!["eth0".into()],
            family: Family::Inet,
            address_source: AddressSource::Leases,
            state: Vec::new(),
            type_filter: TypeFilter::Both,
            connection: Connection::Lxd,
            ssh_user: None,
            timeout: 30,
            vars_prefix: "lxd_".into(),
            groups: GroupRules::default(),
            hosts: Vec::new(),
            hosts_file: None,
            skip_unreachable: false,
        }
    }
}

/// Group rules.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupRules {
    /// Config key holding comma-separated group names (set at launch).
    pub key: String,
    /// Prefix for the groups named in [`GroupRules::key`] (none by default).
    pub prefix: String,
    /// Automatic groups: `profile`, `status`, `type`, `location`, `project`,
    /// `host` (`lxdhost_<name>`).
    #[serde(deserialize_with = "string_or_list")]
    pub by: Vec<String>,
    /// Group holding every listed instance; carries the connection variables,
    /// so a user's `group_vars/<name>.yml` overrides them.
    pub all: String,
    /// Group of instances that are not running (listed without `ansible_host`).
    pub stopped: String,
    /// Also put instances that are not running into the role, keyed, profile,
    /// type, location and project groups (they are always in the `all`,
    /// `stopped` and `status_*` groups).
    pub include_stopped: bool,
    /// Extra groups from config keys: `{ "user.tier": "tier" }` puts an instance
    /// with `user.tier=gold` into `tier_gold`.
    pub keyed: BTreeMap<String, String>,
}

impl Default for GroupRules {
    fn default() -> Self {
        Self {
            key: "user.ansible.groups".into(),
            prefix: String::new(),
            by: ["profile", "status", "type", "location", "project", "host"]
                .map(String::from)
                .to_vec(),
            all: "lxd".into(),
            stopped: "stopped".into(),
            include_stopped: false,
            keyed: BTreeMap::new(),
        }
    }
}

impl GroupRules {
    /// Whether instances are grouped automatically by `kind` ([`GroupRules::by`]).
    pub fn groups_by(&self, kind: &str) -> bool {
        self.by.iter().any(|b| b == kind)
    }
}

/// The automatic group kinds [`GroupRules::by`] accepts.
pub const GROUP_BY: [&str; 6] = ["profile", "status", "type", "location", "project", "host"];

/// Prefix of the per-host groups (`by: host`): `lxdhost_<name>`, not
/// `host_<name>`, which would read as an Ansible host.
pub const HOST_GROUP_PREFIX: &str = "lxdhost_";

macro_rules! str_enum {
    ($name:ident { $($variant:ident => [$($text:literal),+]),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name { $($variant),+ }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($($text)|+ => Ok(Self::$variant),)+
                    _ => Err(format!(
                        "must be one of: {}, got: {s}",
                        [$($name::$variant.as_str()),+].join(", ")
                    )),
                }
            }
        }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => [$($text),+][0]),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

str_enum!(Family { Inet => ["inet", "ipv4", "4"], Inet6 => ["inet6", "ipv6", "6"] });
str_enum!(AddressSource {
    Leases => ["leases"],
    State => ["state"],
});
str_enum!(TypeFilter {
    Both => ["both", "all"],
    Container => ["container"],
    VirtualMachine => ["virtual-machine", "vm"],
});
str_enum!(Connection {
    Lxd => ["lxd", "community.general.lxd"],
    LxdApi => ["lxd_api"],
    Ssh => ["ssh"],
});

impl Connection {
    /// Connections that reach an instance through LXD (by its name, with the
    /// `ansible_lxd_*` variables) rather than through its address.
    pub fn through_lxd(self) -> bool {
        matches!(self, Self::Lxd | Self::LxdApi)
    }
}

impl TypeFilter {
    pub fn matches(self, kind: &str) -> bool {
        match self {
            Self::Both => true,
            Self::Container => kind == "container",
            Self::VirtualMachine => kind == "virtual-machine",
        }
    }
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<OneOrMany>::deserialize(d)? {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => split_list(&s),
        Some(OneOrMany::Many(v)) => v
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

/// `true`/`false` the ways YAML and the shell write them.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `"a, b,,c"` -> `["a", "b", "c"]`.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

impl Config {
    /// Parse a file's text; the format follows the extension (`.toml`, else YAML).
    pub fn from_text(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let bad = |msg: String| ConfigError::Parse {
            path: path.to_owned(),
            msg: msg.replace('\n', " "),
        };
        let cfg = if path.extension().is_some_and(|e| e == "toml") {
            toml::from_str(text).map_err(|e| bad(e.message().to_owned()))?
        } else if text.trim().is_empty() {
            Self::default()
        } else {
            serde_yaml_ng::from_str(text).map_err(|e| bad(e.to_string()))?
        };
        Ok(cfg)
    }

    /// Read a file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_text(path, &text)
    }

    /// Find and read the config file (see the module docs), then apply the
    /// environment. Returns the file used, if any.
    pub fn load(
        env: &dyn Fn(&str) -> Option<String>,
        dirs: &[PathBuf],
    ) -> Result<(Self, Option<PathBuf>), ConfigError> {
        let file = match env("LXD_INVENTORY_CONFIG").filter(|s| !s.is_empty()) {
            Some(p) => Some(PathBuf::from(p)),
            None => dirs
                .iter()
                .flat_map(|d| FILE_NAMES.iter().map(move |n| d.join(n)))
                .find(|p| p.is_file()),
        };
        let mut cfg = match &file {
            Some(p) => Self::from_file(p)?,
            None => Self::default(),
        };
        cfg.apply_env(env)?;
        cfg.read_hosts_file()?;
        cfg.check()?;
        Ok((cfg, file))
    }

    /// Takes the `hosts:` entries of `hosts_file`, if one is set.
    pub fn read_hosts_file(&mut self) -> Result<(), ConfigError> {
        let Some(path) = self.hosts_file.as_deref().map(expand_home) else {
            return Ok(());
        };
        if !self.hosts.is_empty() {
            return Err(ConfigError::Invalid(
                "hosts_file and hosts: both list hosts: keep one".into(),
            ));
        }
        let bad = |msg: String| ConfigError::Parse {
            path: path.clone(),
            msg: msg.replace('\n', " "),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let doc: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let entries = doc
            .get("hosts")
            .and_then(serde_yaml_ng::Value::as_sequence)
            .ok_or_else(|| bad("no hosts: list".into()))?;
        const KEYS: [&str; 12] = [
            "name",
            "url",
            "client_cert",
            "cert_file",
            "client_key",
            "key_file",
            "server_cert",
            "server_cert_fingerprint",
            "project",
            "remote",
            "cluster",
            "address_source",
        ];
        for entry in entries {
            let mut known = serde_yaml_ng::Mapping::new();
            for (k, v) in entry
                .as_mapping()
                .ok_or_else(|| bad("a hosts: entry is not a mapping".into()))?
            {
                if k.as_str().is_some_and(|k| KEYS.contains(&k)) {
                    known.insert(k.clone(), v.clone());
                }
            }
            let host: HostEntry = serde_yaml_ng::from_value(serde_yaml_ng::Value::Mapping(known))
                .map_err(|e| bad(e.to_string()))?;
            self.hosts.push(host);
        }
        Ok(())
    }

    /// Override settings from `LXD_INVENTORY_*` variables.
    pub fn apply_env(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn parsed<T: FromStr<Err = String>>(
            env: &dyn Fn(&str) -> Option<String>,
            var: &'static str,
        ) -> Result<Option<T>, ConfigError> {
            env(var)
                .map(|v| v.parse().map_err(|msg| ConfigError::Env { var, msg }))
                .transpose()
        }
        let get = |var: &str| env(var).filter(|v| !v.is_empty());
        if let Some(v) = get("LXD_INVENTORY_URL") {
            self.url = Some(v);
        }
        if let Some(v) = get("LXD_INVENTORY_CLIENT_CERT") {
            self.client_cert = Some(v.into());
        }
        if let Some(v) = get("LXD_INVENTORY_CLIENT_KEY") {
            self.client_key = Some(v.into());
        }
        if let Some(v) = get("LXD_INVENTORY_SERVER_CERT") {
            self.server_cert = Some(v.into());
        }
        if let Some(v) = get("LXD_INVENTORY_SERVER_CERT_FINGERPRINT") {
            self.server_cert_fingerprint = Some(v);
        }
        if let Some(v) = get("LXD_INVENTORY_PROJECT") {
            self.project = v;
        }
        if let Some(v) = get("LXD_INVENTORY_REMOTE") {
            self.remote = Some(v);
        }
        if let Some(v) = get("LXD_INVENTORY_INTERFACE") {
            self.interface = split_list(&v);
        }
        if let Some(v) = parsed(env, "LXD_INVENTORY_FAMILY")? {
            self.family = v;
        }
        if let Some(v) = parsed(env, "LXD_INVENTORY_ADDRESS_SOURCE")? {
            self.address_source = v;
        }
        if let Some(v) = env("LXD_INVENTORY_STATE") {
            self.state = split_list(&v);
        }
        if let Some(v) = parsed(env, "LXD_INVENTORY_TYPE")? {
            self.type_filter = v;
        }
        if let Some(v) = parsed(env, "LXD_INVENTORY_CONNECTION")? {
            self.connection = v;
        }
        if let Some(v) = get("LXD_INVENTORY_SSH_USER") {
            self.ssh_user = Some(v);
        }
        if let Some(v) = get("LXD_INVENTORY_TIMEOUT") {
            self.timeout = v.trim().parse().map_err(|_| ConfigError::Env {
                var: "LXD_INVENTORY_TIMEOUT",
                msg: format!("must be a whole number of seconds, got: {v}"),
            })?;
        }
        if let Some(v) = get("LXD_INVENTORY_SKIP_UNREACHABLE") {
            self.skip_unreachable = parse_bool(&v).ok_or_else(|| ConfigError::Env {
                var: "LXD_INVENTORY_SKIP_UNREACHABLE",
                msg: format!("must be true or false, got: {v}"),
            })?;
        }
        if let Some(v) = get("LXD_INVENTORY_GROUPS_KEY") {
            self.groups.key = v;
        }
        if let Some(v) = env("LXD_INVENTORY_GROUP_BY") {
            self.groups.by = split_list(&v);
        }
        if let Some(v) = get("LXD_INVENTORY_STOPPED_GROUP") {
            self.groups.stopped = v;
        }
        if let Some(v) = get("LXD_INVENTORY_ALL_GROUP") {
            self.groups.all = v;
        }
        Ok(())
    }

    /// Cross-field checks.
    pub fn check(&self) -> Result<(), ConfigError> {
        if let Some(bad) = self
            .groups
            .by
            .iter()
            .find(|b| !GROUP_BY.contains(&b.as_str()))
        {
            return Err(ConfigError::Invalid(format!(
                "groups.by must be a list of: {}, got: {bad}",
                GROUP_BY.join(", ")
            )));
        }
        if self.interface.is_empty() {
            return Err(ConfigError::Invalid(
                "interface must name at least one interface".into(),
            ));
        }
        if self.project.is_empty() {
            return Err(ConfigError::Invalid("project must not be empty".into()));
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(ConfigError::Invalid(
                "client_cert and client_key go together: set both or neither".into(),
            ));
        }
        if self.timeout == 0 {
            return Err(ConfigError::Invalid(
                "timeout must be at least 1 second".into(),
            ));
        }
        if let Some(url) = &self.url {
            lxd_api::Endpoint::parse(url).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        }
        if !self.hosts.is_empty() {
            // These name one server: with a list, each entry names its own.
            let single = [
                ("url", self.url.is_some()),
                ("server_cert", self.server_cert.is_some()),
                (
                    "server_cert_fingerprint",
                    self.server_cert_fingerprint.is_some(),
                ),
                ("remote", self.remote.is_some()),
            ];
            if let Some((key, _)) = single.iter().find(|(_, set)| *set) {
                return Err(ConfigError::Invalid(format!(
                    "{key} is set at the top level and hosts: lists hosts: set it in each hosts: entry (or drop hosts:)"
                )));
            }
        }
        let mut groups: BTreeMap<String, &str> = BTreeMap::new();
        for h in &self.hosts {
            let name = h.name.trim();
            let bad = |msg: &str| ConfigError::Invalid(format!("hosts: {name:?}: {msg}"));
            if name.is_empty() {
                return Err(ConfigError::Invalid(
                    "hosts: every entry needs a name".into(),
                ));
            }
            if let Some(url) = &h.url {
                lxd_api::Endpoint::parse(url).map_err(|e| bad(&e.to_string()))?;
            }
            if h.client_cert.is_some() != h.client_key.is_some() {
                return Err(bad(
                    "client_cert and client_key go together: set both or neither",
                ));
            }
            if h.project.as_deref() == Some("") {
                return Err(bad("project must not be empty"));
            }
            let group = crate::inventory::safe_name(&format!("{HOST_GROUP_PREFIX}{name}"));
            if let Some(other) = groups.insert(group.clone(), name) {
                return Err(ConfigError::Invalid(if other == name {
                    format!("hosts: the name {name:?} is used twice")
                } else {
                    format!(
                        "hosts: {other:?} and {name:?} would share the group {group}: rename one"
                    )
                }));
            }
        }
        Ok(())
    }

    /// The hosts to read: the `hosts:` entries with the top-level
    /// `client_cert`/`client_key` and `project` as their defaults, or the one
    /// host the top-level keys describe.
    pub fn lxd_hosts(&self) -> Vec<LxdHost> {
        if self.hosts.is_empty() {
            return vec![LxdHost {
                name: self
                    .remote
                    .clone()
                    .unwrap_or_else(|| DEFAULT_HOST_NAME.into()),
                url: self.url.clone(),
                client_cert: self.client_cert.clone(),
                client_key: self.client_key.clone(),
                server_cert: self.server_cert.clone(),
                server_cert_fingerprint: self.server_cert_fingerprint.clone(),
                project: self.project.clone(),
                remote: self.remote.clone(),
                cluster: false,
                address_source: self.address_source,
            }];
        }
        self.hosts
            .iter()
            .map(|h| {
                let own_pair = h.client_cert.is_some();
                LxdHost {
                    name: h.name.trim().to_owned(),
                    url: h.url.clone(),
                    client_cert: if own_pair {
                        h.client_cert.clone()
                    } else {
                        self.client_cert.clone()
                    },
                    client_key: if own_pair {
                        h.client_key.clone()
                    } else {
                        self.client_key.clone()
                    },
                    server_cert: h.server_cert.clone(),
                    server_cert_fingerprint: h.server_cert_fingerprint.clone(),
                    project: h.project.clone().unwrap_or_else(|| self.project.clone()),
                    remote: h.remote.clone(),
                    cluster: h.cluster,
                    address_source: h.address_source.unwrap_or(self.address_source),
                }
            })
            .collect()
    }

    /// How to authenticate to (and trust) an HTTPS LXD.
    pub fn tls(&self) -> lxd_api::TlsOptions {
        lxd_api::TlsOptions {
            client_cert: self.client_cert.as_deref().map(expand_home),
            client_key: self.client_key.as_deref().map(expand_home),
            server_cert: self.server_cert.as_deref().map(expand_home),
            server_cert_fingerprint: self.server_cert_fingerprint.clone(),
        }
    }
}

/// `~/x` -> `$HOME/x`; other paths unchanged.
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => Path::new(&home).join(rest),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn yaml_file_with_every_kind_of_value() {
        let text = r"
url: unix:/run/lxd.sock
project: web
interface: [eth1, eth0]
family: ipv6
state: running
type: container
connection: ssh
ssh_user: debian
groups:
  by: profile, status
  stopped: down
  keyed:
    user.tier: tier
";
        let cfg = Config::from_text(Path::new("x.yml"), text).expect("parses");
        assert_eq!(cfg.interface, ["eth1", "eth0"]);
        assert_eq!(cfg.family, Family::Inet6);
        assert_eq!(cfg.state, ["running"]);
        assert_eq!(cfg.type_filter, TypeFilter::Container);
        assert_eq!(cfg.connection, Connection::Ssh);
        assert_eq!(cfg.groups.by, ["profile", "status"]);
        assert_eq!(cfg.groups.stopped, "down");
        assert_eq!(cfg.groups.all, "lxd");
        assert_eq!(cfg.groups.keyed["user.tier"], "tier");
        assert_eq!(cfg.url.as_deref(), Some("unix:/run/lxd.sock"));
        cfg.check().expect("valid");
    }

    #[test]
    fn toml_file() {
        let text = "url = \"https://lxd.example:8443/\"\nclient_cert = \"c.crt\"\nclient_key = \"c.key\"\n[groups]\nstopped = \"off\"\n";
        let cfg = Config::from_text(Path::new("x.toml"), text).expect("parses");
        assert_eq!(cfg.groups.stopped, "off");
        assert_eq!(cfg.url.as_deref(), Some("https://lxd.example:8443/"));
        cfg.check().expect("valid");
    }

    #[test]
    fn shipped_example_is_valid_and_shows_the_defaults() {
        let text = include_str!("../lxd_inventory.example.yml");
        let cfg = Config::from_text(Path::new("lxd_inventory.example.yml"), text).expect("parses");
        cfg.check().expect("valid");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn home_is_expanded_in_certificate_paths() {
        let home = std::env::var("HOME").unwrap_or_default();
        let cfg = Config {
            client_cert: Some("~/.config/lxc/client.crt".into()),
            client_key: Some("/etc/k.key".into()),
            ..Config::default()
        };
        let tls = cfg.tls();
        if !home.is_empty() {
            assert_eq!(
                tls.client_cert,
                Some(Path::new(&home).join(".config/lxc/client.crt"))
            );
        }
        assert_eq!(tls.client_key, Some(PathBuf::from("/etc/k.key")));
    }

    #[test]
    fn empty_file_is_defaults() {
        let cfg = Config::from_text(Path::new("x.yml"), "\n").expect("parses");
        assert_eq!(cfg, Config::default());
    }

    #[test]
    fn unknown_key_and_bad_choice_are_one_line_errors() {
        let e = Config::from_text(Path::new("x.yml"), "projcet: x\n").expect_err("unknown key");
        let msg = e.to_string();
        assert!(msg.contains("unknown field `projcet`"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
        let e = Config::from_text(Path::new("x.yml"), "family: ipx\n").expect_err("bad family");
        assert!(
            e.to_string()
                .contains("must be one of: inet, inet6, got: ipx"),
            "{e}"
        );
        let e = Config::from_text(Path::new("x.toml"), "family = 4\n").expect_err("bad type");
        assert!(!e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn environment_overrides_file() {
        let mut cfg =
            Config::from_text(Path::new("x.yml"), "project: a\nconnection: ssh\n").expect("parses");
        let env = |k: &str| match k {
            "LXD_INVENTORY_PROJECT" => Some("b".to_owned()),
            "LXD_INVENTORY_CONNECTION" => Some("lxd".to_owned()),
            "LXD_INVENTORY_INTERFACE" => Some("eth1,eth0".to_owned()),
            "LXD_INVENTORY_GROUP_BY" => Some(String::new()),
            "LXD_INVENTORY_URL" => Some("/tmp/none.sock".to_owned()),
            _ => None,
        };
        cfg.apply_env(&env).expect("env applies");
        assert_eq!(cfg.project, "b");
        assert_eq!(cfg.connection, Connection::Lxd);
        assert_eq!(cfg.interface, ["eth1", "eth0"]);
        assert!(cfg.groups.by.is_empty());
        assert_eq!(cfg.url.as_deref(), Some("/tmp/none.sock"));
        let bad = |k: &str| (k == "LXD_INVENTORY_FAMILY").then(|| "7".to_owned());
        let e = cfg.apply_env(&bad).expect_err("bad family");
        assert_eq!(
            e.to_string(),
            "bad value in $LXD_INVENTORY_FAMILY: must be one of: inet, inet6, got: 7"
        );
        assert_eq!(cfg.address_source, AddressSource::Leases);
        let state = |k: &str| (k == "LXD_INVENTORY_ADDRESS_SOURCE").then(|| "State".to_owned());
        cfg.apply_env(&state).expect("env applies");
        assert_eq!(cfg.address_source, AddressSource::State);
        let bad = |k: &str| (k == "LXD_INVENTORY_ADDRESS_SOURCE").then(|| "dhcp".to_owned());
        assert_eq!(
            cfg.apply_env(&bad).expect_err("bad source").to_string(),
            "bad value in $LXD_INVENTORY_ADDRESS_SOURCE: must be one of: leases, state, got: dhcp"
        );
        let cfg = Config::from_text(Path::new("x.yml"), "address_source: state\n").expect("parses");
        assert_eq!(cfg.address_source, AddressSource::State);
    }

    #[test]
    fn checks() {
        let with = |text: &str| {
            Config::from_text(Path::new("x.yml"), text)
                .expect("parses")
                .check()
                .expect_err("invalid")
                .to_string()
        };
        assert!(with("groups: {by: [profile, os]}").contains("got: os"));
        assert!(with("client_cert: a.crt").contains("set both or neither"));
        assert!(with("url: http://x").contains("not understood"));
        assert!(with("interface: []").contains("at least one"));
        assert!(with("timeout: 0").contains("at least 1 second"));
    }

    #[test]
    fn lookup_order_and_missing_explicit_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = dir.path().join("bin");
        let cwd = dir.path().join("cwd");
        std::fs::create_dir_all(&exe).expect("mkdir");
        std::fs::create_dir_all(&cwd).expect("mkdir");
        std::fs::write(cwd.join("lxd_inventory.yml"), "project: from-cwd\n").expect("write");
        let (cfg, file) = Config::load(&no_env, &[exe.clone(), cwd.clone()]).expect("loads");
        assert_eq!(cfg.project, "from-cwd");
        assert_eq!(file, Some(cwd.join("lxd_inventory.yml")));
        std::fs::write(exe.join("lxd_inventory.toml"), "project = \"beside\"\n").expect("write");
        let (cfg, _) = Config::load(&no_env, &[exe.clone(), cwd.clone()]).expect("loads");
        assert_eq!(cfg.project, "beside");
        let missing = dir.path().join("nope.yml");
        let env = |k: &str| (k == "LXD_INVENTORY_CONFIG").then(|| missing.display().to_string());
        let e = Config::load(&env, &[exe.clone(), cwd.clone()]).expect_err("missing");
        assert!(e.to_string().starts_with("cannot read config file"), "{e}");
    }

    #[test]
    fn hosts_file_shared_with_the_playbooks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts.yml");
        std::fs::write(
            &hosts,
            "hosts:\n  - name: lxd-1\n    url: https://10.232.0.11:8443\n    \
             server_cert_fingerprint: 89586f7da7fb33238120cfbce39c80e64cd91b9172a9ba278f51508840ada43a\n    \
             client_cert: /c.crt\n    client_key: /c.key\n    profiles: [default, macvlan]\n    image: x\n",
        )
        .expect("write");
        let config = dir.path().join("lxd_inventory.yml");
        std::fs::write(&config, format!("hosts_file: {}\n", hosts.display())).expect("write");
        let env = |k: &str| (k == "LXD_INVENTORY_CONFIG").then(|| config.display().to_string());
        let (cfg, _) = Config::load(&env, &[]).expect("loads");
        let read = cfg.lxd_hosts();
        assert_eq!(read.len(), 1);
        assert_eq!(read[0].name, "lxd-1");
        assert_eq!(read[0].client_key.as_deref(), Some(Path::new("/c.key")));
        assert_eq!(read[0].address_source, AddressSource::Leases);

        // An entry may say where its addresses come from, over the top-level
        // setting; a wrong value names what is allowed.
        std::fs::write(
            &hosts,
            "hosts:\n  - name: on-macvlan\n    address_source: state\n  - name: on-a-bridge\n",
        )
        .expect("write");
        let read = Config::load(&env, &[]).expect("loads").0.lxd_hosts();
        let sources: Vec<_> = read
            .iter()
            .map(|h| (h.name.as_str(), h.address_source))
            .collect();
        assert_eq!(
            sources,
            [
                ("on-macvlan", AddressSource::State),
                ("on-a-bridge", AddressSource::Leases)
            ]
        );
        std::fs::write(&hosts, "hosts:\n  - name: x\n    address_source: dhcp\n").expect("write");
        let e = Config::load(&env, &[]).expect_err("bad address_source");
        assert!(
            e.to_string()
                .contains("must be one of: leases, state, got: dhcp"),
            "{e}"
        );

        std::fs::write(&hosts, "other: 1\n").expect("write");
        let e = Config::load(&env, &[]).expect_err("no hosts list");
        assert!(e.to_string().contains("no hosts: list"), "{e}");
    }

    #[test]
    fn hosts_list_in_yaml_with_top_level_defaults() {
        let text = r#"
client_cert: /etc/mh/client.crt
client_key: /etc/mh/client.key
project: web
skip_unreachable: true
hosts:
  - name: lxd-1
    url: https://10.232.0.11:8443
    server_cert_fingerprint: "sha256:89586F7DA7FB33238120CFBCE39C80E64CD91B9172A9BA278F51508840ADA43A"
  - name: lxd-2
    url: https://10.232.0.12
    server_cert: /etc/mh/lxd-2.crt
    client_cert: /root/other.crt
    client_key: /root/other.key
    project: default
    remote: two
  - name: here
"#;
        let cfg = Config::from_text(Path::new("x.yml"), text).expect("parses");
        cfg.check().expect("valid");
        assert!(cfg.skip_unreachable);
        let hosts = cfg.lxd_hosts();
        let names: Vec<&str> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["lxd-1", "lxd-2", "here"]);
        // Left out of an entry: the top level's client pair and project.
        assert_eq!(
            hosts[0].client_cert.as_deref(),
            Some(Path::new("/etc/mh/client.crt"))
        );
        assert_eq!(
            hosts[0].client_key.as_deref(),
            Some(Path::new("/etc/mh/client.key"))
        );
        assert_eq!(hosts[0].project, "web");
        assert_eq!(hosts[0].remote, None);
        assert_eq!(
            hosts[0].https_url().as_deref(),
            Some("https://10.232.0.11:8443")
        );
        // An entry's own values win.
        assert_eq!(
            hosts[1].client_key.as_deref(),
            Some(Path::new("/root/other.key"))
        );
        assert_eq!(hosts[1].project, "default");
        assert_eq!(hosts[1].remote.as_deref(), Some("two"));
        assert_eq!(hosts[1].endpoint(), "https://10.232.0.12:8443");
        assert_eq!(
            hosts[1].tls().server_cert.as_deref(),
            Some(Path::new("/etc/mh/lxd-2.crt"))
        );
        // No url: the local socket.
        assert_eq!(hosts[2].url, None);
        assert_eq!(hosts[2].https_url(), None);
        assert_eq!(hosts[2].endpoint(), "the local socket");
    }

    #[test]
    fn hosts_list_in_toml() {
        let text = "skip_unreachable = false\n\
            [[hosts]]\nname = \"a\"\nurl = \"unix:/run/a.sock\"\n\
            [[hosts]]\nname = \"b\"\nurl = \"https://b:8443\"\nserver_cert_fingerprint = \"ab:cd\"\nproject = \"p\"\n";
        let cfg = Config::from_text(Path::new("x.toml"), text).expect("parses");
        cfg.check().expect("valid");
        let hosts = cfg.lxd_hosts();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].endpoint(), "unix:/run/a.sock");
        assert_eq!(hosts[0].https_url(), None);
        assert_eq!(hosts[1].project, "p");
        assert_eq!(hosts[1].server_cert_fingerprint.as_deref(), Some("ab:cd"));
    }

    #[test]
    fn without_hosts_one_host_from_the_top_level_keys() {
        let cfg = Config::default();
        let hosts = cfg.lxd_hosts();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].name, DEFAULT_HOST_NAME);
        assert_eq!(hosts[0].url, None);
        assert_eq!(hosts[0].project, "default");

        let cfg = Config::from_text(
            Path::new("x.yml"),
            "url: https://lxd1.example.net\nremote: lxd1\nproject: prod\nserver_cert_fingerprint: ab\nclient_cert: c\nclient_key: k\n",
        )
        .expect("parses");
        cfg.check().expect("valid");
        let hosts = cfg.lxd_hosts();
        assert_eq!(hosts.len(), 1);
        let h = &hosts[0];
        assert_eq!(h.name, "lxd1", "named after its remote");
        assert_eq!(h.url.as_deref(), Some("https://lxd1.example.net"));
        assert_eq!(
            h.https_url().as_deref(),
            Some("https://lxd1.example.net:8443")
        );
        assert_eq!(h.project, "prod");
        assert_eq!(h.remote.as_deref(), Some("lxd1"));
        assert_eq!(h.server_cert_fingerprint.as_deref(), Some("ab"));
        assert_eq!(h.tls(), cfg.tls());
    }

    #[test]
    fn bad_hosts_lists_are_one_line_errors() {
        let with = |text: &str| {
            let cfg = Config::from_text(Path::new("x.yml"), text).expect("parses");
            let msg = cfg.check().expect_err("invalid").to_string();
            assert!(!msg.contains('\n'), "{msg}");
            msg
        };
        let msg = with("hosts: [{name: a}, {name: ' a', url: unix:/x}]");
        assert!(msg.contains("the name \"a\" is used twice"), "{msg}");
        let msg = with("hosts: [{name: lxd-1}, {name: lxd_1}]");
        assert!(
            msg.contains("\"lxd-1\" and \"lxd_1\" would share the group lxdhost_lxd_1"),
            "{msg}"
        );
        let msg = with("url: https://x\nhosts: [{name: a}]");
        assert!(
            msg.starts_with("bad config: url is set at the top level"),
            "{msg}"
        );
        let msg = with("remote: r\nhosts: [{name: a}]");
        assert!(msg.contains("remote is set at the top level"), "{msg}");
        let msg = with("hosts: [{name: a, url: http://x}]");
        assert!(
            msg.contains("hosts: \"a\": ") && msg.contains("not understood"),
            "{msg}"
        );
        let msg = with("hosts: [{name: a, client_cert: c.crt}]");
        assert!(
            msg.contains("hosts: \"a\": client_cert and client_key"),
            "{msg}"
        );
        let msg = with("hosts: [{name: ' '}]");
        assert!(msg.contains("every entry needs a name"), "{msg}");
        let msg = with("hosts: [{name: a, project: ''}]");
        assert!(msg.contains("project must not be empty"), "{msg}");

        let e = Config::from_text(Path::new("x.yml"), "hosts: [{url: unix:/x}]\n")
            .expect_err("no name");
        assert!(e.to_string().contains("missing field `name`"), "{e}");
        let e = Config::from_text(Path::new("x.yml"), "hosts: [{name: a, ulr: x}]\n")
            .expect_err("typo");
        assert!(e.to_string().contains("unknown field `ulr`"), "{e}");
    }

    #[test]
    fn skip_unreachable_from_the_environment() {
        let mut cfg = Config::default();
        let env = |k: &str| (k == "LXD_INVENTORY_SKIP_UNREACHABLE").then(|| "yes".to_owned());
        cfg.apply_env(&env).expect("applies");
        assert!(cfg.skip_unreachable);
        let env = |k: &str| (k == "LXD_INVENTORY_SKIP_UNREACHABLE").then(|| "0".to_owned());
        cfg.apply_env(&env).expect("applies");
        assert!(!cfg.skip_unreachable);
        let env = |k: &str| (k == "LXD_INVENTORY_SKIP_UNREACHABLE").then(|| "maybe".to_owned());
        let e = cfg.apply_env(&env).expect_err("bad");
        assert!(e.to_string().contains("must be true or false"), "{e}");
    }

    #[test]
    fn fingerprints_in_the_form_the_connection_plugin_takes() {
        let hex = "89586f7da7fb33238120cfbce39c80e64cd91b9172a9ba278f51508840ada43a";
        assert_eq!(fingerprint_hex(hex).as_deref(), Some(hex));
        assert_eq!(
            fingerprint_hex(&format!("sha256:{}", hex.to_uppercase())).as_deref(),
            Some(hex)
        );
        let colons: Vec<String> = hex
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        assert_eq!(fingerprint_hex(&colons.join(":")).as_deref(), Some(hex));
        assert_eq!(fingerprint_hex("abcd"), None);
        assert_eq!(fingerprint_hex(&"zz".repeat(32)), None);
    }
}
