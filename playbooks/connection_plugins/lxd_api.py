# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""Connection plugin: run tasks in LXD or Incus instances through their REST API."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd_api
short_description: Run tasks in LXD or Incus instances through their REST API
description:
  - Runs commands with C(POST /1.0/instances/<name>/exec) and records their output
    (C(record-output)), and moves files with the instance file API, over LXD's unix socket.
  - Same job as C(community.general.lxd), which drives the C(lxc) client; under
    concurrent use (the forks of a play) LXD 5.0's C(lxc exec) sometimes never
    returns after the command has finished (measured here, 6 of 300 with 8 at once).
    The recorded-output API call has no websocket to wait on and does not hang
    (0 of 300), and it is several times faster.
  - "No pipelining (the API call has no stdin): Python modules are pushed as files."
  - Files are pushed owner-only and executable (0700), so the C(chmod u+rwx) Ansible
    asks for next, on those files and the temporary directory it made (umask 77),
    would change nothing; it is answered without a round trip to the instance.
  - Ansible's temporary directory for a module is made, and removed afterwards, with the
    file API, a request per file instead of a command (a directory holding anything the
    plugin did not push is removed by Ansible's own C(rm)). A task costs one command in
    the instance, not three.
  - LXD 5.0's file API has been seen to answer a push with success while the file
    never appeared (once in thousands of pushes, under load). When the next command
    then fails on that very path ("No such file or directory", or the shell's "not
    found"), the file is pushed again and the command run once more.
  - Incus, LXD's community fork, serves the same C(/1.0) API. Its unix socket
    (C(/var/lib/incus/unix.socket)) is used when LXD's is absent, when I(backend) is
    C(incus), or when I(url) or I(socket) names it; messages then say Incus.
  - A local LXD through its unix socket, or a remote one over HTTPS (I(url)) with a
    client certificate the server trusts and the server certificate pinned by its
    SHA-256 fingerprint (LXD's own certificates are self-signed, so the pin is the
    check; a server presenting any other certificate is refused).
options:
  remote_addr:
    description: The instance name.
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_lxd_host
  project:
    description: LXD project of the instance.
    default: default
    vars:
      - name: ansible_lxd_project
  socket:
    description:
      - Path of the unix socket; empty finds one (C($LXD_DIR/unix.socket), Debian's
        LXD, the snap's, then C($INCUS_DIR/unix.socket) and Debian's Incus,
        C(/var/lib/incus/unix.socket)), limited to one backend by I(backend).
    default: ""
    env:
      - name: LXD_SOCKET
    vars:
      - name: ansible_lxd_socket
  backend:
    description:
      - C(lxd) or C(incus) when the socket is found automatically; empty tries
        LXD's sockets first, then Incus's.
    default: ""
    env:
      - name: VRRP_BACKEND
    vars:
      - name: ansible_lxd_backend
  url:
    description:
      - C(https://host:8443) of a remote LXD or Incus; empty uses the local unix socket.
      - C(unix:/path/to/unix.socket) names a local socket, as I(socket) does
        (C(unix:/var/lib/incus/unix.socket) for Incus).
      - The dynamic inventory sets it for instances of a remote host.
    default: ""
    vars:
      - name: ansible_lxd_url
  client_cert:
    description: Client certificate (PEM) the remote LXD trusts.
    default: ""
    vars:
      - name: ansible_lxd_client_cert
  client_key:
    description: Key (PEM) of I(client_cert).
    default: ""
    vars:
      - name: ansible_lxd_client_key
  server_cert_fingerprint:
    description: SHA-256 fingerprint of the remote LXD's certificate (hex, colons allowed); required with I(url).
    default: ""
    vars:
      - name: ansible_lxd_server_cert_fingerprint
  executable:
    description: Shell that runs the commands inside the instance.
    default: /bin/sh
    vars:
      - name: ansible_executable
  command_timeout:
    description:
      - Seconds a command in the instance may run. A command still running then is
        reported as a connection failure naming the instance and the limit (LXD
        keeps no way to kill a recorded-output exec, so it may go on in the instance).
      - Every other API call is bounded by I(api_timeout).
    type: int
    default: 1800
    env:
      - name: LXD_COMMAND_TIMEOUT
    vars:
      - name: ansible_lxd_command_timeout
  api_timeout:
    description: Seconds one LXD API request may take (a file push, a status read).
    type: int
    default: 120
    vars:
      - name: ansible_lxd_api_timeout
"""

import hashlib
import json
import os
import re
import shlex
import socket
import ssl
import http.client
import urllib.parse

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

# Where each backend's daemon listens: the *_DIR variable first, as its own
# command-line client does.
SOCKETS = {
    "lxd": ("LXD_DIR", ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket")),
    "incus": ("INCUS_DIR", ("/var/lib/incus/unix.socket",)),
}
NAMES = {"lxd": "LXD", "incus": "Incus"}


def _candidates(backend):
    """Sockets to try, in order, for a backend (empty: LXD's, then Incus's)."""
    out = []
    for b in ([backend] if backend else ["lxd", "incus"]):
        var, fixed = SOCKETS[b]
        if os.environ.get(var):
            out.append(os.path.join(os.environ[var], "unix.socket"))
        out.extend(fixed)
    return out


def _backend_of_socket(path):
    """Incus for a socket in Incus's own directory, LXD otherwise."""
    incus_dir = os.environ.get("INCUS_DIR")
    if incus_dir and os.path.dirname(path) == incus_dir.rstrip("/"):
        return "incus"
    return "incus" if "incus" in path.split("/") else "lxd"


# Ansible's mkdtemp for its module directory (umask 77: the directory is 0700),
# with literal absolute paths: nothing for a shell to expand.
_MKDTEMP = re.compile(
    r'^\( umask 77 && mkdir -p "` echo (?P<base>/[^\s`"$~\\]+) `"'
    r'&& mkdir "` echo (?P<tmp>/[^\s`"$~\\]+) `" '
    r'&& echo (?P<name>[\w.-]+)="` echo (?P=tmp) `" \) && sleep 0$')


def _unwrapped(cmd):
    """cmd without Ansible's `sh -c '...'` around it, or None where it does not
    split as a shell would."""
    try:
        words = shlex.split(to_text(cmd))
    except ValueError:
        return None
    return words[2] if len(words) == 3 and words[1] == "-c" and words[0].endswith("sh") else to_text(cmd)


def _shell_words(cmd):
    """The words of cmd, unwrapped from `sh -c '...'` and a trailing `&& sleep 0`,
    or None where it does not split as a shell would."""
    try:
        words = shlex.split(_unwrapped(cmd) or "")
    except ValueError:
        return None
    if words[-3:] == ["&&", "sleep", "0"]:
        words = words[:-3]
    return words


def _names_missing(path, output):
    """Whether a command's output says that path is not there."""
    return to_bytes(path) in output and (b"No such file or directory" in output or b"not found" in output)


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=None):
        super().__init__("lxd", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an LXD whose certificate must have the pinned fingerprint."""

    def __init__(self, host, port, fingerprint, cert, key, timeout=None):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        # LXD's certificate is self-signed: the fingerprint below is the check.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if cert:
            context.load_cert_chain(cert, key or None)
        super().__init__(host, port, timeout=timeout, context=context)
        self._fingerprint = fingerprint

    def connect(self):
        super().connect()
        seen = hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()
        if seen != self._fingerprint:
            self.close()
            raise AnsibleConnectionFailure(
                "LXD at %s:%s presents certificate %s, not the pinned %s" % (self.host, self.port, seen, self._fingerprint))


class Connection(ConnectionBase):
    """Commands and files through LXD's REST API."""

    transport = "lxd_api"
    has_pipelining = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Files pushed since the last command that succeeded: path -> content.
        self._unconfirmed_puts = {}
        # Every file this connection pushed (mode 0700).
        self._pushed_executable = set()
        # Module directories made through the file API.
        self._made_dirs = set()

    def _wanted_backend(self):
        backend = (self.get_option("backend") or "").strip().lower()
        if backend and backend not in SOCKETS:
            raise AnsibleConnectionFailure("backend must be lxd or incus, got %r" % backend)
        return backend

    def _socket(self):
        remote = self.get_option("url")
        if remote.startswith("unix:"):
            return "/" + remote[len("unix:"):].lstrip("/")
        path = self.get_option("socket")
        if path:
            return path
        backend = self._wanted_backend()
        tried = _candidates(backend)
        for candidate in tried:
            if os.path.exists(candidate):
                return candidate
        raise AnsibleConnectionFailure("no %s unix socket found (tried %s)" % (
            NAMES.get(backend, "LXD or Incus") if backend else "LXD or Incus", ", ".join(tried)))

    def _server_name(self):
        """LXD or Incus, for messages: what the socket says (HTTPS: LXD)."""
        remote = self.get_option("url")
        if remote and not remote.startswith("unix:"):
            return "LXD"
        try:
            return NAMES[_backend_of_socket(self._socket())]
        except AnsibleConnectionFailure:
            return "LXD"

    def _http(self, timeout):
        remote = self.get_option("url")
        if not remote or remote.startswith("unix:"):
            return _UnixHTTPConnection(self._socket(), timeout=timeout)
        parsed = urllib.parse.urlsplit(remote)
        if parsed.scheme != "https" or not parsed.hostname:
            raise AnsibleConnectionFailure("url must be https://host[:port] or unix:/path, got %r" % remote)
        pin = self.get_option("server_cert_fingerprint").replace(":", "").lower()
        if len(pin) != 64 or any(c not in "0123456789abcdef" for c in pin):
            raise AnsibleConnectionFailure(
                "LXD at %s: server_cert_fingerprint (ansible_lxd_server_cert_fingerprint) must be the "
                "certificate's SHA-256 in hex" % remote)
        return _PinnedHTTPSConnection(parsed.hostname, parsed.port or 8443, pin,
                                      self.get_option("client_cert"), self.get_option("client_key"),
                                      timeout=timeout)

    def _request(self, method, url, body=None, headers=None, raw=False, timeout=None):
        try:
            conn = self._http(timeout or self.get_option("api_timeout"))
        except (OSError, ValueError) as e:
            raise AnsibleConnectionFailure("%s API at %s: %s" % (self._server_name(), self.get_option("url") or self._socket(), e))
        try:
            conn.request(method, url, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, ssl.SSLError) as e:
            raise AnsibleConnectionFailure("%s API %s %s: %s" % (self._server_name(), method, url, e))
        finally:
            conn.close()
        if raw:
            if resp.status >= 400:
                raise AnsibleError("%s API %s %s: HTTP %s: %s" % (self._server_name(), method, url, resp.status, to_text(data)[:300]))
            return data
        try:
            doc = json.loads(data)
        except ValueError:
            raise AnsibleError("%s API %s %s: not JSON (HTTP %s)" % (self._server_name(), method, url, resp.status))
        if doc.get("type") == "error" or resp.status >= 400:
            failure = AnsibleConnectionFailure("%s API %s %s: %s" % (self._server_name(), method, url, doc.get("error") or resp.status))
            failure.status = doc.get("error_code") or resp.status
            raise failure
        return doc

    def _instance_url(self, suffix, query=None):
        params = {"project": self.get_option("project")}
        params.update(query or {})
        name = urllib.parse.quote(self.get_option("remote_addr"), safe="")
        return "/1.0/instances/%s/%s?%s" % (name, suffix, urllib.parse.urlencode(params))

    def _connect(self):
        super()._connect()
        if not self._connected:
            display.vvv("ESTABLISH LXD API CONNECTION", host=self.get_option("remote_addr"))
            self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        if in_data:
            raise AnsibleError("the lxd_api connection cannot pipeline (no stdin); disable pipelining for it")
        host = self.get_option("remote_addr")
        display.vvv("EXEC %s" % cmd, host=host)
        made = self._make_module_dir(cmd)
        if made is not None:
            return made
        if self._changes_nothing(cmd):
            display.vvv("(the pushed files and their directory are already u+rwx)", host=host)
            return 0, b"", b""
        if self._removed_module_dir(cmd):
            display.vvv("(removed through the file API)", host=host)
            return 0, b"", b""
        rc, stdout, stderr = self._exec(cmd)
        lost = [path for path in self._unconfirmed_puts if rc != 0 and _names_missing(path, stdout + stderr)]
        if lost:
            display.warning("%s reported %s as written to %s, but it is not there: pushing it again"
                            % (self._server_name(), ", ".join(lost), host))
            for path in lost:
                self._push(path, self._unconfirmed_puts[path])
            rc, stdout, stderr = self._exec(cmd)
        if rc == 0:
            self._unconfirmed_puts.clear()
        return rc, stdout, stderr

    def _changes_nothing(self, cmd):
        """Whether cmd is a chmod that leaves every path it names as it is: a
        file this connection pushed (0700) or the directory one was pushed to."""
        words = _shell_words(cmd)
        if not words or len(words) < 3 or words[0] != "chmod" or words[1] not in ("u+x", "u+rx", "u+rwx"):
            return False
        folders = {os.path.dirname(p) for p in self._pushed_executable}
        return all(p in self._pushed_executable or p.rstrip("/") in folders for p in words[2:])

    def _make_module_dir(self, cmd):
        """For Ansible's mkdtemp: the directory made through the file API and
        the answer the shell would have given; None for any other command."""
        match = _MKDTEMP.match(_unwrapped(cmd) or "")
        if not match or match["tmp"] != "%s/%s" % (match["base"].rstrip("/"), match["name"]):
            return None
        self._mkdirs(match["tmp"])
        self._made_dirs.add(match["tmp"])
        display.vvv("(made %s through the file API)" % match["tmp"], host=self.get_option("remote_addr"))
        return 0, to_bytes("%s=%s\n" % (match["name"], match["tmp"])), b""

    def _mkdirs(self, path):
        """mkdir -p, owner-only, through the file API (an existing directory is left as it is)."""
        prefix = "X-Incus-" if self._server_name() == "Incus" else "X-LXD-"
        url = self._instance_url("files", {"path": path})
        headers = {prefix + "type": "directory", prefix + "mode": "0700", prefix + "uid": "0", prefix + "gid": "0"}
        try:
            self._request("POST", url, headers=headers)
        except AnsibleError as e:
            parent = os.path.dirname(path)
            if getattr(e, "status", None) != 404 or parent in ("/", path):
                raise
            self._mkdirs(parent)
            self._request("POST", url, headers=headers)

    def _removed_module_dir(self, cmd):
        """For Ansible's clean-up of a module directory this connection made:
        whether the files pushed to it and then the directory itself could be
        removed through the file API. A directory that still holds anything
        else (LXD will not remove it) is left to the command."""
        words = _shell_words(cmd)
        if words is None or len(words) != 7 or words[:3] != ["rm", "-f", "-r"] or words[4:] != [">", "/dev/null", "2>&1"]:
            return False
        folder = words[3].rstrip("/")
        if folder not in self._made_dirs:
            return False
        for path in sorted(p for p in self._pushed_executable if os.path.dirname(p) == folder) + [folder]:
            try:
                self._request("DELETE", self._instance_url("files", {"path": path}))
            except AnsibleError as e:
                if getattr(e, "status", None) == 404:
                    continue
                display.vvvv("could not remove %s through the file API: %s" % (path, e), host=self.get_option("remote_addr"))
                return False
        self._made_dirs.discard(folder)
        return True

    def _exec(self, cmd):
        host = self.get_option("remote_addr")
        body = json.dumps({
            "command": [self.get_option("executable"), "-c", to_text(cmd)],
            "environment": {},
            "interactive": False,
            "wait-for-websocket": False,
            "record-output": True,
        })
        op = self._request("POST", self._instance_url("exec"), body=body,
                           headers={"Content-Type": "application/json"})
        op_url = op.get("operation")
        if not op_url:
            raise AnsibleConnectionFailure("%s API exec in %s returned no operation" % (self._server_name(), host))
        limit = int(self.get_option("command_timeout"))
        # LXD answers the wait when the command ended or the limit passed,
        # whichever is first; the socket gets a margin over that.
        # A cluster member answers for an instance on another member with an
        # operation URL that carries a query (?project=...): /wait goes
        # before it, or LXD reads the whole thing as the operation's id.
        op_path, sep, op_query = op_url.partition("?")
        wait_url = "%s/wait?timeout=%d%s" % (op_path, limit, "&" + op_query if sep else "")
        done = self._request("GET", wait_url, timeout=limit + 30)
        meta = done.get("metadata") or {}
        if meta.get("status") in ("Running", "Pending"):
            try:
                self._request("DELETE", op_url)
            except AnsibleError as e:
                display.vvvv("could not cancel %s: %s" % (op_url, e), host=host)
            raise AnsibleConnectionFailure(
                "command in %s did not finish within %ds (ansible_lxd_command_timeout)" % (host, limit))
        result = meta.get("metadata") or {}
        # LXD reports a command that exited 126 or 127 (the shell could not
        # run what it was given) as a failed operation; it ran all the same,
        # and its exit code and output are the command's to report.
        ran = isinstance(result.get("return"), int) and result.get("output")
        if meta.get("status") != "Success" and not ran:
            raise AnsibleConnectionFailure("exec in %s: %s" % (host, meta.get("err") or meta.get("status")))
        outputs = result.get("output") or {}
        streams = []
        for fd in ("1", "2"):
            path = outputs.get(fd)
            if not path:
                streams.append(b"")
                continue
            streams.append(self._request("GET", path, raw=True))
            try:
                self._request("DELETE", path)
            except AnsibleError as e:
                display.vvvv("could not delete %s: %s" % (path, e), host=host)
        return int(result.get("return", -1)), streams[0], streams[1]

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self.get_option("remote_addr"))
        try:
            with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as f:
                data = f.read()
        except OSError as e:
            raise AnsibleError("cannot read %s: %s" % (in_path, e))
        self._push(out_path, data)
        self._unconfirmed_puts[out_path] = data
        self._pushed_executable.add(out_path)

    def _push(self, out_path, data):
        # Incus reads its file headers under its own name (X-Incus-*).
        prefix = "X-Incus-" if self._server_name() == "Incus" else "X-LXD-"
        self._request("POST", self._instance_url("files", {"path": out_path}), body=data,
                      headers={"Content-Type": "application/octet-stream", prefix + "type": "file",
                               prefix + "mode": "0700", prefix + "write": "overwrite"})

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self.get_option("remote_addr"))
        data = self._request("GET", self._instance_url("files", {"path": in_path}), raw=True)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as f:
            f.write(data)

    def close(self):
        super().close()
        self._connected = False
