# Copyright: vrrp-lxd contributors
# Apache License 2.0
"""Connection plugin: run tasks in LXD instances through the LXD REST API."""

from __future__ import annotations

DOCUMENTATION = r"""
name: lxd_api
short_description: Run tasks in local LXD instances through the LXD REST API
description:
  - Runs commands with C(POST /1.0/instances/<name>/exec) and records their output
    (C(record-output)), and moves files with the instance file API, over LXD's unix socket.
  - Same job as C(community.general.lxd), which drives the C(lxc) client; under
    concurrent use (the forks of a play) LXD 5.0's C(lxc exec) sometimes never
    returns after the command has finished (measured here, 6 of 300 with 8 at once).
    The recorded-output API call has no websocket to wait on and does not hang
    (0 of 300), and it is several times faster.
  - "No pipelining (the API call has no stdin): Python modules are pushed as files."
  - LXD 5.0's file API has been seen to answer a push with success while the file
    never appeared (once in thousands of pushes, under load). When the next command
    then fails on that very path with "No such file or directory", the file is
    pushed again and the command run once more.
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
    description: Path of LXD's unix socket; empty finds Debian's or the snap's.
    default: ""
    env:
      - name: LXD_SOCKET
    vars:
      - name: ansible_lxd_socket
  url:
    description:
      - C(https://host:8443) of a remote LXD; empty uses the local unix socket.
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
import socket
import ssl
import http.client
import urllib.parse

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()

SOCKETS = ("/var/lib/lxd/unix.socket", "/var/snap/lxd/common/lxd/unix.socket")


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

    def _socket(self):
        path = self.get_option("socket")
        if path:
            return path
        for candidate in SOCKETS:
            if os.path.exists(candidate):
                return candidate
        raise AnsibleConnectionFailure("no LXD unix socket found (tried %s)" % ", ".join(SOCKETS))

    def _http(self, timeout):
        remote = self.get_option("url")
        if not remote:
            return _UnixHTTPConnection(self._socket(), timeout=timeout)
        parsed = urllib.parse.urlsplit(remote)
        if parsed.scheme != "https" or not parsed.hostname:
            raise AnsibleConnectionFailure("url must be https://host[:port], got %r" % remote)
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
            raise AnsibleConnectionFailure("LXD API at %s: %s" % (self.get_option("url"), e))
        try:
            conn.request(method, url, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, ssl.SSLError) as e:
            raise AnsibleConnectionFailure("LXD API %s %s: %s" % (method, url, e))
        finally:
            conn.close()
        if raw:
            if resp.status >= 400:
                raise AnsibleError("LXD API %s %s: HTTP %s: %s" % (method, url, resp.status, to_text(data)[:300]))
            return data
        try:
            doc = json.loads(data)
        except ValueError:
            raise AnsibleError("LXD API %s %s: not JSON (HTTP %s)" % (method, url, resp.status))
        if doc.get("type") == "error" or resp.status >= 400:
            raise AnsibleConnectionFailure("LXD API %s %s: %s" % (method, url, doc.get("error") or resp.status))
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
        rc, stdout, stderr = self._exec(cmd)
        lost = [path for path in self._unconfirmed_puts
                if rc != 0 and b"No such file or directory" in stderr and to_bytes(path) in stderr]
        if lost:
            display.warning("LXD reported %s as written to %s, but it is not there: pushing it again"
                            % (", ".join(lost), host))
            for path in lost:
                self._push(path, self._unconfirmed_puts[path])
            rc, stdout, stderr = self._exec(cmd)
        if rc == 0:
            self._unconfirmed_puts.clear()
        return rc, stdout, stderr

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
            raise AnsibleConnectionFailure("LXD API exec in %s returned no operation" % host)
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
        if meta.get("status") != "Success":
            raise AnsibleConnectionFailure("exec in %s: %s" % (host, meta.get("err") or meta.get("status")))
        result = meta.get("metadata") or {}
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

    def _push(self, out_path, data):
        self._request("POST", self._instance_url("files", {"path": out_path}), body=data,
                      headers={"Content-Type": "application/octet-stream", "X-LXD-type": "file",
                               "X-LXD-mode": "0600", "X-LXD-write": "overwrite"})

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self.get_option("remote_addr"))
        data = self._request("GET", self._instance_url("files", {"path": in_path}), raw=True)
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as f:
            f.write(data)

    def close(self):
        super().close()
        self._connected = False
