"""rtcloud.alloc: volume-sized buffers stay in the process (checked by counting page faults)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from rtcloud.alloc import _is_glibc, tune_allocator

# Three 1 MB buffers alive at once, then all freed, forty times over: the pattern of a volume
# passing through a process (file bytes, encoded copy, frame). Prints the page faults of the
# loop after a first round.
_CHILD = """
import json, resource, sys
tuned = None
if sys.argv[1] == "tune":
    from rtcloud.alloc import tune_allocator
    tuned = tune_allocator()
def round_():
    bufs = [bytearray(1_000_000) for _ in range(3)]
    for b in bufs:
        b[::4096] = b"x" * len(b[::4096])
round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(40):
    round_()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"tuned": tuned, "faults": after - before}))
"""

glibc_only = pytest.mark.skipif(not _is_glibc(), reason="the thresholds are glibc's")


def _run_child(mode: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


@glibc_only
def test_tuned_process_reuses_freed_buffers_without_page_faults() -> None:
    plain = _run_child("plain")
    tuned = _run_child("tune")
    assert tuned["tuned"] is True
    # each round touches 3 x 245 pages: untuned, most are faulted in again every round
    assert isinstance(plain["faults"], int) and plain["faults"] > 40 * 245
    assert isinstance(tuned["faults"], int) and tuned["faults"] < 200


@glibc_only
def test_tuning_leaves_the_environment_alone() -> None:
    env: dict[str, str] = {}
    assert tune_allocator(env) is True
    assert env == {}  # the experiment scripts our server starts are the user's processes


@glibc_only
def test_client_interface_leaves_the_users_process_alone(tmp_path) -> None:
    """An experiment script's ClientInterface() tunes neither its allocator nor its
    environment: its buffers are faulted in afresh as in any Python process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    env["HOME"] = str(tmp_path)  # no running server to find
    env["RTCLOUD_SERVER_INFO"] = str(tmp_path / "none.json")
    script = _CHILD.replace(
        'if sys.argv[1] == "tune":',
        'if sys.argv[1] == "client":\n'
        "    import os\n"
        "    from rtcloud.interfaces.client import ClientInterface\n"
        "    ClientInterface(yesToPrompts=True).close()\n"
        '    tuned = sorted(k for k in os.environ if k.startswith("MALLOC_"))\n'
        'if sys.argv[1] == "tune":',
    )
    out = subprocess.run(
        [sys.executable, "-c", script, "client"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["tuned"] == []
    assert result["faults"] > 40 * 245  # as untuned: the allocator was left as it was


def test_a_threshold_the_user_set_stands() -> None:
    env = {"MALLOC_TRIM_THRESHOLD_": "1000"}
    assert tune_allocator(env) is False
    assert env == {"MALLOC_TRIM_THRESHOLD_": "1000"}
