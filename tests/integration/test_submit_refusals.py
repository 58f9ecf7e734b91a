"""Bad deployments are refused at submit with one clear line and no job: never a restart loop.

A corrupt model file, a model whose contract does not fit the event schema, a topic that does
not exist, an unreachable broker, an unreachable Schema Registry and a bad Flink address, each
through the real CLI against the real stack.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.flink_cluster import list_jobs

pytestmark = pytest.mark.integration

MODELS = Path(__file__).resolve().parents[2] / "models"


def _submit(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra_env}
    return subprocess.run([sys.executable, "-m", "streamscore.cli.main", "submit", "scoring", "--job-name",
                           "it-refused", *args], capture_output=True, text=True, env=env, timeout=120, check=False)


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("streamscore: error:")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.fixture
def registry_copy(tmp_path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(MODELS / "fraud", target / "fraud")
    return target


def _jobs_named(settings, name: str) -> list:
    return [j for j in list_jobs(settings) if j.name == name]


def test_a_corrupt_model_file_is_refused(settings, stack, registry_copy):
    onnx = registry_copy / "fraud" / "1.0.0" / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-100] + b"\0" * 100)
    line = _one_error_line(_submit({}, "--registry-dir", str(registry_copy)))
    assert "sha256" in line and "model.onnx" in line
    assert not _jobs_named(settings, "it-refused")


def test_a_contract_that_does_not_fit_the_event_schema_is_refused(settings, stack, registry_copy):
    card_path = registry_copy / "fraud" / "1.0.0" / "model.json"
    card = json.loads(card_path.read_text())
    card["features"][0]["field"] = "no_such_field"
    card_path.write_text(json.dumps(card))
    line = _one_error_line(_submit({}, "--registry-dir", str(registry_copy)))
    assert "no_such_field" in line
    assert not _jobs_named(settings, "it-refused")


def test_a_wrong_topic_name_is_refused(settings, stack):
    line = _one_error_line(_submit({"STREAMSCORE_TOPIC_EVENTS": "no-such-topic"}))
    assert "no-such-topic" in line and "does not exist" in line
    assert not _jobs_named(settings, "it-refused")


def test_an_unreachable_broker_is_refused(settings, stack):
    unreachable = {"STREAMSCORE_KAFKA_MODE": "external", "STREAMSCORE_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    line = _one_error_line(_submit(unreachable))
    assert "127.0.0.1:1" in line and "unreachable" in line


def test_an_unreachable_schema_registry_is_refused_for_a_model_with_a_schema(settings, stack):
    closed = {"STREAMSCORE_SCHEMA_REGISTRY_MODE": "external",
              "STREAMSCORE_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1/apis/ccompat/v7"}
    line = _one_error_line(_submit(closed, "--model", "sensor:1.0.0", "--input-topic", settings.topic("events").name))
    assert "schema registry http://127.0.0.1:1/apis/ccompat/v7 did not answer" in line
    assert not _jobs_named(settings, "it-refused")


def test_a_bad_flink_address_is_refused(settings, stack):
    line = _one_error_line(_submit({"STREAMSCORE_FLINK_MODE": "external", "STREAMSCORE_FLINK_REST": "127.0.0.1:1"}))
    assert "127.0.0.1:1" in line
