"""The rtcloud command's help, option names and exit codes, as a new user meets them."""

from __future__ import annotations

import argparse
import getpass
import io
import re
import sys

import httpx
import pytest

from helpers import REPO
from rtcloud.cli import EXIT_USAGE, build_parser, main
from rtcloud.server.auth import PasswordFile


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_command_and_option_is_described():
    commands = subcommands()
    assert set(commands) >= {"serve", "demo", "add-user", "data-service", "subject-service"}
    for name, command in commands.items():
        assert command.description and len(command.description) > 40, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, f"rtcloud {name} {action.option_strings or action.dest}"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["replay"], "--tr TR               seconds between volumes (default 2; BIDS: its TR)"),
        (["generate"], "(default: 001_{SCAN:06d}_{TR:06d}.dcm)"),
        (["data-service"], "(default: localhost:8888)"),
        (["demo"], "(default: 20)"),
        (["generate"], "seed of the simulated noise (default: 0)"),
    ],
)
def test_defaults_are_shown(argv, expected, capsys):
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    out = " ".join(capsys.readouterr().out.split())  # unwrap argparse's line breaks
    assert " ".join(expected.split()) in out


def test_data_service_default_folders_are_listed_once(capsys):
    with pytest.raises(SystemExit):
        main(["data-service", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    folders = re.search(r"\(default: ([^)]*)\)", out.split("--dirs", 1)[1]).group(1).split(",")
    assert len(folders) == len(set(folders))


def test_users_file_has_its_own_name_and_the_old_one_still_works(tmp_path, monkeypatch, capsys):
    users = tmp_path / "users.json"
    monkeypatch.setattr(sys, "stdin", io.StringIO("first-pw\n"))
    assert main(["add-user", "-u", "ann", "--users-file", str(users), "--password-stdin"]) == 0
    assert "note:" not in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO("second-pw\n"))
    assert main(["add-user", "-u", "bob", "--password-file", str(users), "--password-stdin"]) == 0
    err = capsys.readouterr().err
    assert "--password-file of 'rtcloud add-user' is now --users-file" in err
    assert PasswordFile(users).verify("ann", "first-pw")
    assert PasswordFile(users).verify("bob", "second-pw")
    args = build_parser().parse_args(["serve", "-p", "x", "--users-file", str(users)])
    assert args.users_file == users
    # the services' --password-file is still the file that holds one password
    args = build_parser().parse_args(["data-service", "--password-file", str(users)])
    assert args.password_file == users


@pytest.mark.parametrize(
    "user, password, message",
    [
        ("two words", "long-enough", "without spaces"),
        ("carl", "abc", "at least 4 characters"),
        ("", "long-enough", "non-empty"),
    ],
)
def test_add_user_mistakes_all_exit_with_the_usage_status(
    tmp_path, monkeypatch, capsys, user, password, message
):
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    users = tmp_path / "users.json"
    code = main(["add-user", "-u", user, "--users-file", str(users), "--password-stdin"])
    assert code == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "nothing was changed" in err
    assert not users.exists()
    with pytest.raises(SystemExit) as info:
        main(["add-user", "--users-file", str(users)])  # no -u: argparse's own usage error
    assert info.value.code == EXIT_USAGE


def test_an_unknown_project_lists_each_folder_it_looked_in_once(monkeypatch, capsys):
    monkeypatch.chdir(REPO)  # the checkout's projects/ is also where the sample ships
    assert main(["serve", "-p", "doesnotexist"]) == EXIT_USAGE
    err = capsys.readouterr().err
    looked = err.split("looked in ", 1)[1].split(");", 1)[0].split(", ")
    assert len(looked) == len(set(looked)) >= 2
    assert str(REPO / "projects" / "doesnotexist") in looked


def test_the_one_time_link_logs_in_as_the_os_user(server_factory):
    server = server_factory(test=False)
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as client:
        client.get(server.login_url)
        assert client.get("/api/session").json() == {"user": getpass.getuser()}
