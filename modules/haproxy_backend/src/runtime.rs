//! HAProxy's runtime API over the admin socket: one command per connection
//! (the socket answers and closes), plain text in and out.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::Admin;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot reach the HAProxy admin socket {path}: {source} (is haproxy running with `stats socket {path} ... level admin`?)")]
    Unreachable {
        path: String,
        source: std::io::Error,
    },
    #[error("HAProxy refused `{command}`: {answer}")]
    Refused { command: String, answer: String },
    #[error("refusing to send {command:?} to HAProxy's admin socket: a line break, NUL or ';' would make it more than one command")]
    NotOneCommand { command: String },
}

/// Whether `command` is exactly one runtime API command: HAProxy reads a
/// line break or a `;` as the end of a command, so a value that reached a
/// command with one would smuggle in another. Every value is checked where
/// it enters (`checks`); this is the last line of defence.
pub fn one_command(command: &str) -> Result<&str, RuntimeError> {
    if command.contains(['\n', '\r', '\0', ';']) {
        return Err(RuntimeError::NotOneCommand {
            command: command.to_string(),
        });
    }
    Ok(command)
}

/// `srv_admin_state` bits (management.txt, "show servers state").
const ADMF_FMAINT: u32 = 0x01;
const ADMF_IMAINT: u32 = 0x02;
// 0x04 (CMAINT) only marks that the config said `disabled`: HAProxy sets FMAINT
// with it, and `set server ... state ready` clears FMAINT but leaves it.
const ADMF_FDRAIN: u32 = 0x08;
const ADMF_IDRAIN: u32 = 0x10;
const ADMF_RMAINT: u32 = 0x20;

/// `srv_op_state` of a server that is up.
pub const OP_RUNNING: u8 = 2;

/// `srv_check_state` / `srv_agent_state` bits (HAProxy's `CHK_ST_*`).
const CHK_ST_CONFIGURED: u32 = 0x02;
const CHK_ST_ENABLED: u32 = 0x04;

/// One server as the running HAProxy has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtServer {
    pub name: String,
    pub address: String,
    pub port: u16,
    pub op_state: u8,
    pub admin_flags: u32,
    pub weight: u16,
    /// The health check's and the agent check's `CHK_ST_*` bits.
    pub check_state: u32,
    pub agent_state: u32,
}

impl RtServer {
    /// The admin state; a server at weight 0 gets no new traffic, which is
    /// what a drain is (a drained server read back from the file after a
    /// reload runs at weight 0 without the drain flag).
    pub fn admin(&self) -> Admin {
        match self.admin_by_flags() {
            Admin::Ready if self.weight == 0 => Admin::Drain,
            a => a,
        }
    }

    /// The admin state by HAProxy's flags alone.
    pub fn admin_by_flags(&self) -> Admin {
        // HAProxy's own SRV_ADMF_MAINT mask.
        if self.admin_flags & (ADMF_FMAINT | ADMF_IMAINT | ADMF_RMAINT) != 0 {
            Admin::Maint
        } else if self.admin_flags & (ADMF_FDRAIN | ADMF_IDRAIN) != 0 {
            Admin::Drain
        } else {
            Admin::Ready
        }
    }

    /// `(configured, enabled)` of the health check.
    pub fn health(&self) -> (bool, bool) {
        (
            self.check_state & CHK_ST_CONFIGURED != 0,
            self.check_state & CHK_ST_ENABLED != 0,
        )
    }

    /// `(configured, enabled)` of the agent check.
    pub fn agent(&self) -> (bool, bool) {
        (
            self.agent_state & CHK_ST_CONFIGURED != 0,
            self.agent_state & CHK_ST_ENABLED != 0,
        )
    }

    pub fn op_name(&self) -> &'static str {
        match self.op_state {
            0 => "down",
            1 => "starting",
            2 => "up",
            3 => "stopping",
            _ => "unknown",
        }
    }
}

pub struct Socket {
    pub path: PathBuf,
    pub timeout: Duration,
}

impl Socket {
    pub fn new(path: impl Into<PathBuf>) -> Socket {
        Socket {
            path: path.into(),
            timeout: Duration::from_secs(10),
        }
    }

    fn unreachable(&self, source: std::io::Error) -> RuntimeError {
        RuntimeError::Unreachable {
            path: self.path.display().to_string(),
            source,
        }
    }

    /// Connects, giving up after the timeout (a socket whose backlog is full
    /// would block `connect` for ever).
    fn connect(&self) -> std::io::Result<UnixStream> {
        let path = self.path.clone();
        let attempt = std::thread::spawn(move || UnixStream::connect(path));
        let start = std::time::Instant::now();
        while !attempt.is_finished() {
            if start.elapsed() >= self.timeout {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting timed out",
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        attempt
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("connecting failed")))
    }

    /// Sends one command and returns the whole answer.
    pub fn raw(&self, command: &str) -> Result<String, RuntimeError> {
        let command = one_command(command)?;
        let mut stream = self.connect().map_err(|e| self.unreachable(e))?;
        stream
            .set_read_timeout(Some(self.timeout))
            .and_then(|()| stream.set_write_timeout(Some(self.timeout)))
            .and_then(|()| stream.write_all(format!("{command}\n").as_bytes()))
            .map_err(|e| self.unreachable(e))?;
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .map_err(|e| self.unreachable(e))?;
        Ok(answer)
    }

    /// Sends a command that answers with nothing, or with one of `ok`, on success.
    pub fn command(&self, command: &str, ok: &[&str]) -> Result<(), RuntimeError> {
        one_command(command)?;
        let answer = self.raw(command)?;
        let text = answer.trim();
        if text.is_empty() || ok.iter().any(|o| text.starts_with(o)) {
            Ok(())
        } else {
            Err(RuntimeError::Refused {
                command: command.to_string(),
                answer: text.to_string(),
            })
        }
    }

    /// The servers of `backend`; `None` when the running HAProxy has no such
    /// backend.
    pub fn servers(&self, backend: &str) -> Result<Option<Vec<RtServer>>, RuntimeError> {
        let answer = self.raw(&format!("show servers state {backend}"))?;
        Ok(parse_servers_state(&answer))
    }

    /// Current sessions plus queued requests per server of `backend`.
    pub fn sessions(&self, backend: &str) -> Result<BTreeMap<String, u64>, RuntimeError> {
        let answer = self.raw("show stat -1 4 -1")?;
        Ok(parse_sessions(&answer, backend))
    }

    /// The worker's pid, which changes when a reload took effect.
    pub fn pid(&self) -> Result<Option<u32>, RuntimeError> {
        Ok(self.info()?.map(|i| i.pid))
    }

    pub fn info(&self) -> Result<Option<Info>, RuntimeError> {
        Ok(parse_info(&self.raw("show info")?))
    }
}

/// The running worker: its pid and how long it has run (whole seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub pid: u32,
    pub uptime_sec: u64,
}

pub fn parse_info(answer: &str) -> Option<Info> {
    let field = |name: &str| {
        answer
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    Some(Info {
        pid: field("Pid")?.parse().ok()?,
        uptime_sec: field("Uptime_sec")?.parse().ok()?,
    })
}

pub fn parse_servers_state(answer: &str) -> Option<Vec<RtServer>> {
    let mut lines = answer.lines();
    if lines.next().map(str::trim) != Some("1") {
        return None;
    }
    let mut header: Vec<&str> = vec![];
    let mut servers = vec![];
    for line in lines {
        if let Some(h) = line.strip_prefix('#') {
            header = h.split_whitespace().collect();
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.is_empty() {
            continue;
        }
        let get = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .and_then(|i| cols.get(i).copied())
                .unwrap_or_default()
        };
        servers.push(RtServer {
            name: get("srv_name").to_string(),
            address: get("srv_addr").to_string(),
            port: get("srv_port").parse().unwrap_or(0),
            op_state: get("srv_op_state").parse().unwrap_or(0),
            admin_flags: get("srv_admin_state").parse().unwrap_or(0),
            weight: get("srv_uweight").parse().unwrap_or(0),
            check_state: get("srv_check_state").parse().unwrap_or(0),
            agent_state: get("srv_agent_state").parse().unwrap_or(0),
        });
    }
    Some(servers)
}

pub fn parse_sessions(answer: &str, backend: &str) -> BTreeMap<String, u64> {
    let mut lines = answer.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .trim_start_matches("# ")
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (Some(px), Some(sv), Some(scur), Some(qcur)) =
        (col("pxname"), col("svname"), col("scur"), col("qcur"))
    else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for line in lines {
        let cols: Vec<&str> = line.split(',').collect();
        if cols.get(px) != Some(&backend) {
            continue;
        }
        let num = |i: usize| cols.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        if let Some(name) = cols.get(sv) {
            out.insert((*name).to_string(), num(scur) + num(qcur));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n3 web 1 w1 10.231.0.105 2 8 100 100 1 15 3 4 6 0 0 0 - 80 - 0 0 - - 0\n3 web 2 w2 10.231.0.125 0 1 100 100 0 1 0 0 2 0 0 0 - 80 - 0 0 - - 0\n\n";

    #[test]
    fn servers_state_is_parsed_by_column_name() {
        let servers = parse_servers_state(STATE).expect("servers");
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0].admin(), Admin::Drain);
        assert_eq!(servers[0].op_name(), "up");
        assert_eq!(servers[1].admin(), Admin::Maint);
        assert_eq!(
            (servers[1].address.as_str(), servers[1].port),
            ("10.231.0.125", 80)
        );
        assert!(parse_servers_state("Can't find backend.\n").is_none());
        assert_eq!(servers[0].health(), (true, true), "check state 6");
        assert_eq!(servers[1].health(), (true, false), "check state 2");
        assert_eq!(servers[0].agent(), (false, false));
        // Enabled after a reload from a config that had it `disabled`.
        let enabled = RtServer {
            admin_flags: 4,
            ..servers[1].clone()
        };
        assert_eq!(enabled.admin(), Admin::Ready);
    }

    #[test]
    fn info_gives_pid_and_uptime() {
        let info = parse_info("Name: HAProxy\nPid: 578\nUptime: 0d 0h00m58s\nUptime_sec: 58\n");
        assert_eq!(
            info,
            Some(Info {
                pid: 578,
                uptime_sec: 58
            })
        );
        assert_eq!(parse_info("Unknown command\n"), None);
    }

    #[test]
    fn a_second_command_is_never_sent() {
        // No socket there: a command that passed the guard would fail to connect.
        let sock = Socket::new("/nonexistent/admin.sock");
        for bad in [
            "set server web/a state ready;shutdown sessions server web/b",
            "show info\nshutdown frontend http_in",
            "show info\r",
            "show info\0x",
        ] {
            assert!(
                matches!(sock.raw(bad), Err(RuntimeError::NotOneCommand { .. })),
                "{bad:?}"
            );
            assert!(matches!(
                sock.command(bad, &[]),
                Err(RuntimeError::NotOneCommand { .. })
            ));
        }
        assert!(matches!(
            sock.raw("show info"),
            Err(RuntimeError::Unreachable { .. })
        ));
    }

    #[test]
    fn sessions_count_current_and_queued() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax\nweb,w1,1,0,2,5\nweb,BACKEND,0,0,3,5\nother,w1,0,0,9,9\n";
        let s = parse_sessions(csv, "web");
        assert_eq!(s.get("w1"), Some(&3));
        assert_eq!(s.get("BACKEND"), Some(&3));
    }
}
