"""The experiment config as the server reports it: saves, changes on disk, broken files."""

from __future__ import annotations

import json
import logging

from test_server_http import login, receive_until, ws_connect

from rtcloud.server.app import COOKIE_NAME


def test_the_save_log_line_names_only_the_changed_settings(server, caplog):
    caplog.set_level(logging.INFO, logger="rtcloud.server.server")
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        values = {"numVolumes": 7, "pause": 0.01, "subjectName": "sub01", "title": "Test study"}
        ws.send(json.dumps({"cmd": "saveConfig", "values": values}))
        receive_until(ws, lambda m: m["cmd"] == "configSaved")
        ws.send(json.dumps({"cmd": "saveConfig", "values": values}))
        receive_until(ws, lambda m: m["cmd"] == "configSaved")
    lines = [r.getMessage() for r in caplog.records if "settings" in r.getMessage()]
    assert lines == [
        "user test changed settings: numVolumes",
        "user test saved the settings unchanged",
    ]


def test_a_broken_file_is_a_problem_message_and_the_rest_of_the_state_still_comes(server):
    good = server.settings.path.read_text()
    server.settings.path.write_text(good + "runNum = [2]\n")  # a key given twice
    _, response = login(server)
    with ws_connect(server, response.cookies[COOKIE_NAME]) as ws:
        ws.send(json.dumps({"cmd": "getState"}))
        _, seen = receive_until(ws, lambda m: m["cmd"] == "setDataPoints")  # getState's last
        by_cmd = {m["cmd"]: m for m in seen}
        problem = by_cmd["configProblem"]
        assert problem["line"] == 9 and problem["column"] == 1
        assert "runNum" in problem["error"] and problem["filename"] == str(server.settings.path)
        assert by_cmd["hello"]["title"] is None
        assert {"runStatus", "connStatus"} <= set(by_cmd) and "config" not in by_cmd
        server.config_poll_interval = 0.05
        server.settings.path.write_text(good)
        fixed, _ = receive_until(ws, lambda m: m["cmd"] == "config")
        assert fixed["title"] == "Test study" and fixed["header"] == "Test project"
        ws.send(json.dumps({"cmd": "runScript", "script": "mainScript"}))
        receive_until(ws, lambda m: m["cmd"] == "runStatus" and m["state"] == "complete")
