#!/usr/bin/env python3
"""A small in-memory stand-in for the AWX API v2, enough for the awx.awx
modules awx/configure.yml uses: list/filter, create, read, update, delete,
sub-lists (associations, survey_spec, workflow nodes) and tokens.

It checks that the playbook's module arguments are accepted, what it creates
and how objects refer to each other, and that a second run changes nothing.
Given the project's directory it also refuses, as AWX does, a job template
whose playbook AWX would not list for the project. It does not check what only
a real AWX checks (credential injector templates, survey validation, job runs).

    fake_awx.py PORT_FILE [PROJECT_DIR]
                               listens on 127.0.0.1 (a free port, written to PORT_FILE)
    GET /_dump                 every object, by resource
"""

import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlparse

RELATED = (
    "credentials", "survey_spec", "workflow_nodes", "success_nodes", "failure_nodes",
    "always_nodes", "labels", "instance_groups", "notification_templates_started",
    "notification_templates_success", "notification_templates_error",
    "notification_templates_approvals", "source_project", "inventory_sources",
)
# Sub-lists whose POST creates an object elsewhere: (parent resource, sub) -> (resource, parent field).
CREATING = {("workflow_job_templates", "workflow_nodes"): ("workflow_job_template_nodes", "workflow_job_template")}

LOCK = threading.Lock()
STORE = {
    "organizations": {1: {"id": 1, "name": "Default"}},
    "credential_types": {1: {"id": 1, "name": "Machine", "kind": "ssh", "managed": True, "namespace": "ssh"}},
}
ASSOC = {}  # (resource, id, sub) -> [ids]
SURVEYS = {}  # (resource, id) -> spec
NEXT = [100]
TYPES = {
    "organizations": "organization", "credential_types": "credential_type", "credentials": "credential",
    "projects": "project", "inventories": "inventory", "inventory_sources": "inventory_source",
    "job_templates": "job_template", "workflow_job_templates": "workflow_job_template",
    "workflow_job_template_nodes": "workflow_job_template_node", "execution_environments": "execution_environment",
}


PROJECT_DIR = None
# awx/main/utils/ansible.py: a project file is a playbook if a line matches.
PLAYBOOK_LINE = re.compile(r"^\s*?-?\s*?(?:hosts|include|import_playbook):\s*?.*?$")


def could_be_playbook(relpath):
    """AWX's test (could_be_playbook, skip_directory) of one file of the project."""
    parts = relpath.split("/")
    if relpath.startswith("/") or ".." in parts or os.path.splitext(relpath)[1] not in (".yml", ".yaml"):
        return False
    if {"roles", "tasks", "group_vars", "host_vars"} & set(parts[:-1]) or any(p.startswith(".") for p in parts[:-1]):
        return False
    try:
        with open(os.path.join(PROJECT_DIR, relpath), encoding="utf-8", errors="ignore") as f:
            return any(PLAYBOOK_LINE.match(line) for line in f)
    except OSError:
        return False


def invalid(res, data):
    """What AWX answers 400 for, of what this stand-in checks."""
    if res == "job_templates" and PROJECT_DIR and "playbook" in data and not could_be_playbook(data["playbook"]):
        return {"playbook": ["Playbook not found for project."]}
    return None


def secret_fields(type_id):
    ctype = STORE.get("credential_types", {}).get(type_id, {})
    fields = (ctype.get("inputs") or {}).get("fields", [])
    return {f["id"] for f in fields if f.get("secret")} | ({"ssh_key_data", "password"} if type_id == 1 else set())


def decorate(res, item):
    url = f"/api/v2/{res}/{item['id']}/"
    out = dict(item)
    if res == "credentials":
        # Like AWX: secret inputs are never shown, only "$encrypted$".
        hidden = secret_fields(item.get("credential_type"))
        out["inputs"] = {k: ("$encrypted$" if k in hidden and v else v) for k, v in (item.get("inputs") or {}).items()}
    out.update(url=url, type=TYPES.get(res, res.rstrip("s")), related={r: f"{url}{r}/" for r in RELATED})
    out.setdefault("summary_fields", {})
    return out


def matches(item, query):
    ors = {k[4:]: v for k, v in query.items() if k.startswith("or__")}
    if ors and not any(str(item.get(k)) == v for k, v in ors.items()):
        return False
    for k, v in query.items():
        if k.startswith("or__") or k in ("page_size", "page", "order_by"):
            continue
        if str(item.get(k)) != v and not (v in ("True", "False", "true", "false") and str(item.get(k)).lower() == v.lower()):
            return False
    return True


def unified():
    """The unified_job_templates view: templates, inventory sources, projects."""
    out = []
    for res in ("job_templates", "workflow_job_templates", "inventory_sources", "projects"):
        for item in STORE.get(res, {}).values():
            u = decorate(res, item)
            if res == "inventory_sources":
                inv = STORE.get("inventories", {}).get(item.get("inventory"), {})
                u["organization"] = inv.get("organization")
            elif res == "job_templates" and u.get("organization") is None:
                proj = STORE.get("projects", {}).get(item.get("project"), {})
                u["organization"] = proj.get("organization")
            out.append(u)
    return out


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-API-Product-Name", "AWX")
        self.send_header("X-API-Product-Version", "24.6.1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def parts(self):
        u = urlparse(self.path)
        p = [x for x in u.path.split("/") if x]
        if p[:2] != ["api", "v2"]:
            return None, dict(parse_qsl(u.query))
        return p[2:], dict(parse_qsl(u.query))

    def listing(self, items):
        return {"count": len(items), "next": None, "previous": None, "results": items}

    def do_GET(self):
        if self.path == "/_dump":
            with LOCK:
                dump = {r: [decorate(r, i) for i in items.values()] for r, items in STORE.items()}
                dump["_associations"] = {f"{r}/{i}/{s}": ids for (r, i, s), ids in ASSOC.items()}
                dump["_surveys"] = {f"{r}/{i}": s for (r, i), s in SURVEYS.items()}
            return self.reply(200, dump)
        p, q = self.parts()
        if p is None:
            return self.reply(404, {"detail": "not found"})
        with LOCK:
            if p == ["ping"] or p == ["config"] or p == ["me"]:
                return self.reply(200, {"version": "24.6.1", "results": [{"id": 1, "username": "admin"}], "count": 1})
            res = p[0]
            if p == ["unified_job_templates"]:
                return self.reply(200, self.listing([u for u in unified() if matches(u, q)]))
            items = STORE.setdefault(res, {})
            if len(p) == 1:
                found = [decorate(res, i) for i in items.values() if matches(i, q)]
                return self.reply(200, self.listing(found))
            oid = int(p[1])
            if oid not in items:
                return self.reply(404, {"detail": "not found"})
            if len(p) == 2:
                return self.reply(200, decorate(res, items[oid]))
            sub = p[2]
            if sub == "survey_spec":
                return self.reply(200, SURVEYS.get((res, oid), {}))
            if (res, sub) in CREATING:
                target, field = CREATING[(res, sub)]
                found = [decorate(target, i) for i in STORE.get(target, {}).values() if i.get(field) == oid and matches(i, q)]
                return self.reply(200, self.listing(found))
            ids = ASSOC.get((res, oid, sub), [])
            target = "workflow_job_template_nodes" if sub.endswith("_nodes") else sub
            found = [decorate(target, STORE[target][i]) for i in ids if i in STORE.get(target, {})]
            return self.reply(200, self.listing(found))

    def do_POST(self):
        p, _ = self.parts()
        data = self.body()
        if p is None:
            return self.reply(404, {"detail": "not found"})
        with LOCK:
            if p == ["tokens"]:
                return self.reply(201, {"id": 1, "token": "fake-token"})
            res = p[0]
            if len(p) == 1:
                error = invalid(res, data)
                if error:
                    return self.reply(400, error)
                return self.reply(201, self.create(res, data))
            oid = int(p[1])
            if oid not in STORE.get(res, {}):
                return self.reply(404, {"detail": "not found"})
            sub = p[2]
            if sub == "survey_spec":
                SURVEYS[(res, oid)] = data
                return self.reply(200, {})
            if (res, sub) in CREATING:
                target, field = CREATING[(res, sub)]
                data[field] = oid
                return self.reply(201, self.create(target, data))
            ids = ASSOC.setdefault((res, oid, sub), [])
            if data.get("disassociate"):
                if data["id"] in ids:
                    ids.remove(data["id"])
            elif data["id"] not in ids:
                ids.append(data["id"])
            return self.reply(204)

    def create(self, res, data):
        NEXT[0] += 1
        item = dict(data, id=NEXT[0])
        if res == "projects":
            item.setdefault("scm_revision", "")
        STORE.setdefault(res, {})[item["id"]] = item
        return decorate(res, item)

    def do_PATCH(self):
        p, _ = self.parts()
        with LOCK:
            item = STORE.get(p[0], {}).get(int(p[1]))
            if item is None:
                return self.reply(404, {"detail": "not found"})
            data = self.body()
            error = invalid(p[0], data)
            if error:
                return self.reply(400, error)
            if p[0] == "credentials" and "inputs" in data:
                # "$encrypted$" sent back keeps the stored secret, as in AWX.
                old = item.get("inputs") or {}
                data["inputs"] = {k: (old.get(k) if v == "$encrypted$" else v) for k, v in data["inputs"].items()}
            item.update(data)
            return self.reply(200, decorate(p[0], item))

    def do_DELETE(self):
        p, _ = self.parts()
        with LOCK:
            if p[0] == "tokens":
                return self.reply(204)
            if len(p) == 2:
                STORE.get(p[0], {}).pop(int(p[1]), None)
            return self.reply(204)


def main():
    global PROJECT_DIR
    PROJECT_DIR = sys.argv[2] if len(sys.argv) > 2 else None
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(sys.argv[1], "w", encoding="utf-8") as f:
        f.write(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()
