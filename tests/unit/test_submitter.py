"""The warm submitter's protocol, without a JVM: requests, replies, the code fingerprint, stopping."""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from jobs import flink_cluster, planning_watchdog, submitter_client, submitter_daemon
from jobs.submitter_client import DaemonFiles, SubmitRequest, SubmitterError
from streamscore.foundation.config import load_settings

REQUEST = SubmitRequest("/jobs/scoring_job.py", ("--config", '{"a": 1}'), "127.0.0.1:8081", "/venv/bin/python",
                        savepoint="file:///sp/1", env=(("STREAMSCORE_JOB_KAFKA_PROPERTIES_FILE", "/run/k.json"),
                                                       ("PATH", "/usr/bin")), cwd="/")


class FakePlanner:
    def __init__(self, fail: Exception | None = None, alive: bool = True):
        self.fail, self.seen, self.jvm_alive = fail, [], alive

    def alive(self) -> bool:
        return self.jvm_alive

    def submit(self, request: SubmitRequest) -> str:
        self.seen.append(request)
        if self.fail:
            raise self.fail
        return "0" * 31 + str(len(self.seen))


def test_a_request_travels_as_one_json_line():
    line = REQUEST.to_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert SubmitRequest.from_json(line.decode()) == REQUEST


def test_the_fingerprint_changes_with_any_python_file_of_the_project(tmp_path):
    for package in submitter_daemon.CODE_PACKAGES:
        (tmp_path / package).mkdir()
    module = tmp_path / "jobs" / "kafka_tables.py"
    module.write_text("A = 1\n")
    before = submitter_daemon.code_fingerprint(tmp_path)
    assert submitter_daemon.code_fingerprint(tmp_path) == before
    module.write_text("A = 22\n")
    assert submitter_daemon.code_fingerprint(tmp_path) != before
    after_edit = submitter_daemon.code_fingerprint(tmp_path)
    (tmp_path / "drift" / "new.py").write_text("")
    assert submitter_daemon.code_fingerprint(tmp_path) != after_edit


def test_a_job_script_gets_the_callers_argv_environment_and_folder_and_the_daemons_come_back(monkeypatch):
    monkeypatch.delenv("STREAMSCORE_JOB_KAFKA_PROPERTIES_FILE", raising=False)
    monkeypatch.setenv("ONLY_THE_DAEMONS", "1")
    argv, env, cwd = list(sys.argv), dict(os.environ), os.getcwd()
    with submitter_daemon._job_environment(REQUEST):
        assert sys.argv == ["/jobs/scoring_job.py", "--config", '{"a": 1}']
        assert dict(os.environ) == {"STREAMSCORE_JOB_KAFKA_PROPERTIES_FILE": "/run/k.json", "PATH": "/usr/bin"}
        assert os.getcwd() == "/"
    assert (sys.argv, dict(os.environ), os.getcwd()) == (argv, env, cwd)


def test_the_answer_is_the_job_id_the_failure_in_one_line_or_a_restart(monkeypatch):
    fingerprint = submitter_daemon.code_fingerprint()
    line = REQUEST.to_line()
    assert submitter_daemon.answer(FakePlanner(), line, fingerprint) == {"job_id": "0" * 31 + "1"}
    failing = FakePlanner(RuntimeError("scoring_job.py exited (2): error: --config is required"))
    reply = submitter_daemon.answer(failing, line, fingerprint)
    assert reply == {"error": "RuntimeError: scoring_job.py exited (2): error: --config is required"}
    untouched = FakePlanner()
    assert submitter_daemon.answer(untouched, line, ()) == {"restart": True} and not untouched.seen
    jvm_gone = FakePlanner(alive=False)  # its gateway JVM died: a fresh daemon takes the request
    assert submitter_daemon.answer(jvm_gone, line, fingerprint) == {"restart": True} and not jvm_gone.seen


def test_a_job_of_another_checkout_goes_to_a_daemon_of_that_checkout(tmp_path):
    other = tmp_path / "checkout" / "jobs"
    other.mkdir(parents=True)
    for name in ("submitter_daemon.py", "scoring_job.py"):
        (other / name).write_text("")
    fingerprint, planner = submitter_daemon.code_fingerprint(), FakePlanner()
    theirs = dataclasses.replace(REQUEST, script=str(other / "scoring_job.py"))
    assert submitter_daemon.answer(planner, theirs.to_line(), fingerprint) == {"restart": True}
    ours = dataclasses.replace(REQUEST, script=str(submitter_daemon.PROJECT_ROOT / "jobs" / "scoring_job.py"))
    assert "job_id" in submitter_daemon.answer(planner, ours.to_line(), fingerprint)
    assert "job_id" in submitter_daemon.answer(planner, REQUEST.to_line(), fingerprint)  # a script of no checkout


def _serving(tmp_path: Path, planner, before=lambda path: None) -> tuple[Path, threading.Thread]:
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    before(path)  # queued before the daemon answers anything
    thread = threading.Thread(target=submitter_daemon.serve,
                              args=(listener, planner, 2.0, submitter_daemon.code_fingerprint()), daemon=True)
    thread.start()
    return path, thread


def test_requests_are_answered_in_turn_over_the_socket_until_idle(tmp_path):
    planner = FakePlanner()
    path, thread = _serving(tmp_path, planner)
    replies = [submitter_client._exchange(submitter_client._try_connect(path), REQUEST, 10.0) for _ in range(3)]
    assert [r["job_id"][-1] for r in replies] == ["1", "2", "3"] and planner.seen == [REQUEST] * 3
    thread.join(timeout=10)
    assert not thread.is_alive()  # idle for 2 s: the daemon ends


def test_the_daemon_retires_after_its_last_job_and_a_queued_caller_is_told_to_go_again(tmp_path):
    planner = FakePlanner()
    path = tmp_path / "s.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    thread = threading.Thread(target=submitter_daemon.serve, daemon=True,
                              args=(listener, planner, 30.0, submitter_daemon.code_fingerprint(), 2))
    thread.start()
    replies = [submitter_client._exchange(submitter_client._try_connect(path), REQUEST, 10.0) for _ in range(2)]
    assert [r["job_id"][-1] for r in replies] == ["1", "2"]
    thread.join(timeout=10)
    assert not thread.is_alive()  # two jobs: it leaves at once, not after its idle time
    listener.close()  # as main() does: a caller queued meanwhile is reset, and the client goes again
    assert submitter_client._try_connect(path) is None


def test_a_refused_job_is_a_submitter_error_with_the_daemons_line(tmp_path, monkeypatch):
    path, _ = _serving(tmp_path, FakePlanner(ValueError("no such model")))
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    monkeypatch.setattr(submitter_client, "_connected", lambda _settings: submitter_client._try_connect(path))
    with pytest.raises(SubmitterError, match=r"^ValueError: no such model$"):
        submitter_client.submit_through_daemon(settings, REQUEST, 10.0)


def test_stopping_trusts_only_a_pid_whose_command_line_is_the_daemon(tmp_path):
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    files = DaemonFiles.of(settings)
    assert submitter_client.stop_daemon(settings) is False  # nothing ran
    files.pid.parent.mkdir(parents=True, exist_ok=True)
    files.pid.write_text(f"{os.getpid()}\n")  # this test's own pid: not a daemon, never signalled
    assert submitter_client.stop_daemon(settings) is False and not files.pid.exists()


def test_a_socket_path_too_long_for_unix_moves_under_the_temporary_directory(tmp_path, monkeypatch, request):
    short_tmp = tempfile.mkdtemp(prefix="ss-")  # a short temporary directory of this test's own
    request.addfinalizer(lambda: shutil.rmtree(short_tmp))
    monkeypatch.setattr(tempfile, "tempdir", short_tmp)
    short = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    assert DaemonFiles.of(short).socket == short.run_dir / "flink-submitter.sock"
    deep = load_settings({"STREAMSCORE_HOME": str(tmp_path / ("d" * 120))})
    socket_path = DaemonFiles.of(deep).socket
    assert len(os.fsencode(socket_path)) <= submitter_client.SOCKET_PATH_MAX
    assert socket_path.parent.stat().st_mode & 0o777 == 0o700
    assert socket_path == DaemonFiles.of(deep).socket != DaemonFiles.of(short).socket  # one per stack home


def test_a_caller_that_gave_up_while_queued_gets_no_job(tmp_path):
    def give_up(path):
        gone = submitter_client._try_connect(path)
        gone.sendall(REQUEST.to_line())
        gone.close()

    planner = FakePlanner()
    path, thread = _serving(tmp_path, planner, before=give_up)
    reply = submitter_client._exchange(submitter_client._try_connect(path), REQUEST, 10.0)
    assert reply == {"job_id": "0" * 31 + "1"} and planner.seen == [REQUEST]  # only the caller still there
    thread.join(timeout=10)


def test_a_daemon_that_left_before_reading_is_retried(tmp_path, monkeypatch):
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    replies = iter([ConnectionResetError(), BrokenPipeError(), {"restart": True}, {"job_id": "ab" * 16}])

    def exchange(_sock, _request, _timeout):
        reply = next(replies)
        if isinstance(reply, Exception):
            raise reply
        return reply

    monkeypatch.setattr(submitter_client, "_connected", lambda _settings: None)
    monkeypatch.setattr(submitter_client, "_exchange", exchange)
    assert submitter_client.submit_through_daemon(settings, REQUEST, 10.0) == "ab" * 16
    monkeypatch.setattr(submitter_client, "_exchange", lambda *_: {"restart": True})
    with pytest.raises(SubmitterError, match="left 5 times"):
        submitter_client.submit_through_daemon(settings, REQUEST, 10.0)


def test_a_connection_the_daemon_closed_unread_is_raised_to_be_retried():
    ours, daemons = socket.socketpair()
    daemons.close()  # the daemon left with the request unread
    big = SubmitRequest("/jobs/scoring_job.py", ("--config", "a" * 1_000_000), "127.0.0.1:8081", "python3")
    with pytest.raises(submitter_client.LEFT_BEFORE_READING):
        submitter_client._exchange(ours, big, 5.0)


class FakeJavaError:
    def __init__(self, text: str, cause: FakeJavaError | None = None):
        self.text, self.cause = text, cause

    def getCause(self):
        return self.cause

    def toString(self):
        return self.text


def test_a_java_failure_is_told_by_its_deepest_cause():
    exc = RuntimeError("An error occurred while calling o42.executeSql.")
    exc.java_exception = FakeJavaError("org.apache.flink.table.api.ValidationException: SQL validation failed",
                                       FakeJavaError("org.apache.kafka.common.KafkaException: no such topic\n\tat x"))
    assert submitter_daemon.one_line(exc) == "org.apache.kafka.common.KafkaException: no such topic"


class FakeConfiguration(dict):
    def __init__(self, base=None):
        super().__init__(base or {})

    def setString(self, key, value):
        self[key] = value


def test_the_context_says_what_flink_run_says(monkeypatch, tmp_path):
    from types import SimpleNamespace

    planner = submitter_daemon.WarmPlanner.__new__(submitter_daemon.WarmPlanner)
    module = SimpleNamespace(Configuration=FakeConfiguration,
                             GlobalConfiguration=SimpleNamespace(loadConfiguration=lambda _dir: {"from": "yaml"}))
    planner.jvm = SimpleNamespace(org=SimpleNamespace(apache=SimpleNamespace(flink=SimpleNamespace(
        configuration=module))))
    planner.python_jar = "file:///flink/opt/flink-python-2.2.1.jar"
    monkeypatch.setenv("FLINK_CONF_DIR", str(tmp_path))
    conf = planner._configuration(REQUEST)
    assert conf == {"from": "yaml", "execution.target": "remote", "rest.address": "127.0.0.1", "rest.port": "8081",
                    "execution.attached": "false", "python.executable": "/venv/bin/python",
                    "pipeline.jars": "file:///flink/opt/flink-python-2.2.1.jar",
                    "execution.state-recovery.path": "file:///sp/1"}


class StuckPlanner(FakePlanner):
    """A planning that hangs until its JVM is stopped (``in_jvm``), or for good (stuck in Python)."""

    def __init__(self, in_jvm: bool):
        super().__init__()
        self.in_jvm, self.stopped = in_jvm, threading.Event()

    def stop_jvm(self) -> None:
        self.jvm_alive = False
        if self.in_jvm:
            self.stopped.set()

    def submit(self, request: SubmitRequest) -> str:
        self.stopped.wait(5.0)
        raise ConnectionError("Error while sending or receiving")  # py4j's, once the JVM is gone


def test_a_planning_stuck_in_the_jvm_is_stopped_and_answered(monkeypatch):
    monkeypatch.setattr(os, "_exit", pytest.fail)  # the daemon's end would be the test process's
    fingerprint = submitter_daemon.code_fingerprint()
    planner = StuckPlanner(in_jvm=True)
    reply = submitter_daemon.answer(planner, REQUEST.to_line(), fingerprint, plan_limit_s=0.2)
    assert reply["error"].startswith("planning took longer than 0 s: the warm submitter stopped its JVM"), reply
    assert "a job it may have submitted was not looked for (the request names none)" in reply["error"]
    assert submitter_daemon.answer(planner, REQUEST.to_line(), fingerprint) == {"restart": True}  # a fresh daemon


def test_a_planning_stuck_in_python_ends_the_daemon():
    left = threading.Event()
    planner = StuckPlanner(in_jvm=False)
    with planning_watchdog.PlanningWatchdog(planner, 0.1, grace_s=0.2, leave=left.set) as watchdog:
        assert left.wait(5.0)  # the JVM stopped, the planning still stuck: the daemon leaves
    assert watchdog.expired and not planner.jvm_alive


def test_a_planning_in_time_is_left_alone():
    planner = FakePlanner()
    with planning_watchdog.PlanningWatchdog(planner, 0.2, leave=pytest.fail) as watchdog:
        planner.submit(REQUEST)
    threading.Event().wait(0.4)  # past the limit: the timer was cancelled
    assert not watchdog.expired and planner.jvm_alive


def test_the_job_a_stopped_planning_submitted_is_found_by_name_and_cancelled(monkeypatch):
    calls = []
    jobs = [{"jid": "a" * 32, "name": "it-x", "start-time": 10_000, "state": "RUNNING"},  # this planning's
            {"jid": "b" * 32, "name": "it-x", "start-time": 1_000, "state": "RUNNING"},  # an older run's
            {"jid": "c" * 32, "name": "other", "start-time": 10_000, "state": "RUNNING"},
            {"jid": "d" * 32, "name": "it-x", "start-time": 10_000, "state": "CANCELED"}]

    def rest_at(address, path, method="GET"):
        calls.append((address, path, method))
        return {"jobs": jobs} if path == "/jobs/overview" else {}

    monkeypatch.setattr(flink_cluster, "rest_at", rest_at)  # the job list and the cancel it asks for
    monkeypatch.setattr(planning_watchdog, "REGISTER_WAIT_S", 0.0)
    request = dataclasses.replace(REQUEST, args=("--config", '{"job_name": "it-x"}'))
    done = planning_watchdog.cancel_unreported_job(request, since_ms=9_000)
    assert done == "cancelled the job 'it-x' it had submitted"
    assert calls[1:] == [("127.0.0.1:8081", f"/jobs/{'a' * 32}", "PATCH")]
    named = dataclasses.replace(REQUEST, args=("--job-name", "other", "--bootstrap", "k:9092"))
    assert planning_watchdog.requested_job_name(named) == "other"
    assert planning_watchdog.cancel_unreported_job(dataclasses.replace(named, args=("--job-name", "none")),
                                                   since_ms=0) == "no job 'none' was submitted"


def test_a_flink_run_that_timed_out_has_the_job_it_handed_over_cancelled(monkeypatch, tmp_path):
    """The plain ``flink run`` path: the client timed out, but the cluster got the job (its caller never
    got the id), so it is found by name and cancelled, and the error says so."""
    import subprocess
    import time

    from streamscore.foundation.config import load_settings

    calls = []

    def run(argv, **kwargs):
        raise subprocess.TimeoutExpired(argv, kwargs["timeout"])

    def rest_at(address, path, method="GET"):
        calls.append((path, method))
        started = int(time.time() * 1000)
        return {"jobs": [{"jid": "e" * 32, "name": "it-late", "start-time": started, "state": "RUNNING"}]} \
            if path == "/jobs/overview" else {}

    monkeypatch.setattr(flink_cluster.subprocess, "run", run)
    monkeypatch.setattr(flink_cluster.time, "sleep", lambda s: None)
    monkeypatch.setattr(flink_cluster, "rest_at", rest_at)
    settings = load_settings({"STREAMSCORE_HOME": str(tmp_path)})
    with pytest.raises(flink_cluster.FlinkJobError,
                       match=r"timed out after 5s \(cancelled the job 'it-late' it had submitted\)"):
        flink_cluster._flink_run(settings, tmp_path / "scoring_job.py", ["--config", '{"job_name": "it-late"}'],
                                 None, 5.0, {})
    assert calls == [("/jobs/overview", "GET"), (f"/jobs/{'e' * 32}", "PATCH")]
