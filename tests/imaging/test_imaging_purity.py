"""The imaging package is pure: its modules import no I/O loop, thread, socket or server.

(Unlike rtcloud.rpc, importing it loads numpy, pydicom and nibabel, which may load the
threading module themselves; so the check reads the sources.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import rtcloud.imaging

FORBIDDEN = {"asyncio", "socket", "threading", "rpyc", "starlette", "websockets", "watchdog"}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            found.add((node.module or "").split(".")[0])
    return found


def test_imaging_modules_import_no_thread_socket_or_server_module():
    modules = sorted(Path(rtcloud.imaging.__file__).parent.glob("*.py"))
    assert {path.stem for path in modules} >= {"volume", "completeness", "anonymize", "nifti"}
    for path in modules:
        assert not _imports(path) & FORBIDDEN, (
            f"imaging/{path.name} imports {_imports(path) & FORBIDDEN}"
        )


def test_the_check_would_notice_a_forbidden_import(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text("import threading\nfrom asyncio import sleep\n")
    assert _imports(module) & FORBIDDEN == {"threading", "asyncio"}
