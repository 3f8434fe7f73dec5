"""The BIDS model modules are pure: no event loop, socket, thread or server module on import,
and pybids (which loads asyncio and socket) and pandas only when first used."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rtcloud.bids

FORBIDDEN = ["asyncio", "socket", "threading", "rpyc", "starlette", "websockets"]
LAZY = ["bids", "pandas", "sqlalchemy", "boto3"]
PURE_MODULES = ["common", "incremental", "run", "archive", "dicom"]

# numpy, nibabel and pydicom load ``socket`` and ``threading`` themselves (for their own
# optional features): import them first, then forget the forbidden modules, so that only an
# import made by rtcloud.bids shows up again.
SCRIPT = f"""
import json, sys
import numpy, nibabel, pydicom, msgpack
for name in {FORBIDDEN!r}:
    sys.modules.pop(name, None)
for name in {PURE_MODULES!r}:
    __import__("rtcloud.bids." + name)
print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))
print(json.dumps(sorted(m for m in {LAZY!r} if m in sys.modules)))
"""


def _run(script: str) -> tuple[list[str], list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    loaded, lazy = (json.loads(line) for line in out.stdout.splitlines())
    return loaded, lazy


def test_importing_the_bids_model_loads_no_io_module_and_no_pybids():
    loaded, lazy = _run(SCRIPT)
    assert loaded == [], f"importing rtcloud.bids loads {loaded}"
    assert lazy == [], f"rtcloud.bids imports {lazy} at import time (import them lazily)"


def test_the_check_would_notice_pybids():
    loaded, lazy = _run(SCRIPT.replace('"rtcloud.bids." + name', '"bids.layout"'))
    # pybids loads the event loop and sockets: that is why rtcloud.bids imports it lazily
    assert "asyncio" in loaded and "bids" in lazy


def test_bids_model_sources_never_import_forbidden_modules():
    package = Path(rtcloud.bids.__file__).parent
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
                top = module.split(".")[0]
                assert top not in FORBIDDEN + ["time"], f"bids/{name}.py imports {module}"
