"""The README's "Score your own model" section, run as written: its train.py and then its commands, through
the real CLI against the real stack, until the scored records come back through the registry."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.flink_cluster import cancel_job, list_jobs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "models" / "my-sensor"  # where the README's `models register` puts the newcomer's model


def _section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Score your own model")
    return text[start:text.index("\n## ", start + 1)]


def _blocks(section: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


def _commands(shell_block: str) -> list[list[str]]:
    """The block's commands: continuation lines joined, comments dropped, `source` and `&&` split off."""
    joined = re.sub(r"\\\n\s*", " ", shell_block)
    commands = []
    for line in joined.splitlines():
        for part in line.split("#", 1)[0].split("&&"):
            argv = shlex.split(part)
            if argv and argv[0] != "source":
                commands.append(argv)
    return commands


def _run(argv: list[str], cwd: Path) -> str:
    if argv[0] == "python":
        argv = [sys.executable, *argv[1:]]
    elif argv[0] == "streamscore":
        argv = [sys.executable, "-m", "streamscore.cli.main", *argv[1:]]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, (argv, proc.stdout[-2000:], proc.stderr[-2000:])
    return proc.stdout


def test_the_newcomer_section_works_as_written(settings, stack, tmp_path):
    section = _section()
    (python_block,) = _blocks(section, "python")
    (shell_block,) = _blocks(section, "sh")
    (tmp_path / "train.py").write_text(python_block, encoding="utf-8")
    if MODEL_DIR.exists():  # a developer's own my-sensor from following the README: never touched
        pytest.skip(f"{MODEL_DIR} exists (yours, from the README?): move it away to run this test")
    outputs = []
    try:
        for argv in _commands(shell_block):
            outputs.append(_run(argv, tmp_path))
    finally:
        shutil.rmtree(MODEL_DIR, ignore_errors=True)
        for job in list_jobs(settings):
            if job.name == "streamscore-scoring-my-sensor" and job.state == "RUNNING":
                cancel_job(settings, job.job_id)
    assert "registered my-sensor:1.0.0" in outputs[1] and "my-readings-value v1" in outputs[1]
    assert "produced 1000 events to my-readings" in outputs[-2]
    scored = [json.loads(line) for line in outputs[-1].splitlines()]
    assert len(scored) == 3 and all(r["_schema"] == "io.streamscore.v1.ScoredEvent" for r in scored)
    assert all(r["model_name"] == "my-sensor" and r["event_id"].startswith("live-") for r in scored)
