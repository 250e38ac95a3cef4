//! The client: one endpoint (unix socket or HTTPS), synchronous requests,
//! background operations waited on.

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, Engine, GeneralPurpose, GeneralPurposeConfig};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::blocking::{Client as Http, RequestBuilder};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::backend::{detect_socket_for, Backend};
use crate::error::{Error, Result};
use crate::tls::{client_config, HandshakeNote, TlsOptions};

/// How long one plain request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a background operation is waited for unless told otherwise.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(120);

/// Where LXD is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// The local unix socket.
    Unix(PathBuf),
    /// An HTTPS listener, `https://host:port` (no trailing slash).
    Https(String),
}

impl Endpoint {
    /// Parses the forms users write: `unix:/path`, `unix:///path`, `/path`
    /// (a socket), `https://host[:port]` (port 8443 when left out).
    pub fn parse(url: &str) -> Result<Endpoint> {
        let u = url.trim();
        if let Some(rest) = u.strip_prefix("unix:") {
            let path = rest.trim_start_matches("//");
            let path = if path.starts_with('/') {
                path.to_string()
            } else {
                format!("/{path}")
            };
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        if u.starts_with('/') {
            return Ok(Endpoint::Unix(PathBuf::from(u)));
        }
        if let Some(rest) = u.strip_prefix("https://") {
            let hostport = rest.trim_end_matches('/');
            if hostport.is_empty() || hostport.contains('/') {
                return Err(Error::Config(format!(
                    "LXD url {url:?}: expected https://HOST[:PORT] without a path"
                )));
            }
            let has_port = if let Some(end) = hostport.rfind(']') {
                hostport[end..].contains(':')
            } else {
                hostport.contains(':')
            };
            let hostport = if has_port {
                hostport.to_string()
            } else {
                format!("{hostport}:8443")
            };
            return Ok(Endpoint::Https(format!("https://{hostport}")));
        }
        Err(Error::Config(format!(
            "LXD url {url:?} not understood: use unix:/path/to/unix.socket or https://HOST:PORT"
        )))
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix:{}", p.display()),
            Endpoint::Https(u) => f.write_str(u),
        }
    }
}

/// A synchronous answer, or a background operation that was started.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// `type: sync`: the metadata.
    Sync(Value),
    /// `type: async`: the operation's URL and its metadata at the start.
    Async { operation: String, metadata: Value },
}

/// Output of a command run in an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub return_code: i64,
    pub stdout: String,
    pub stderr: String,
}

/// An LXD REST client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: Http,
    base: String,
    endpoint: Endpoint,
    note: HandshakeNote,
    pinned: bool,
    operation_timeout: Duration,
    /// What the endpoint suggests (an Incus socket path), until the server
    /// names itself in `GET /1.0`.
    guessed: Backend,
    learned: Arc<OnceLock<Backend>>,
}

/// Appends `key=value` pairs to a path, encoding the values.
pub fn with_query(path: &str, query: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    for (k, v) in query {
        out.push(if out.contains('?') { '&' } else { '?' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// Every byte but RFC 3986's unreserved ones (letters, digits, `-._~`):
/// what [`encode`] turns into `%XX`.
const NOT_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or query value (UTF-8, upper-case hex).
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

fn project_query(path: &str, project: Option<&str>) -> String {
    match project {
        Some(p) if !p.is_empty() && p != "default" => with_query(path, &[("project", p)]),
        _ => path.to_string(),
    }
}

impl Client {
    /// Connects as the environment says: `LXD_URL` (else the local socket,
    /// auto-detected), with `LXD_CLIENT_CERT`, `LXD_CLIENT_KEY`,
    /// `LXD_SERVER_CERT` and `LXD_SERVER_CERT_FINGERPRINT` for HTTPS.
    pub fn from_env() -> Result<Client> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let tls = TlsOptions {
            client_cert: var("LXD_CLIENT_CERT").map(PathBuf::from),
            client_key: var("LXD_CLIENT_KEY").map(PathBuf::from),
            server_cert: var("LXD_SERVER_CERT").map(PathBuf::from),
            server_cert_fingerprint: var("LXD_SERVER_CERT_FINGERPRINT"),
        };
        Client::connect(var("LXD_URL").as_deref(), &tls)
    }

    /// A client for `url` (see [`Endpoint::parse`]); `None` auto-detects the
    /// local socket. Nothing is sent yet: the first request shows whether LXD is
    /// reachable (or call [`Client::server`]).
    pub fn connect(url: Option<&str>, tls: &TlsOptions) -> Result<Client> {
        let endpoint = match url.map(str::trim).filter(|u| !u.is_empty()) {
            Some(u) => Endpoint::parse(u)?,
            None => Endpoint::Unix(detect_socket_for(None)?.0),
        };
        Client::for_endpoint(endpoint, tls)
    }

    /// A client for a known endpoint.
    pub fn for_endpoint(endpoint: Endpoint, tls: &TlsOptions) -> Result<Client> {
        let https = matches!(endpoint, Endpoint::Https(_));
        let guessed = match &endpoint {
            Endpoint::Unix(path) => Backend::of_socket(path),
            Endpoint::Https(_) => Backend::Lxd,
        };
        let (config, note) = client_config(tls, https)?;
        let mut builder = Http::builder()
            .use_preconfigured_tls(config)
            .connect_timeout(Duration::from_secs(10))
            .timeout(None::<Duration>)
            .redirect(reqwest::redirect::Policy::none());
        let base = match &endpoint {
            Endpoint::Unix(path) => {
                builder = builder.unix_socket(path.as_path());
                "http://lxd".to_string()
            }
            Endpoint::Https(url) => {
                builder = builder.https_only(true);
                url.clone()
            }
        };
        let http = builder
            .build()
            .map_err(|e| Error::Config(format!("cannot set up the HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            endpoint,
            note,
            pinned: tls.server_cert.is_some() || tls.server_cert_fingerprint.is_some(),
            operation_timeout: OPERATION_TIMEOUT,
            guessed,
            learned: Arc::new(OnceLock::new()),
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// LXD or Incus: what the server said in `GET /1.0` once asked (see
    /// [`Client::server`]), before that what the socket path suggests
    /// (LXD for HTTPS).
    pub fn backend(&self) -> Backend {
        self.learned.get().copied().unwrap_or(self.guessed)
    }

    /// How long [`Client::post`] and friends wait for a background operation.
    pub fn set_operation_timeout(&mut self, timeout: Duration) {
        self.operation_timeout = timeout;
    }

    pub fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn connect_error(&self, e: &reqwest::Error) -> Error {
        if let Some(note) = self.note.lock().ok().and_then(|mut n| n.take()) {
            return Error::Connect {
                backend: self.backend(),
                endpoint: self.endpoint.to_string(),
                reason: note,
            };
        }
        let mut parts: Vec<String> = vec![];
        let mut src: Option<&dyn std::error::Error> = Some(e);
        while let Some(s) = src {
            let text = s.to_string();
            if !parts.iter().any(|p| p.contains(&text)) {
                parts.push(text);
            }
            src = s.source();
        }
        // The outermost text repeats the URL of the request; the causes say why.
        let reason = if parts.len() > 1 {
            parts[1..].join(": ")
        } else {
            parts.join(": ")
        };
        let backend = self.backend();
        let hint = match &self.endpoint {
            Endpoint::Unix(_) => format!(" (is {backend} running, and may this user use its socket?)"),
            Endpoint::Https(_) if !self.pinned && reason.contains("certificate") => format!(
                " ({backend}'s certificate is usually self-signed: pin it with server_cert, a copy of the server's server.crt, or server_cert_fingerprint, its SHA-256 as `{} info` prints it)",
                backend.cli()
            ),
            Endpoint::Https(_) => String::new(),
        };
        Error::Connect {
            backend,
            endpoint: self.endpoint.to_string(),
            reason: format!("{reason}{hint}"),
        }
    }

    fn execute(&self, method: &Method, path: &str, req: RequestBuilder) -> Result<(u16, Vec<u8>)> {
        let resp = req.send().map_err(|e| self.connect_error(&e))?;
        let status = resp.status().as_u16();
        let body = resp
            .bytes()
            .map_err(|e| Error::Protocol {
                backend: self.backend(),
                method: method.to_string(),
                path: path.to_string(),
                detail: format!("reading the answer failed: {e}"),
            })?
            .to_vec();
        Ok((status, body))
    }

    fn api_error(&self, method: &Method, path: &str, status: u16, body: &[u8]) -> Error {
        let doc: Option<Value> = serde_json::from_slice(body).ok();
        let message = doc
            .as_ref()
            .and_then(|d| d.get("error"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                let text = String::from_utf8_lossy(body).trim().to_string();
                if text.is_empty() {
                    "no error text".to_string()
                } else {
                    text
                }
            });
        let code = doc
            .as_ref()
            .and_then(|d| d.get("error_code"))
            .and_then(Value::as_u64)
            .and_then(|c| u16::try_from(c).ok())
            .filter(|c| *c != 0)
            .unwrap_or(status);
        let message = if code == 403
            && matches!(self.endpoint, Endpoint::Https(_))
            && !path.starts_with("/1.0/certificates")
        {
            let backend = self.backend();
            format!(
                "{message}; is this client certificate in {backend}'s trust store (`{} config trust add`, or trust_password)?",
                backend.cli()
            )
        } else {
            message
        };
        Error::Api {
            backend: self.backend(),
            method: method.to_string(),
            path: path.to_string(),
            code,
            message,
        }
    }

    /// Sends one request and returns LXD's answer without waiting for a
    /// background operation.
    pub fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<Reply> {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .timeout(REQUEST_TIMEOUT);
        if let Some(b) = body {
            req = req.json(b);
        }
        let (status, bytes) = self.execute(&method, path, req)?;
        if !(200..300).contains(&status) {
            return Err(self.api_error(&method, path, status, &bytes));
        }
        let doc: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
            backend: self.backend(),
            method: method.to_string(),
            path: path.to_string(),
            detail: format!("not JSON ({e})"),
        })?;
        match doc.get("type").and_then(Value::as_str) {
            Some("sync") => Ok(Reply::Sync(
                doc.get("metadata").cloned().unwrap_or(Value::Null),
            )),
            Some("async") => {
                let metadata = doc.get("metadata").cloned().unwrap_or(Value::Null);
                let operation = doc
                    .get("operation")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| {
                        metadata
                            .get("id")
                            .and_then(Value::as_str)
                            .map(|id| format!("/1.0/operations/{id}"))
                    })
                    .ok_or_else(|| Error::Protocol {
                        backend: self.backend(),
                        method: method.to_string(),
                        path: path.to_string(),
                        detail: "async answer without an operation".into(),
                    })?;
                Ok(Reply::Async {
                    operation,
                    metadata,
                })
            }
            Some("error") => Err(self.api_error(&method, path, status, &bytes)),
            other => Err(Error::Protocol {
                backend: self.backend(),
                method: method.to_string(),
                path: path.to_string(),
                detail: format!("unknown answer type {other:?}"),
            }),
        }
    }

    /// Waits until the operation at `operation` (as LXD returned it) ends;
    /// returns its final metadata, or the failure LXD reports.
    pub fn wait_operation(
        &self,
        operation: &str,
        timeout: Duration,
        method: &str,
        path: &str,
    ) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        let (op_path, op_query) = match operation.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (operation.to_string(), None),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let secs = left.as_secs().max(1);
            let mut wait_path = format!("{op_path}/wait?timeout={secs}");
            if let Some(q) = &op_query {
                wait_path.push('&');
                wait_path.push_str(q);
            }
            let get = Method::GET;
            let req = self
                .http
                .get(self.url(&wait_path))
                .timeout(Duration::from_secs(secs + 30));
            let (status, bytes) = self.execute(&get, &wait_path, req)?;
            if status == 504 || status == 408 {
                if Instant::now() >= deadline {
                    return Err(Error::Timeout {
                        backend: self.backend(),
                        method: method.into(),
                        path: path.into(),
                        seconds: timeout.as_secs(),
                    });
                }
                continue;
            }
            if !(200..300).contains(&status) {
                return Err(self.api_error(&get, &wait_path, status, &bytes));
            }
            let doc: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Protocol {
                backend: self.backend(),
                method: method.into(),
                path: path.into(),
                detail: format!("operation wait answer is not JSON ({e})"),
            })?;
            let op = doc.get("metadata").cloned().unwrap_or(Value::Null);
            match op.get("status").and_then(Value::as_str) {
                Some("Success") => return Ok(op),
                Some("Failure") | Some("Cancelled") => {
                    let err = op
                        .get("err")
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty())
                        .unwrap_or("no reason given");
                    return Err(Error::Operation {
                        backend: self.backend(),
                        method: method.into(),
                        path: path.into(),
                        message: err.to_string(),
                    });
                }
                _ => {
                    if Instant::now() >= deadline {
                        return Err(Error::Timeout {
                            backend: self.backend(),
                            method: method.into(),
                            path: path.into(),
                            seconds: timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    /// Sends a request and, when LXD starts a background operation, waits for
    /// it (up to `timeout`). Returns the sync metadata, or the finished
    /// operation's metadata (its own `metadata` field holds the result).
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value> {
        match self.send(method.clone(), path, body)? {
            Reply::Sync(v) => Ok(v),
            Reply::Async { operation, .. } => {
                self.wait_operation(&operation, timeout, method.as_str(), path)
            }
        }
    }

    /// `GET path`, the answer's `metadata`.
    pub fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None, self.operation_timeout)
    }

    /// `GET path` returning the raw body (files, exec output logs).
    pub fn get_raw(&self, path: &str) -> Result<Vec<u8>> {
        let method = Method::GET;
        let req = self.http.get(self.url(path)).timeout(REQUEST_TIMEOUT);
        let (status, bytes) = self.execute(&method, path, req)?;
        if !(200..300).contains(&status) {
            return Err(self.api_error(&method, path, status, &bytes));
        }
        Ok(bytes)
    }

    /// `POST path`, waiting for the operation it starts.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body), self.operation_timeout)
    }

    /// `PUT path`, waiting for the operation it starts.
    pub fn put(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PUT, path, Some(body), self.operation_timeout)
    }

    /// `PATCH path`, waiting for the operation it starts.
    pub fn patch(&self, path: &str, body: &Value) -> Result<Value> {
        self.call(Method::PATCH, path, Some(body), self.operation_timeout)
    }

    /// `DELETE path`, waiting for the operation it starts.
    pub fn delete(&self, path: &str) -> Result<Value> {
        self.call(Method::DELETE, path, None, self.operation_timeout)
    }

    /// `GET /1.0`: server environment, API extensions, and `auth`
    /// (`trusted` or `untrusted`). Also the cheapest reachability check.
    pub fn server(&self) -> Result<Value> {
        let doc = self.get("/1.0")?;
        if let Some(b) = Backend::of_server(&doc) {
            let _ = self.learned.set(b);
        }
        Ok(doc)
    }

    /// Whether the server has an API extension (`GET /1.0`
    /// `api_extensions`): what LXD and Incus both have is the common core;
    /// anything else is asked for here before it is used.
    pub fn has_extension(&self, name: &str) -> Result<bool> {
        Ok(self
            .server()?
            .get("api_extensions")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|e| e.as_str() == Some(name))))
    }

    /// Whether LXD trusts this client (always true on the unix socket).
    pub fn is_trusted(&self) -> Result<bool> {
        Ok(self.server()?.get("auth").and_then(Value::as_str) == Some("trusted"))
    }

    /// Adds this client's certificate to LXD's trust store using a trust
    /// password or a trust token (`lxc config trust add` without a
    /// certificate prints one). A token goes in both the old `password` field
    /// (LXD 5.0 decodes it there) and `trust_token` (newer LXD).
    pub fn add_trust(&self, password_or_token: &str) -> Result<()> {
        let secret = password_or_token.trim();
        let body = if token_secret(secret).is_some() {
            json!({"type": "client", "password": secret, "trust_token": secret})
        } else {
            json!({"type": "client", "password": secret})
        };
        self.post("/1.0/certificates", &body).map(|_| ())
    }

    /// All instances with their config, devices, expanded config, snapshots
    /// and state (addresses included) in one request:
    /// `GET /1.0/instances?recursion=2`.
    pub fn list_instances_full(&self, project: Option<&str>) -> Result<Vec<Value>> {
        self.get_instance_list(project_query("/1.0/instances?recursion=2", project))
    }

    /// Like [`Client::list_instances_full`] over every project
    /// (`all-projects=true`); each instance names its `project`.
    pub fn list_instances_all_projects(&self) -> Result<Vec<Value>> {
        self.get_instance_list("/1.0/instances?recursion=2&all-projects=true".to_string())
    }

    fn get_instance_list(&self, path: String) -> Result<Vec<Value>> {
        match self.get(&path)? {
            Value::Array(items) => Ok(items),
            other => Err(Error::Protocol {
                backend: self.backend(),
                method: "GET".into(),
                path,
                detail: format!("expected a list of instances, got {other}"),
            }),
        }
    }

    /// One instance (`GET /1.0/instances/NAME`), or `None` when it does not exist.
    pub fn instance(&self, name: &str, project: Option<&str>) -> Result<Option<Value>> {
        let path = project_query(&format!("/1.0/instances/{}", encode(name)), project);
        match self.get(&path) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// An instance's state (`status`, `network` with addresses, ...).
    pub fn instance_state(&self, name: &str, project: Option<&str>) -> Result<Value> {
        let path = project_query(&format!("/1.0/instances/{}/state", encode(name)), project);
        self.get(&path)
    }

    /// A file in an instance (`GET /1.0/instances/NAME/files?path=...`), or
    /// `None` when it does not exist. LXD answers a symlink with the path it
    /// points to, not with the target's content.
    pub fn read_file(
        &self,
        name: &str,
        project: Option<&str>,
        path: &str,
    ) -> Result<Option<Vec<u8>>> {
        let url = with_query(
            &format!("/1.0/instances/{}/files", encode(name)),
            &[("path", path)],
        );
        match self.get_raw(&project_query(&url, project)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Runs a command in a running instance and collects its output
    /// (`record-output`); waits up to `timeout`.
    pub fn exec(
        &self,
        name: &str,
        project: Option<&str>,
        command: &[&str],
        timeout: Duration,
    ) -> Result<ExecOutput> {
        let path = project_query(&format!("/1.0/instances/{}/exec", encode(name)), project);
        let body = json!({
            "command": command,
            "environment": {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
            "wait-for-websocket": false,
            "interactive": false,
            "record-output": true,
        });
        let op = self.call(Method::POST, &path, Some(&body), timeout)?;
        let meta = op.get("metadata").cloned().unwrap_or(Value::Null);
        let return_code = meta.get("return").and_then(Value::as_i64).unwrap_or(-1);
        let outputs: Map<String, Value> = meta
            .get("output")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let read = |fd: &str| -> String {
            let Some(log) = outputs.get(fd).and_then(Value::as_str) else {
                return String::new();
            };
            let log = project_query(log, project);
            let text = self
                .get_raw(&log)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            // The log files stay on the host until removed.
            let _ = self.send(Method::DELETE, &log, None);
            text
        };
        let stdout = read("1");
        let stderr = read("2");
        Ok(ExecOutput {
            return_code,
            stdout,
            stderr,
        })
    }
}

/// The secret inside an LXD trust token (base64 of a JSON document with
/// `client_name`, `fingerprint`, `addresses`, `secret`).
pub fn token_secret(token: &str) -> Option<String> {
    let bytes = base64_decode(token.trim())?;
    let doc: Value = serde_json::from_slice(&bytes).ok()?;
    doc.get("secret")?.as_str().map(str::to_string)
}

/// Base64 as LXD writes it (Go's standard alphabet, padded), also read
/// without padding or in the URL-safe alphabet.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, LENIENT);
    const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, LENIENT);
    STANDARD.decode(s).or_else(|_| URL_SAFE.decode(s)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEBIAN_SOCKET;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:/var/lib/lxd/unix.socket").ok(),
            Some(Endpoint::Unix(DEBIAN_SOCKET.into()))
        );
        assert_eq!(
            Endpoint::parse("unix:///var/lib/lxd/unix.socket").ok(),
            Some(Endpoint::Unix(DEBIAN_SOCKET.into()))
        );
        assert_eq!(
            Endpoint::parse("https://10.0.0.1").ok(),
            Some(Endpoint::Https("https://10.0.0.1:8443".into()))
        );
        assert_eq!(
            Endpoint::parse("https://[::1]:9443/").ok(),
            Some(Endpoint::Https("https://[::1]:9443".into()))
        );
        assert!(Endpoint::parse("http://10.0.0.1:8443").is_err());
        assert!(Endpoint::parse("https://h/1.0").is_err());
    }

    #[test]
    fn token_secrets_are_read() {
        // {"client_name":"t","fingerprint":"ab","addresses":["127.0.0.1:8443"],"secret":"s3"}
        let token = "eyJjbGllbnRfbmFtZSI6InQiLCJmaW5nZXJwcmludCI6ImFiIiwiYWRkcmVzc2VzIjpbIjEyNy4wLjAuMTo4NDQzIl0sInNlY3JldCI6InMzIn0=";
        assert_eq!(token_secret(token).as_deref(), Some("s3"));
        assert_eq!(token_secret("plain-password"), None);
    }

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query("/1.0/instances?recursion=2", &[("project", "a b&c")]),
            "/1.0/instances?recursion=2&project=a%20b%26c"
        );
        assert_eq!(project_query("/x", Some("default")), "/x");
        assert_eq!(project_query("/x", Some("p1")), "/x?project=p1");
    }

    #[test]
    fn names_that_need_encoding_are_escaped() {
        assert_eq!(encode("web-01.a_b~c"), "web-01.a_b~c");
        assert_eq!(
            encode("a b/c?d#e%f&g=h+i:j@k"),
            "a%20b%2Fc%3Fd%23e%25f%26g%3Dh%2Bi%3Aj%40k"
        );
        assert_eq!(encode("caf\u{e9}-\u{1f600}"), "caf%C3%A9-%F0%9F%98%80");
        assert_eq!(encode(""), "");
        assert_eq!(
            project_query(
                &format!("/1.0/instances/{}/state", encode("x/../y")),
                Some("my proj")
            ),
            "/1.0/instances/x%2F..%2Fy/state?project=my%20proj"
        );
        // Every ASCII byte: unreserved ones as they are, the rest as %XX.
        for b in 0u8..=127 {
            let c = char::from(b);
            let want = if c.is_ascii_alphanumeric() || "-._~".contains(c) {
                c.to_string()
            } else {
                format!("%{b:02X}")
            };
            assert_eq!(encode(&c.to_string()), want, "byte {b}");
        }
    }

    #[test]
    fn tokens_are_read_padded_unpadded_and_url_safe() {
        // {"secret":"s?>"}, padded as LXD writes it, and without padding.
        assert_eq!(
            base64_decode("eyJzZWNyZXQiOiJzPz4ifQ=="),
            Some(br#"{"secret":"s?>"}"#.to_vec())
        );
        assert_eq!(
            token_secret("eyJzZWNyZXQiOiJzPz4ifQ").as_deref(),
            Some("s?>")
        );
        assert_eq!(base64_decode("Pz8/"), Some(b"???".to_vec()));
        assert_eq!(base64_decode("Pz8_"), Some(b"???".to_vec()));
        assert_eq!(base64_decode("Pz8*"), None);
        assert_eq!(base64_decode(""), Some(Vec::new()));
    }

    #[test]
    fn missing_socket_is_a_connect_error() {
        let c = Client::connect(Some("unix:/nonexistent/lxd.socket"), &TlsOptions::default());
        let err = c.and_then(|c| c.server()).err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("cannot reach LXD at unix:/nonexistent/lxd.socket")),
            "{err:?}"
        );
    }

    #[test]
    fn an_incus_socket_names_incus_in_errors() {
        let c = Client::connect(
            Some("unix:/nonexistent/incus/unix.socket"),
            &TlsOptions::default(),
        )
        .expect("client");
        assert_eq!(c.backend(), Backend::Incus);
        let err = c.server().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.starts_with("cannot reach Incus at unix:/nonexistent/incus/unix.socket: ")
                && err.ends_with(" (is Incus running, and may this user use its socket?)"),
            "{err}"
        );
        let lxd = Client::connect(Some("unix:/nonexistent/lxd.socket"), &TlsOptions::default())
            .expect("client");
        assert_eq!(lxd.backend(), Backend::Lxd);
        let err = lxd
            .server()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.ends_with(" (is LXD running, and may this user use its socket?)"),
            "{err}"
        );
    }

    #[test]
    fn api_errors_name_the_backend() {
        let e = Error::Api {
            backend: Backend::Incus,
            method: "GET".into(),
            path: "/1.0/instances/x".into(),
            code: 404,
            message: "Instance not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "Incus refused GET /1.0/instances/x: Instance not found (HTTP 404)"
        );
        let e = Error::Api {
            backend: Backend::Lxd,
            method: "GET".into(),
            path: "/1.0/instances/x".into(),
            code: 404,
            message: "Instance not found".into(),
        };
        assert_eq!(
            e.to_string(),
            "LXD refused GET /1.0/instances/x: Instance not found (HTTP 404)"
        );
    }
}
