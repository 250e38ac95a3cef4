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
      "bind": {"type": "str", "default": "*:80"}
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
    "config_path": {"type": "path", "default": "/etc/haproxy/haproxy.cfg"},
    "admin_socket": {"type": "path", "default": "/run/haproxy/admin.sock"},
    "validate": {"type": "str", "default": "haproxy -c -q -f %s"}
  },
  "mutually_exclusive": [["server", "servers"]],
  "supports_check_mode": true
}"#;

#[derive(Debug, Clone, Deserialize)]
pub struct Params {
    pub name: String,
    pub state: String,
    pub server: Option<String>,
    pub address: Option<String>,
    pub port: Option<i64>,
    pub weight: Option<i64>,
    pub wait: bool,
    pub wait_timeout: i64,
    pub servers: Option<Vec<ServerParam>>,
    pub balance: String,
    pub health_check: HealthCheck,
    pub forwardfor: bool,
    pub frontend: Frontend,
    pub stickiness: String,
    pub cookie: Cookie,
    pub stats: Stats,
    pub timeouts: Timeouts,
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
