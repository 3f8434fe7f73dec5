"""The rpc package is pure: it imports no I/O, thread, clock or server module."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rtcloud.rpc

FORBIDDEN = ["asyncio", "socket", "threading", "time", "rpyc", "starlette", "websockets"]
PURE_MODULES = ["messages", "codec", "protocol", "dispatch"]

# The interpreter may load some of these at start-up (``time``); forget them first so that
# an import by rtcloud.rpc shows up again in sys.modules.
SCRIPT = f"""
import json, sys
for name in {FORBIDDEN!r}:
    sys.modules.pop(name, None)
for name in {PURE_MODULES!r}:
    __import__("rtcloud.rpc." + name)
print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))
print(json.dumps(sorted(m for m in ('numpy', 'pydicom', 'logging') if m in sys.modules)))
"""


def _run(script: str) -> tuple[list[str], list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    loaded, heavy = (json.loads(line) for line in out.stdout.splitlines())
    return loaded, heavy


def test_importing_rpc_in_a_fresh_interpreter_loads_no_forbidden_module():
    loaded, heavy = _run(SCRIPT)
    # ``time`` is the one exception: the standard ``datetime`` module (which msgpack itself
    # imports) loads it. The source check below proves that rtcloud.rpc never uses it.
    assert loaded in ([], ["time"]), f"importing rtcloud.rpc loads {loaded}"
    assert heavy == [], f"rtcloud.rpc imports {heavy} at import time (import them lazily)"


def test_the_check_would_notice_a_forbidden_import():
    loaded, _ = _run(SCRIPT.replace('"rtcloud.rpc." + name', '"logging"'))
    assert "threading" in loaded


def test_rpc_sources_never_import_forbidden_modules():
    package = Path(rtcloud.rpc.__file__).parent
    for name in PURE_MODULES:
        tree = ast.parse((package / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN, f"rpc/{name}.py imports {module}"
