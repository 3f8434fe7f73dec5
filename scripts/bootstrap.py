"""Set up a virtual environment for rtcloud and run the demo or the tests.

    python3 scripts/bootstrap.py demo [demo options]   # set up, then run the end-to-end demo
    python3 scripts/bootstrap.py test [pytest options] # set up, then lint, type-check, test

Works with any Python >= 3.10 on Linux, macOS and Windows. The environment lives in
``.venv`` next to this repository's ``pyproject.toml`` and is reused on the next run. For the
browser tests, ``test`` installs Debian's chromium when it runs as root on Debian/Ubuntu;
elsewhere those tests are skipped with a message unless a chromium is found; likewise
Debian's dcmtk (a DICOM sender and encoders we did not write). When npm is
on the PATH, ``test`` also installs jsPsych 7 and 8 into ``.cache/`` (once) for the jsPsych
plugin's browser test; without npm that test is skipped with a message.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")


def run(*cmd: str | Path, check: bool = True) -> int:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    return subprocess.run([str(c) for c in cmd], cwd=ROOT, check=check).returncode


def ensure_venv(extras: str) -> None:
    if sys.version_info < (3, 10):  # noqa: UP036 (bootstrap itself may run on an older Python)
        sys.exit(f"rtcloud needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / f".installed-{extras or 'base'}"
    pyproject = ROOT / "pyproject.toml"
    if stamp.exists() and stamp.stat().st_mtime >= pyproject.stat().st_mtime:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip")
    target = f".[{extras}]" if extras else "."
    run(PY, "-m", "pip", "install", "--quiet", "-e", target)
    stamp.touch()


def ensure_chromium() -> None:
    if shutil.which("chromium") or os.path.exists("/usr/bin/chromium"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, env=env)
    if not os.path.exists("/usr/bin/chromium"):
        print("note: no chromium found; the browser tests will be skipped", flush=True)


def ensure_dcmtk() -> None:
    """dcmtk's storescu (a DICOM sender we did not write) and its JPEG/JPEG-LS/RLE encoders,
    for the C-STORE and compressed-image tests: Debian's package when running as root on
    Debian/Ubuntu; elsewhere those tests are skipped with a message."""
    if shutil.which("storescu") and shutil.which("dcmcjpls"):
        return
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "dcmtk"], check=False, env=env)
    if not shutil.which("storescu"):
        print("note: no dcmtk found; the dcmtk storescu tests will be skipped", flush=True)


#: jsPsych copies for the plugin's browser test (tests/web/test_feedback_page.py): 7.3.4 is
#: also the version the page loads from the CDN (the test checks its integrity hash).
JSPSYCH = {"jspsych7": "jspsych@7.3.4", "jspsych8": "jspsych@8"}


def ensure_jspsych() -> None:
    """npm install jsPsych 7 and 8 into .cache/jspsychN (a fast no-op once there)."""
    cache = ROOT / ".cache"
    missing = {
        folder: spec
        for folder, spec in JSPSYCH.items()
        if not (cache / folder / "node_modules" / "jspsych" / "dist").is_dir()
    }
    if not missing:
        return
    npm = shutil.which("npm")
    if npm is None:
        # Debian's npm package pulls in about 420 packages (500 MB): not worth it for one test.
        print("note: npm not found; the jsPsych plugin test will be skipped", flush=True)
        return
    for folder, spec in missing.items():
        code = run(
            npm, "install", "--prefix", cache / folder, spec,
            "--no-audit", "--no-fund", "--no-save", "--loglevel=error", check=False,
        )  # fmt: skip
        if code != 0:
            print(f"note: npm could not install {spec}; its test will be skipped", flush=True)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("demo", "test"):
        print(__doc__)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "demo":
        ensure_venv("")
        return run(BIN / "rtcloud", "demo", *rest, check=False)
    ensure_venv("dev")
    ensure_chromium()
    ensure_dcmtk()
    ensure_jspsych()
    code = [
        d for d in ("src", "tests", "benchmarks", "projects", "examples") if (ROOT / d).is_dir()
    ]
    run(BIN / "ruff", "check", *code)
    run(BIN / "ruff", "format", "--check", *[d for d in code if d != "projects"])
    run(BIN / "mypy")
    return run(PY, "-m", "pytest", *rest, check=False)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except subprocess.CalledProcessError as exc:
        print(f"bootstrap: step failed with exit status {exc.returncode}", file=sys.stderr)
        sys.exit(exc.returncode or 1)
