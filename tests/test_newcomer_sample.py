"""The sample project as a new user starts it by hand: the wrong Python, a repeated run."""

from __future__ import annotations

import subprocess
import sys

import tomlkit

from helpers import REPO
from rtcloud.cli import EXIT_USAGE, build_parser, main
from rtcloud.server.config import find_project_dir
from rtcloud.simulate.synthetic import generate_series

SAMPLE = find_project_dir("sample")


def test_the_sample_under_a_python_without_rtcloud_says_how_to_run_it():
    # -S: no site-packages, as a system Python without rtcloud and numpy
    done = subprocess.run(
        [sys.executable, "-S", str(SAMPLE / "sample.py"), "-y"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "No module named" in done.stderr and "Traceback" not in done.stderr
    assert ".venv" in done.stderr and "activate" in done.stderr


def test_a_run_over_old_files_warns_before_and_per_volume(tmp_path):
    scanner = tmp_path / "scanner"
    generate_series(scanner, num_volumes=3, shape=(64, 64, 30), scan=1)  # an earlier run's
    doc = tomlkit.parse((SAMPLE / "conf" / "sample.toml").read_text())
    doc["imgDir"], doc["numVolumes"], doc["trInterval"] = str(scanner), 3, 0.2
    doc["resultsDir"] = str(tmp_path / "results")
    config = tmp_path / "sample.toml"
    config.write_text(tomlkit.dumps(doc))
    done = subprocess.run(
        [sys.executable, str(SAMPLE / "sample.py"), "-y", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert f"warning: 3 files of scan 1 in {scanner} are from before this run" in out
    assert out.index("warning:") < out.index("run 1 TR   0")
    assert out.count("WRITTEN BEFORE THIS RUN STARTED") == 3
    assert "rtcloud: no project server is running: using local files" in done.stderr


def test_serve_replay_needs_the_folder_in_the_config(project_dir, capsys):
    args = build_parser().parse_args(["serve", "-p", "x", "--replay"])
    assert args.replay == ""
    args = build_parser().parse_args(["serve", "-p", "x", "--replay", "some/dicoms"])
    assert args.replay == "some/dicoms"
    code = main(["serve", "-p", "proj", "-d", str(project_dir), "--port", "0", "--replay"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "--replay needs the folder the project watches" in err and "imgDir" in err


def test_runs_leave_nothing_for_git_to_track():
    if not (REPO / ".git").exists():
        return  # an unpacked release: no git
    for path in (
        "projects/sample/dicomDir/001_000001_000000.dcm",
        "projects/sample/results/x.txt",
    ):
        done = subprocess.run(
            ["git", "check-ignore", "-q", path], cwd=REPO, capture_output=True, timeout=30
        )
        assert done.returncode == 0, f"{path} is not ignored by .gitignore"
