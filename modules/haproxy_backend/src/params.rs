//! The module's options: the argument spec Ansible's validation runs on, and the
//! typed view of the validated values.

use serde::Deserialize;

pub const SPEC: &str = r#"{
  "argument_spec": {
    "name": {"type": "str", "required": true, "aliases": ["backend"]},
    "state": {"type": "str", "default": "present",
              "choices": ["present", "absent", "enabled", "disabled", "drain", "maint"]},
    "server": {"type": "str"},
    "address": {"type": "str"},
    "port": {"type": "int"},
    "weight": {"type": "int"},
    "wait": {"type": "bool", "default": false},
    "wait_timeout": {"type": "int", "default": 60},
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
      "rise": {"type": "int", "default": 2},
      "fall": {"type": "int", "default": 3}
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
      "password_file": {"type": "path", "default": "/etc/haproxy/stats.password"}
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
    "config_path": {"type": "path", "default": "/etc/haproxy/haproxy.cfg"},
    "admin_socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
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

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub name: String,
    pub state: State,
    pub server: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub wait: bool,
    pub wait_timeout: i64,
    pub servers: Option<Vec<ServerParam>>,
    pub balance: Balance,
    pub health_check: HealthCheck,
    pub forwardfor: bool,
    pub frontend: Frontend,
    pub stickiness: Stickiness,
    pub cookie: Cookie,
    pub stats: Stats,
    pub timeouts: Timeouts,
    pub extra: Extra,
    pub config_path: String,
    pub admin_socket: String,
    pub validate: String,
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
    pub rise: i64,
    pub fall: i64,
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
}
