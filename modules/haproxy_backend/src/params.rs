//! The module's options: the argument spec Ansible's validation runs on, and the
//! typed view of the validated values.

use serde::Deserialize;

pub const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str", "aliases": ["backend"]},
    "state": {"type": "str", "default": "present",
              "choices": ["present", "absent", "enabled", "disabled", "drain", "maint"]},
    "server": {"type": "str", "aliases": ["host"]},
    "address": {"type": "str"},
    "port": {"type": "int"},
    "weight": {"type": "raw"},
    "wait": {"type": "bool", "default": false},
    "wait_timeout": {"type": "int", "default": 60},
    "wait_interval": {"type": "int"},
    "wait_retries": {"type": "int"},
    "drain": {"type": "bool", "default": false},
    "shutdown_sessions": {"type": "bool", "default": false},
    "health": {"type": "bool", "default": false},
    "agent": {"type": "bool", "default": false},
    "fail_on_not_found": {"type": "bool", "default": false},
    "servers": {"type": "list", "elements": "dict", "options": {
      "name": {"type": "str", "required": true},
      "address": {"type": "str", "required": true},
      "port": {"type": "int", "default": 80},
      "weight": {"type": "int", "default": 100},
      "check": {"type": "bool", "default": true},
      "backup": {"type": "bool", "default": false}
    }},
    "balance": {"type": "str", "default": "roundrobin",
                "choices": ["roundrobin", "static-rr", "leastconn", "first", "source", "uri", "random"]},
    "health_check": {"type": "dict", "apply_defaults": true, "options": {
      "method": {"type": "str", "default": "OPTIONS"},
      "path": {"type": "str", "default": "/"},
      "expect_status": {"type": "int", "default": 200},
      "interval": {"type": "str", "default": "2s"},
      "fast_interval": {"type": "str", "default": "500ms"},
      "rise": {"type": "int", "default": 2},
      "fall": {"type": "int", "default": 3},
      "observe": {"type": "str", "default": "layer4", "choices": ["none", "layer4", "layer7"]},
      "error_limit": {"type": "int", "default": 1},
      "on_error": {"type": "str", "default": "fastinter",
                   "choices": ["fastinter", "fail-check", "sudden-death", "mark-down"]}
    }},
    "retry": {"type": "dict", "apply_defaults": true, "options": {
      "retries": {"type": "int", "default": 3},
      "redispatch": {"type": "int", "default": 1},
      "conditions": {"type": "list", "elements": "str",
                     "default": ["conn-failure", "empty-response", "response-timeout", "0rtt-rejected", "502", "503", "504"],
                     "choices": ["none", "conn-failure", "empty-response", "junk-response", "response-timeout",
                                 "0rtt-rejected", "all-retryable-errors",
                                 "401", "403", "404", "408", "425", "500", "501", "502", "503", "504"]},
      "replay_methods": {"type": "list", "elements": "str", "default": ["GET", "HEAD", "OPTIONS"]}
    }},
    "forwardfor": {"type": "bool", "default": true},
    "frontend": {"type": "dict", "apply_defaults": true, "options": {
      "name": {"type": "str", "default": "http_in"},
      "bind": {"type": "str", "default": "*:80"},
      "tls": {"type": "dict", "options": {
        "bind": {"type": "str", "default": "*:443"},
        "certificate": {"type": "path", "default": "/etc/haproxy/tls.pem"},
        "certificate_content": {"type": "str", "no_log": true},
        "redirect_http": {"type": "bool", "default": true},
        "hsts": {"type": "int", "default": 0},
        "ciphers": {"type": "str", "default": "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"},
        "ciphersuites": {"type": "str", "default": "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"},
        "min_version": {"type": "str", "default": "TLSv1.2", "choices": ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"]}
      }}
    }},
    "stickiness": {"type": "str", "default": "none", "choices": ["none", "cookie", "source"]},
    "cookie": {"type": "dict", "apply_defaults": true, "options": {
      "name": {"type": "str", "default": "SERVERID"},
      "key": {"type": "str", "no_log": true},
      "key_file": {"type": "path", "default": "/etc/haproxy/cookie.key"}
    }},
    "stats": {"type": "dict", "apply_defaults": true, "options": {
      "enabled": {"type": "bool", "default": false},
      "bind": {"type": "str", "default": "*:8404"},
      "uri": {"type": "str", "default": "/haproxy?stats"},
      "user": {"type": "str", "default": "stats"},
      "password_file": {"type": "path", "default": "/etc/haproxy/stats.password"},
      "password": {"type": "str", "no_log": true}
    }},
    "timeouts": {"type": "dict", "apply_defaults": true, "options": {
      "connect": {"type": "str", "default": "5s"},
      "client": {"type": "str", "default": "50s"},
      "server": {"type": "str", "default": "50s"},
      "http_request": {"type": "str", "default": "10s"},
      "queue": {"type": "str", "default": "30s"}
    }},
    "extra": {"type": "dict", "apply_defaults": true, "options": {
      "global": {"type": "list", "elements": "str", "default": []},
      "defaults": {"type": "list", "elements": "str", "default": []},
      "frontend": {"type": "list", "elements": "str", "default": []},
      "backend": {"type": "list", "elements": "str", "default": []}
    }},
    "conflicting_services": {"type": "list", "elements": "str", "default": []},
    "config_path": {"type": "path", "default": "/etc/haproxy/haproxy.cfg"},
    "admin_socket": {"type": "path", "default": "/run/haproxy/admin.sock", "aliases": ["socket"]},
    "validate": {"type": "str", "default": "haproxy -c -q -f %s"}
  },
  "mutually_exclusive": [["server", "servers"]],
  "supports_check_mode": true
}"#;

/// `state`: the backend's (`present`, `absent`) or, with `server`, one
/// server's (every choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Present,
    Absent,
    Enabled,
    Disabled,
    Drain,
    Maint,
}

impl State {
    /// As the option is written.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Present => "present",
            State::Absent => "absent",
            State::Enabled => "enabled",
            State::Disabled => "disabled",
            State::Drain => "drain",
            State::Maint => "maint",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `balance`: HAProxy's load-balancing algorithm, as haproxy.cfg writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Balance {
    #[serde(rename = "roundrobin")]
    Roundrobin,
    #[serde(rename = "static-rr")]
    StaticRr,
    #[serde(rename = "leastconn")]
    Leastconn,
    #[serde(rename = "first")]
    First,
    #[serde(rename = "source")]
    Source,
    #[serde(rename = "uri")]
    Uri,
    #[serde(rename = "random")]
    Random,
}

impl Balance {
    /// As the option and haproxy.cfg write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::Roundrobin => "roundrobin",
            Balance::StaticRr => "static-rr",
            Balance::Leastconn => "leastconn",
            Balance::First => "first",
            Balance::Source => "source",
            Balance::Uri => "uri",
            Balance::Random => "random",
        }
    }
}

impl std::fmt::Display for Balance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `stickiness`: how a client keeps to one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stickiness {
    /// Every request is balanced on its own.
    None,
    /// A cookie names the server (dynamic cookies from `cookie.key`).
    Cookie,
    /// The client's address is hashed (`balance source`).
    Source,
}

/// A server's `weight` option: absolute, or a percentage of the weight it is
/// configured with (`community.general.haproxy`'s `"50%"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weight {
    Absolute(u16),
    Percent(u16),
}

/// `community.general.haproxy`'s defaults for `wait_interval` and
/// `wait_retries`, used for the one not given when the other is.
pub const CG_WAIT_INTERVAL: i64 = 5;
pub const CG_WAIT_RETRIES: i64 = 25;

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    /// The backend; `None` (server level only): every backend that has the
    /// server.
    pub name: Option<String>,
    pub state: State,
    pub server: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    /// An int, or a string of one, or `"N%"` (see `checks::weight_option`).
    pub weight: Option<serde_json::Value>,
    pub wait: bool,
    pub wait_timeout: i64,
    pub wait_interval: Option<i64>,
    pub wait_retries: Option<i64>,
    /// With `state=disabled`: drain first, then maintenance.
    pub drain: bool,
    pub shutdown_sessions: bool,
    pub health: bool,
    pub agent: bool,
    pub fail_on_not_found: bool,
    pub servers: Option<Vec<ServerParam>>,
    pub balance: Balance,
    pub health_check: HealthCheck,
    pub retry: Retry,
    pub forwardfor: bool,
    pub frontend: Frontend,
    pub stickiness: Stickiness,
    pub cookie: Cookie,
    pub stats: Stats,
    pub timeouts: Timeouts,
    pub extra: Extra,
    /// Services stopped and disabled before HAProxy starts (they would hold
    /// its ports).
    #[serde(default)]
    pub conflicting_services: Vec<String>,
    pub config_path: String,
    pub admin_socket: String,
    pub validate: String,
}

impl Params {
    /// The backend named by `name` (empty when none is: a server-level run
    /// over every backend that has the server).
    pub fn backend(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// How long `wait` waits: `wait_interval` x (`wait_retries` - 1) seconds
    /// when either is given (as `community.general.haproxy` counts: its
    /// first check is its first retry), else `wait_timeout`.
    pub fn wait_limit(&self) -> std::time::Duration {
        let secs = if self.wait_interval.is_some() || self.wait_retries.is_some() {
            let interval = self.wait_interval.unwrap_or(CG_WAIT_INTERVAL).max(0);
            let retries = self.wait_retries.unwrap_or(CG_WAIT_RETRIES).max(1);
            interval.saturating_mul(retries - 1)
        } else {
            self.wait_timeout
        };
        std::time::Duration::from_secs(secs.unsigned_abs())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct ServerParam {
    pub name: String,
    pub address: String,
    pub port: i64,
    pub weight: i64,
    pub check: bool,
    pub backup: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct HealthCheck {
    pub method: String,
    pub path: String,
    pub expect_status: i64,
    pub interval: String,
    /// `fastinter`: the check interval while a server is changing state.
    pub fast_interval: String,
    pub rise: i64,
    pub fall: i64,
    /// `observe`: `none`, `layer4` or `layer7`.
    pub observe: String,
    pub error_limit: i64,
    pub on_error: String,
}

/// `retry`: what HAProxy does with a request whose server failed it.
#[derive(Debug, Clone, Deserialize)]
pub struct Retry {
    pub retries: i64,
    /// `option redispatch <n>`: another server on every n-th retry (0 never,
    /// negative counts back from the last retry).
    pub redispatch: i64,
    /// `retry-on` keywords (the spec's choices); empty is `none`.
    pub conditions: Vec<String>,
    /// Methods whose requests may be sent again once a server had them; the
    /// others are retried only when the connection failed (nothing was sent).
    pub replay_methods: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Frontend {
    pub name: String,
    pub bind: String,
    /// HTTPS on the frontend (TLS terminated in HAProxy); `None`: plain HTTP only.
    pub tls: Option<Tls>,
}

/// `frontend.tls`: a second `bind` with `ssl crt`, the redirect, HSTS, and
/// the TLS settings of `global`.
#[derive(Debug, Clone, Deserialize)]
pub struct Tls {
    pub bind: String,
    /// The PEM (certificate chain and key) HAProxy loads (`crt`).
    pub certificate: String,
    /// When given, the module writes it to `certificate` (0600).
    pub certificate_content: Option<String>,
    pub redirect_http: bool,
    /// `Strict-Transport-Security: max-age=<hsts>`; 0 is off.
    pub hsts: i64,
    pub ciphers: String,
    pub ciphersuites: String,
    pub min_version: TlsVersion,
}

/// `frontend.tls.min_version`: HAProxy's `ssl-min-ver` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "TLSv1.0")]
    V10,
    #[serde(rename = "TLSv1.1")]
    V11,
    #[serde(rename = "TLSv1.2")]
    V12,
    #[serde(rename = "TLSv1.3")]
    V13,
}

impl TlsVersion {
    /// As the option and haproxy.cfg write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V10 => "TLSv1.0",
            TlsVersion::V11 => "TLSv1.1",
            TlsVersion::V12 => "TLSv1.2",
            TlsVersion::V13 => "TLSv1.3",
        }
    }
}

impl std::fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `extra`: lines added at the end of each section the module writes.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Extra {
    pub global: Vec<String>,
    pub defaults: Vec<String>,
    pub frontend: Vec<String>,
    pub backend: Vec<String>,
}

impl Extra {
    /// Every line with the option that gives it (`extra.frontend[1]`).
    pub fn lines(&self) -> Vec<(String, &str)> {
        [
            ("global", &self.global),
            ("defaults", &self.defaults),
            ("frontend", &self.frontend),
            ("backend", &self.backend),
        ]
        .into_iter()
        .flat_map(|(section, lines)| {
            lines
                .iter()
                .enumerate()
                .map(move |(i, l)| (format!("extra.{section}[{i}]"), l.as_str()))
        })
        .collect()
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Cookie {
    pub name: String,
    pub key: Option<String>,
    pub key_file: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Stats {
    pub enabled: bool,
    pub bind: String,
    pub uri: String,
    pub user: String,
    pub password_file: String,
    /// When given, the password `password_file` holds (written by the module).
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Timeouts {
    pub connect: String,
    pub client: String,
    pub server: String,
    pub http_request: String,
    pub queue: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// The choices the spec lists, for option `name`.
    fn choices(name: &str) -> Vec<String> {
        let spec: Value = serde_json::from_str(SPEC).expect("spec");
        spec["argument_spec"][name]["choices"]
            .as_array()
            .expect("choices")
            .iter()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect()
    }

    /// Every choice of the spec reads as a variant that writes it back the same.
    #[test]
    fn every_choice_is_a_variant_written_as_given() {
        for c in choices("state") {
            let v: State = serde_json::from_value(Value::String(c.clone())).expect("state");
            assert_eq!(v.to_string(), c);
        }
        for c in choices("balance") {
            let v: Balance = serde_json::from_value(Value::String(c.clone())).expect("balance");
            assert_eq!(v.to_string(), c);
        }
        let spec: Value = serde_json::from_str(SPEC).expect("spec");
        let versions = &spec["argument_spec"]["frontend"]["options"]["tls"]["options"]
            ["min_version"]["choices"];
        for c in versions.as_array().expect("choices") {
            let v: TlsVersion = serde_json::from_value(c.clone()).expect("min_version");
            assert_eq!(Value::String(v.to_string()), *c);
        }
        let sticky: Vec<Stickiness> = choices("stickiness")
            .into_iter()
            .map(|c| serde_json::from_value(Value::String(c)).expect("stickiness"))
            .collect();
        assert_eq!(
            sticky,
            [Stickiness::None, Stickiness::Cookie, Stickiness::Source]
        );
    }

    /// `wait_interval` and `wait_retries` as community.general.haproxy
    /// counts them (its checks are `range(1, wait_retries)`, a sleep after
    /// each), its defaults for the one not given; else `wait_timeout`.
    #[test]
    fn wait_limit_follows_community_general_when_asked() {
        let limit = |timeout: i64, interval: Option<i64>, retries: Option<i64>| {
            let mut v: Value = serde_json::from_str(
                r#"{"name": "web", "state": "present", "wait": true, "wait_timeout": 60,
                "drain": false, "shutdown_sessions": false, "health": false, "agent": false,
                "fail_on_not_found": false, "balance": "roundrobin", "forwardfor": true,
                "stickiness": "none",
                "health_check": {"method": "OPTIONS", "path": "/", "expect_status": 200, "interval": "2s", "fast_interval": "500ms",
                                 "rise": 2, "fall": 3, "observe": "layer4", "error_limit": 1, "on_error": "mark-down"},
                "retry": {"retries": 3, "redispatch": 1, "conditions": [], "replay_methods": []},
                "frontend": {"name": "http_in", "bind": "*:80"},
                "cookie": {"name": "SERVERID", "key_file": "/k"},
                "stats": {"enabled": false, "bind": "*:8404", "uri": "/s", "user": "stats", "password_file": "/p"},
                "timeouts": {"connect": "5s", "client": "50s", "server": "50s", "http_request": "10s", "queue": "30s"},
                "extra": {"global": [], "defaults": [], "frontend": [], "backend": []},
                "config_path": "/c", "admin_socket": "/s", "validate": "x %s"}"#,
            )
            .expect("json");
            v["wait_timeout"] = timeout.into();
            v["wait_interval"] = serde_json::json!(interval);
            v["wait_retries"] = serde_json::json!(retries);
            let p: Params = serde_json::from_value(v).expect("params");
            p.wait_limit().as_secs()
        };
        assert_eq!(limit(60, None, None), 60);
        assert_eq!(limit(7, None, None), 7);
        assert_eq!(limit(60, Some(5), Some(10)), 45);
        assert_eq!(limit(60, Some(60), Some(60)), 3540);
        assert_eq!(limit(60, Some(2), None), 48, "25 retries by default");
        assert_eq!(limit(60, None, Some(3)), 10, "every 5 s by default");
        assert_eq!(limit(60, Some(5), Some(1)), 0, "one check");
    }
}
