"""The rtcloud command, called as main(argv) with real files and real servers."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from rtcloud.cli import EXIT_USAGE, main
from rtcloud.server.auth import PasswordFile


def test_add_user_from_stdin(tmp_path, monkeypatch, capsys):
    users = tmp_path / "users.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-pw\n"))
    assert (
        main(["add-user", "-u", "alice", "--password-file", str(users), "--password-stdin"]) == 0
    )
    assert PasswordFile(users).verify("alice", "s3cret-pw")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["add-user", "-u", "bob", "--password-file", str(users)]) == EXIT_USAGE
    assert "--password-stdin" in capsys.readouterr().err


def test_generate_and_replay(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "src"), "--volumes", "3", "--shape", "16x16x4"]) == 0
    assert main(["replay", str(tmp_path / "src"), str(tmp_path / "dst"), "--tr", "0"]) == 0
    assert len(list((tmp_path / "dst").glob("*.dcm"))) == 3
    assert "replayed 3 volumes" in capsys.readouterr().out


def test_serve_errors_are_one_clear_line(project_dir, server, capsys):
    code = main(["serve", "-p", "proj", "-d", str(project_dir), "--port", str(server.port)])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert "already in use" in err and "Traceback" not in err
    assert main(["serve", "-p", "nosuchproject"]) == EXIT_USAGE
    assert "not found" in capsys.readouterr().err
    code = main(["serve", "-p", "proj", "-d", str(project_dir), "--host", "0.0.0.0", "--test"])
    assert code == EXIT_USAGE


def test_local_demo_runs_to_the_end(tmp_path, capsys):
    code = main(["demo", "--local", "--volumes", "3", "--tr", "0.2", "--workdir", str(tmp_path)])
    assert code == 0
    values = (tmp_path / "results" / "subject01_run1_values.txt").read_text().split()
    assert len(values) == 3


@pytest.mark.parametrize(
    "mode",
    [
        [],
        ["--in-process"],
        ["--layout", "enhanced"],
        ["--layout", "slices"],
        ["--layout", "enhanced-slices"],
    ],
    ids=["services", "in-process", "services-enhanced", "services-slices", "enhanced-slices"],
)
def test_server_demo_runs_the_sample_through_the_server(tmp_path, capsys, caplog, mode):
    argv = ["demo", "--volumes", "3", "--tr", "0.2", "--port", "0", "--workdir", str(tmp_path)]
    code = main(argv + mode)
    captured = capsys.readouterr()
    out = captured.out
    assert code == 0, out
    # the end of the demo is not reported as a problem (services stopped on purpose)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == []
    assert "watch it live at http://127.0.0.1:" in out
    assert out.count("run 1 TR ") == 3 and "run complete" in out
    if "--in-process" not in mode:
        assert "separate processes" in out
        feedback = tmp_path / "feedback" / "run1" / "classoutput"
        assert sorted(p.name for p in feedback.iterdir()) == [f"vol-1-{i}.txt" for i in range(3)]
