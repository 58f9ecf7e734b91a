"""Talk to a Flink cluster: submit PyFlink jobs with the wheel's ``flink`` CLI, list and cancel over REST."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from jobs.flink_home import client_home, pyflink_dir
from jobs.job_secrets import job_secrets_env, without_secrets
from jobs.submitter_client import SubmitRequest, SubmitterError, submit_through_daemon
from streamscore.foundation.config import Settings
from streamscore.foundation.errors import StreamscoreError

JOBS_DIR = Path(__file__).resolve().parent
JOB_ID_PATTERN = re.compile(r"JobID ([0-9a-f]{32})")
ENDED_STATES = frozenset({"FAILED", "CANCELED", "FINISHED"})  # Flink's globally terminal job states


class FlinkJobError(StreamscoreError):
    """A job could not be submitted, found, or stopped."""


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    name: str
    state: str
    start_time_ms: int


def flink_env(settings: Settings) -> dict[str, str]:
    """Environment for the ``flink`` CLI: our conf (REST address) and lib (Kafka connector)."""
    return dict(os.environ) | client_home(settings).env()


def submit_python_job(settings: Settings, script: Path, job_args: list[str], *,
                      savepoint: str | None = None, timeout_s: float = 180.0) -> str:
    """Submit ``script`` detached to the cluster at ``settings.flink_rest``; returns the job id. By
    ``flink run`` (a client JVM of its own), or through the stack home's warm submitter when
    ``settings.flink_submitter`` is ``daemon`` (jobs/submitter_client.py)."""
    with job_secrets_env(settings) as secrets_env:  # deleted once the job graph is submitted
        env = without_secrets(flink_env(settings)) | secrets_env  # the driver's environment, either way
        if settings.flink_submitter == "daemon":
            request = SubmitRequest(str(script), tuple(job_args), str(settings.flink_rest), settings.cluster_python,
                                    savepoint, tuple(env.items()), os.getcwd())
            try:
                return submit_through_daemon(settings, request, timeout_s)
            except SubmitterError as exc:
                raise FlinkJobError(f"submitting {script.name} to {settings.flink_rest} failed: {exc}") from exc
        return _flink_run(settings, script, job_args, savepoint, timeout_s, env)


def _flink_run(settings: Settings, script: Path, job_args: list[str], savepoint: str | None, timeout_s: float,
               env: dict[str, str]) -> str:
    flink = pyflink_dir() / "bin" / "flink"
    argv = ["bash", str(flink), "run", "-d", "-m", str(settings.flink_rest)]
    if savepoint:
        argv += ["-s", savepoint]
    argv += ["-pyexec", settings.cluster_python, "-py", str(script), *job_args]
    began_ms = int(time.time() * 1000)
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        name = job_name_in_args(job_args)
        if name is not None:
            time.sleep(2.0)  # a job handed over just before the client was stopped shows in the job list
        done = cancel_unreported(str(settings.flink_rest), name, began_ms)
        raise FlinkJobError(f"submitting {script.name} to {settings.flink_rest} timed out after "
                            f"{timeout_s:.0f}s ({done})") from exc
    match = JOB_ID_PATTERN.search(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        raise FlinkJobError(f"submitting {script.name} to {settings.flink_rest} failed: "
                            f"{failure_cause(proc.stdout + proc.stderr)}")
    return match.group(1)


def failure_cause(output: str) -> str:
    """The most telling line of a job client's failure (the last 'Caused by' / error line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    for marker in ("StreamscoreError", "Error:", "Caused by:", "Exception:"):
        hits = [ln for ln in lines if marker in ln]
        if hits:
            return hits[-1][:500]
    return (lines[-1] if lines else "no output")[:500]


def rest(settings: Settings, path: str, method: str = "GET", body: dict | None = None, timeout: float = 10.0):
    return rest_at(str(settings.flink_rest), path, method, body, timeout)


def rest_at(address: str, path: str, method: str = "GET", body: dict | None = None, timeout: float = 10.0):
    """One call to the Flink REST API at ``address`` (host:port); its JSON answer."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://{address}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = resp.read()
    except urllib.error.HTTPError as exc:
        raise FlinkJobError(f"Flink REST {method} {path}: HTTP {exc.code} {exc.read()[:300]!r}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise FlinkJobError(f"Flink at {address} is unreachable: {exc}") from exc
    try:
        return json.loads(payload) if payload else {}
    except ValueError as exc:  # something else answers at that address
        raise FlinkJobError(f"{address} answered {method} {path} with no JSON: is it Flink's REST address? "
                            f"({payload[:80]!r})") from exc


def ask_cancel_at(address: str, job_id: str) -> None:
    """Ask the cluster at ``address`` to cancel ``job_id``; returns at once, the job stops shortly after."""
    rest_at(address, f"/jobs/{job_id}", method="PATCH")


def ask_cancel(settings: Settings, job_id: str) -> None:
    ask_cancel_at(str(settings.flink_rest), job_id)


def job_name_in_args(args: Sequence[str]) -> str | None:
    """A job script's name as its arguments give it (``--job-name N`` or ``--config`` JSON's ``job_name``)."""
    for flag, value in itertools.pairwise(args):
        if flag == "--job-name":
            return value
        if flag == "--config":
            with contextlib.suppress(ValueError, AttributeError):
                return json.loads(value).get("job_name")
    return None


def cancel_unreported(address: str, name: str | None, since_ms: int, log=None) -> str:
    """Cancel the running jobs called ``name`` that the cluster at ``address`` started since ``since_ms``: a
    submission that failed (timed out, or was stopped) may still have handed its job over, and its caller
    never got the id. What was done, in words for the caller's error."""
    if name is None:
        return "a job it may have submitted was not looked for (the request names none)"
    try:
        jobs = rest_at(address, "/jobs/overview").get("jobs", [])
        found = [j["jid"] for j in jobs if j.get("name") == name and j.get("start-time", 0) >= since_ms - 5000
                 and j.get("state") not in ENDED_STATES]
        for job_id in found:
            ask_cancel_at(address, job_id)
            if log:
                log(job_id, name)
    except FlinkJobError as exc:
        return f"the cluster could not be asked for a job {name!r} it may have submitted: {exc}"
    return f"cancelled the job {name!r} it had submitted" if found else f"no job {name!r} was submitted"


def list_jobs(settings: Settings) -> list[JobInfo]:
    jobs = rest(settings, "/jobs/overview").get("jobs", [])
    return [JobInfo(j["jid"], j["name"], j["state"], j.get("start-time", 0)) for j in jobs]


def job_state(settings: Settings, job_id: str) -> str:
    return rest(settings, f"/jobs/{job_id}")["state"]


def job_failures(settings: Settings, job_id: str) -> list[str]:
    """The job's failovers as Flink's REST API reports them, one line each ("Exception: first line")."""
    history = rest(settings, f"/jobs/{job_id}/exceptions").get("exceptionHistory", {}).get("entries", [])
    return [e.get("exceptionName", "?") + ": " + (e.get("stacktrace", "").splitlines() or [""])[0][:300]
            for e in history]


def wait_for_state(settings: Settings, job_id: str, states: set[str], timeout_s: float = 60.0) -> str:
    deadline = time.monotonic() + timeout_s
    state = "UNKNOWN"
    while time.monotonic() < deadline:
        state = job_state(settings, job_id)
        if state in states:
            return state
        if state in ENDED_STATES - states:
            break
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id} is {state}, expected one of {sorted(states)}")


def wait_running(settings: Settings, job_id: str, timeout_s: float = 60.0) -> None:
    """Wait until the job and all its tasks run (sources are then consuming)."""
    wait_for_state(settings, job_id, {"RUNNING"}, timeout_s)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        vertices = rest(settings, f"/jobs/{job_id}").get("vertices", [])
        if vertices and all(v.get("status") == "RUNNING" for v in vertices):
            return
        time.sleep(0.5)
    raise FlinkJobError(f"job {job_id}: tasks did not all reach RUNNING within {timeout_s:.0f}s")


def cancel_job(settings: Settings, job_id: str, savepoint_dir: str | None = None,
               timeout_s: float = 120.0) -> str | None:
    """Cancel (or stop with a savepoint when ``savepoint_dir`` is given). Returns the savepoint path."""
    if savepoint_dir is None:
        ask_cancel(settings, job_id)
        wait_for_state(settings, job_id, {"CANCELED"}, timeout_s)
        return None
    trigger = rest(settings, f"/jobs/{job_id}/stop", method="POST",
                   body={"targetDirectory": savepoint_dir, "drain": False})
    return _await_savepoint(settings, job_id, trigger["request-id"], timeout_s)


def cancel_jobs(settings: Settings, job_ids: Sequence[str], *, quietly: bool = False,
                timeout_s: float = 120.0) -> list[str]:
    """Cancel several jobs at once: every cancel is asked for first, then each is awaited (their tasks
    stop side by side, ~3 s here, instead of one after the other). A job that cannot be cancelled (gone
    already, the cluster away) does not stop the others: its failure is raised once all were tried, or,
    ``quietly``, returned with the others' ("<job id>: <error>")."""
    failures: list[tuple[str, StreamscoreError]] = []
    asked = []
    for job_id in job_ids:
        try:
            ask_cancel(settings, job_id)
            asked.append(job_id)
        except StreamscoreError as exc:
            failures.append((job_id, exc))
    for job_id in asked:
        try:
            wait_for_state(settings, job_id, {"CANCELED"}, timeout_s)
        except StreamscoreError as exc:
            failures.append((job_id, exc))
    if failures and not quietly:
        raise failures[0][1]
    return [f"{job_id}: {exc}" for job_id, exc in failures]


def _await_savepoint(settings: Settings, job_id: str, request_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = rest(settings, f"/jobs/{job_id}/savepoints/{request_id}")
        if status.get("status", {}).get("id") == "COMPLETED":
            operation = status.get("operation", {})
            if "failure-cause" in operation:
                raise FlinkJobError(f"savepoint of {job_id} failed: {operation['failure-cause'].get('class')}")
            return operation["location"]
        time.sleep(0.5)
    raise FlinkJobError(f"savepoint of {job_id} did not complete within {timeout_s:.0f}s")
