"""The preprocess package is pure computation: no I/O machinery, threads, servers or clocks
beyond the stage timer its callers may replace."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import rtcloud.preprocess

FORBIDDEN = [
    "asyncio",
    "socket",
    "threading",
    "subprocess",
    "rpyc",
    "starlette",
    "uvicorn",
    "websockets",
    "logging",
]
PACKAGE = Path(rtcloud.preprocess.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py"))

# numpy, scipy and nibabel load some of these themselves; what matters is what importing the
# preprocess package adds on top of them.
SCRIPT = f"""
import json, sys
import numpy, scipy.ndimage, nibabel, nibabel.orientations
before = set(sys.modules)
for name in {MODULES!r}:
    __import__("rtcloud.preprocess." + name if name != "__init__" else "rtcloud.preprocess")
added = set(sys.modules) - before
print(json.dumps(sorted(m for m in added if m.split(".")[0] in {FORBIDDEN!r})))
"""


def _added(script: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    result: list[str] = json.loads(out.stdout.splitlines()[-1])
    return result


def test_importing_preprocess_adds_no_forbidden_module():
    assert _added(SCRIPT) == []


def test_the_check_would_notice_a_forbidden_import():
    assert "asyncio" in _added(
        SCRIPT.replace("before = set(sys.modules)", "before = set()\nimport asyncio")
    )


def test_sources_import_nothing_forbidden_and_time_only_for_the_stage_clock():
    assert "pipeline" in MODULES and "motion" in MODULES
    for name in MODULES:
        tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
                assert "time" not in modules, f"preprocess/{name}.py imports time"
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
                if node.module == "time":
                    # the default of Pipeline(clock=...), read between stages; nothing else
                    assert name == "pipeline", f"preprocess/{name}.py imports from time"
                    assert [a.name for a in node.names] == ["perf_counter"]
                if (node.module or "").startswith("rtcloud"):
                    assert node.module in ("rtcloud.errors",) or node.module.startswith(
                        "rtcloud.preprocess"
                    ), f"preprocess/{name}.py imports {node.module}"
            else:
                continue
            for module in modules:
                assert module.split(".")[0] not in FORBIDDEN, (
                    f"preprocess/{name}.py imports {module}"
                )
