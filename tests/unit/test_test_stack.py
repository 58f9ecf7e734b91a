"""tests/conftest.py: the suite gets a stack of its own unless the environment names one."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

CONFTEST = runpy.run_path(str(Path(__file__).resolve().parents[1] / "conftest.py"))


def _configured(monkeypatch, env: dict[str, str]) -> dict[str, str]:
    fake = dict(env)
    monkeypatch.setattr(os, "environ", fake)
    CONFTEST["pytest_configure"](None)
    return fake


def test_a_bare_environment_gets_the_test_stack(monkeypatch):
    env = _configured(monkeypatch, {"PATH": "/bin"})
    assert env["STREAMSCORE_KAFKA_BOOTSTRAP"] == "127.0.0.1:29092" and env["STREAMSCORE_HOME"].endswith(
        ".streamscore-test")
    assert env["STREAMSCORE_FLINK_SUBMITTER"] == "daemon"  # the test stack's jobs go through a warm client JVM


def test_a_submitter_chosen_by_hand_wins(monkeypatch):
    assert _configured(monkeypatch, {"STREAMSCORE_FLINK_SUBMITTER": "cli"})["STREAMSCORE_FLINK_SUBMITTER"] == "cli"


def test_an_environment_that_names_a_stack_is_left_whole(monkeypatch, capsys):
    compose_user = {"STREAMSCORE_KAFKA_MODE": "external", "STREAMSCORE_JOBS_KAFKA_BOOTSTRAP": "kafka:29092"}
    assert _configured(monkeypatch, compose_user) == compose_user
    assert "running on the stack your environment names" in capsys.readouterr().out
