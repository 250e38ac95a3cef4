//! The cluster side of the API: whether the server is a cluster member, the
//! members with their status, and a member's evacuation and restore.

use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::{encode, Client};
use crate::error::{Error, Result};
use crate::Method;

/// One cluster member as `GET /1.0/cluster/members?recursion=1` describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ClusterMember {
    pub server_name: String,
    #[serde(default)]
    pub url: String,
    /// `Online`, `Evacuated`, `Offline`, `Blocked` (as LXD writes it).
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub database: bool,
    #[serde(default)]
    pub failure_domain: String,
}

impl ClusterMember {
    /// Whether new instances can be placed on it (not offline, not evacuated).
    pub fn is_online(&self) -> bool {
        self.status.eq_ignore_ascii_case("online")
    }
}

/// What `POST /1.0/cluster/members/<name>/state` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberAction {
    /// Stop (or migrate) every instance away and take no new ones.
    Evacuate,
    /// Take instances again and bring back those evacuated from it.
    Restore,
}

impl MemberAction {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberAction::Evacuate => "evacuate",
            MemberAction::Restore => "restore",
        }
    }
}

impl Client {
    /// Whether this server is a member of a cluster (`GET /1.0/cluster`).
    pub fn is_clustered(&self) -> Result<bool> {
        Ok(self
            .get("/1.0/cluster")?
            .get("enabled")
            .and_then(Value::as_bool)
            == Some(true))
    }

    /// Every member, in the order LXD lists them.
    pub fn cluster_members(&self) -> Result<Vec<ClusterMember>> {
        let path = "/1.0/cluster/members?recursion=1";
        let answer = self.get(path)?;
        serde_json::from_value(answer).map_err(|e| Error::Protocol {
            backend: self.backend(),
            method: "GET".into(),
            path: path.into(),
            detail: format!("unexpected member list ({e})"),
        })
    }

    /// One member, or `None` when the cluster has no such member.
    pub fn cluster_member(&self, name: &str) -> Result<Option<ClusterMember>> {
        let path = format!("/1.0/cluster/members/{}", encode(name));
        match self.get(&path) {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| Error::Protocol {
                    backend: self.backend(),
                    method: "GET".into(),
                    path,
                    detail: format!("unexpected member ({e})"),
                }),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Evacuates or restores a member and waits (up to `timeout`) until LXD
    /// has moved or stopped its instances. `mode` is the evacuation mode
    /// (`stop`, `migrate`, `live-migrate`; `None`: each instance's
    /// `cluster.evacuate` setting).
    pub fn set_member_state(
        &self,
        name: &str,
        action: MemberAction,
        mode: Option<&str>,
        timeout: Duration,
    ) -> Result<()> {
        let path = format!("/1.0/cluster/members/{}/state", encode(name));
        let mut body = json!({"action": action.as_str()});
        if let Some(m) = mode.filter(|m| !m.is_empty()) {
            body["mode"] = json!(m);
        }
        self.call(Method::POST, &path, Some(&body), timeout)
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_as_lxd_5_0_lists_them() {
        let v = json!([
            {"server_name": "cl-host-1", "url": "https://10.233.0.11:8443", "database": true,
             "status": "Online", "message": "Fully operational", "roles": ["database"],
             "architecture": "x86_64", "failure_domain": "default", "description": "", "config": {}},
            {"server_name": "cl-host-2", "url": "https://10.233.0.12:8443", "database": false,
             "status": "Evacuated", "message": "Unavailable due to maintenance", "roles": [],
             "architecture": "x86_64", "failure_domain": "default"}
        ]);
        let members: Vec<ClusterMember> = serde_json::from_value(v).expect("members");
        assert_eq!(members[0].server_name, "cl-host-1");
        assert!(members[0].is_online());
        assert_eq!(members[0].roles, ["database"]);
        assert!(!members[1].is_online());
        assert_eq!(members[1].status, "Evacuated");
    }
}
