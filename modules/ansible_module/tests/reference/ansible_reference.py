#!/usr/bin/env python3
"""What ansible-core's own AnsibleModule answers for an argument spec and input.

Reads a JSON list of cases ({"name", "spec", "args"}) on stdin and prints a JSON
list of results ({"failed", "msg", "params", "module_args"}), one per case. The
Rust differential test compares them with ours.
"""
import io
import json
import sys
from contextlib import redirect_stdout

from ansible.module_utils import basic
from ansible.module_utils.common import warnings as ansible_warnings

RULES = ("mutually_exclusive", "required_together", "required_one_of", "required_if", "required_by")


def strip_docs(options):
    for opt in options.values():
        opt.pop("description", None)
        if isinstance(opt.get("options"), dict):
            strip_docs(opt["options"])
    return options


def run_case(case):
    spec = case["spec"]
    args = dict(case["args"])
    args.setdefault("_ansible_module_name", case.get("name", "test_module"))
    basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args}).encode()
    basic._ANSIBLE_PROFILE = "legacy"
    ansible_warnings._global_warnings.clear() if hasattr(ansible_warnings, "_global_warnings") else None
    kwargs = {k: spec[k] for k in RULES if k in spec}
    buf = io.StringIO()
    code = 0
    with redirect_stdout(buf):
        try:
            module = basic.AnsibleModule(
                argument_spec=strip_docs(spec["argument_spec"]),
                supports_check_mode=spec.get("supports_check_mode", False),
                **kwargs,
            )
            module.exit_json(changed=False, params=module.params)
        except SystemExit as e:
            code = e.code or 0
    out = json.loads(buf.getvalue().strip().splitlines()[-1])
    return {
        "failed": bool(out.get("failed", False)),
        "exit_code": code,
        "msg": out.get("msg"),
        "skipped": out.get("skipped", False),
        "params": out.get("params"),
        "module_args": out.get("invocation", {}).get("module_args"),
    }


def main():
    cases = json.load(sys.stdin)
    json.dump([run_case(c) for c in cases], sys.stdout)


if __name__ == "__main__":
    main()
