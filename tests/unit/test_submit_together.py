"""Several jobs submitted side by side, and cancelled side by side: order, concurrency, clean-up on failure.

The Flink client and REST calls are replaced by fakes here; the integration tests submit real jobs
through ``submit_together`` (the drift, labels, retrain, sensor, scale-out and cache tests, and every
fault run)."""

from __future__ import annotations

import threading

import pytest

import jobs.flink_cluster as flink_cluster
import jobs.submit as submit
from jobs.drift_config import DriftJobConfig
from jobs.flink_cluster import FlinkJobError, cancel_jobs
from jobs.scoring_config import ScoringJobConfig
from streamscore.foundation.errors import ConfigError


class _Cluster:
    """What the fakes did: submissions (by job name), jobs awaited, jobs cancelled."""

    def __init__(self, parties: int = 1):
        self.barrier = threading.Barrier(parties, timeout=5)
        self.submitted: list[str] = []
        self.awaited: list[str] = []
        self.cancelled: list[str] = []
        self.refuse: set[str] = set()
        self.never_runs: set[str] = set()
        self.stuck: set[str] = set()  # jobs whose cancel fails
        self.quietly: list[bool] = []


@pytest.fixture
def cluster(monkeypatch):
    made = {}

    def install(parties: int = 1) -> _Cluster:
        fake = made["fake"] = _Cluster(parties)

        def submit_any(settings, config, wait=True):
            assert wait is False  # submit_together waits itself, once all are in
            fake.barrier.wait()  # every submission must be under way at once to pass this
            if config.job_name in fake.refuse:
                raise ConfigError(f"{config.job_name}: refused")
            fake.submitted.append(config.job_name)
            return f"id-{config.job_name}"

        def wait_running(settings, job_id, timeout_s=60.0):
            fake.awaited.append(job_id)
            if job_id.removeprefix("id-") in fake.never_runs:
                raise FlinkJobError(f"job {job_id} is FAILED, expected one of ['RUNNING']")

        monkeypatch.setattr(submit, "submit_scoring", submit_any)
        monkeypatch.setattr(submit, "submit_drift", submit_any)
        monkeypatch.setattr(submit, "wait_running", wait_running)
        def cancel_jobs(settings, ids, quietly=False):
            fake.quietly.append(quietly)
            fake.cancelled.extend(ids)
            return [f"{i}: HTTP 503" for i in ids if i.removeprefix("id-") in fake.stuck]

        monkeypatch.setattr(submit, "cancel_jobs", cancel_jobs)
        return fake

    return install


def _scoring(name: str) -> ScoringJobConfig:
    return ScoringJobConfig(bootstrap="127.0.0.1:9092", job_name=name)


def _drift(name: str) -> DriftJobConfig:
    return DriftJobConfig(bootstrap="127.0.0.1:9092", job_name=name)


def test_jobs_are_submitted_at_once_and_returned_in_order(cluster):
    fake = cluster(parties=3)
    ids = submit.submit_together(None, [_scoring("s"), _drift("d"), _scoring("t")])
    assert ids == ["id-s", "id-d", "id-t"]
    assert sorted(fake.awaited) == sorted(ids) and not fake.cancelled


def test_a_refused_submission_cancels_those_that_went_through_and_raises_its_own_error(cluster):
    fake = cluster(parties=2)
    fake.refuse = {"d"}
    with pytest.raises(ConfigError, match="d: refused"):
        submit.submit_together(None, [_scoring("s"), _drift("d")])
    assert fake.cancelled == ["id-s"] and fake.quietly == [True] and not fake.awaited


def test_a_job_that_never_runs_cancels_every_job_of_the_submission(cluster):
    fake = cluster(parties=2)
    fake.never_runs = {"s"}
    with pytest.raises(FlinkJobError, match="id-s is FAILED"):
        submit.submit_together(None, [_scoring("s"), _drift("d")])
    assert sorted(fake.cancelled) == ["id-d", "id-s"]


def test_a_job_that_could_not_be_cancelled_is_named_on_the_error(cluster):
    fake = cluster(parties=2)
    fake.never_runs, fake.stuck = {"d"}, {"s"}
    with pytest.raises(FlinkJobError, match="id-d is FAILED") as raised:
        submit.submit_together(None, [_scoring("s"), _drift("d")])
    assert raised.value.__notes__ == ["not cancelled, cancel by hand: id-s: HTTP 503"]


def test_an_interrupted_wait_still_cancels_what_went_through(cluster, monkeypatch):
    fake = cluster(parties=2)

    def interrupted(settings, job_id, timeout_s=60.0):
        raise KeyboardInterrupt

    monkeypatch.setattr(submit, "wait_running", interrupted)
    with pytest.raises(KeyboardInterrupt):
        submit.submit_together(None, [_scoring("s"), _drift("d")])
    assert sorted(fake.cancelled) == ["id-d", "id-s"]


def test_two_jobs_of_one_name_are_refused_before_any_is_submitted(cluster):
    fake = cluster(parties=1)
    with pytest.raises(FlinkJobError, match="need names of their own: s given twice"):
        submit.submit_together(None, [_scoring("s"), _drift("s")])
    assert not fake.submitted


def test_without_wait_nothing_is_awaited(cluster):
    fake = cluster(parties=2)
    assert submit.submit_together(None, [_scoring("s"), _drift("d")], wait=False) == ["id-s", "id-d"]
    assert not fake.awaited


class _Rest:
    """Flink's REST API as cancel_jobs sees it: PATCH asks, the state poll answers."""

    def __init__(self, monkeypatch, gone: set[str] = frozenset(), stuck: set[str] = frozenset()):
        self.calls: list[tuple[str, str]] = []
        self.gone, self.stuck = gone, stuck
        monkeypatch.setattr(flink_cluster, "ask_cancel", self.ask_cancel)
        monkeypatch.setattr(flink_cluster, "wait_for_state", self.wait_for_state)

    def ask_cancel(self, settings, job_id):
        self.calls.append(("ask", job_id))
        if job_id in self.gone:
            raise FlinkJobError(f"Flink REST PATCH /jobs/{job_id}: HTTP 404")

    def wait_for_state(self, settings, job_id, states, timeout_s=60.0):
        self.calls.append(("await", job_id))
        if job_id in self.stuck:
            raise FlinkJobError(f"job {job_id} is RUNNING, expected one of ['CANCELED']")
        return "CANCELED"


def test_every_cancel_is_asked_for_before_any_is_awaited(monkeypatch):
    api = _Rest(monkeypatch)
    cancel_jobs(None, ["a", "b", "c"])
    assert api.calls == [("ask", "a"), ("ask", "b"), ("ask", "c"), ("await", "a"), ("await", "b"), ("await", "c")]


def test_a_failed_cancel_is_raised_after_the_others_were_tried_unless_quietly(monkeypatch):
    api = _Rest(monkeypatch, gone={"a"}, stuck={"b"})
    with pytest.raises(FlinkJobError, match="HTTP 404"):
        cancel_jobs(None, ["a", "b", "c"])
    assert api.calls == [("ask", "a"), ("ask", "b"), ("ask", "c"), ("await", "b"), ("await", "c")]
    failures = cancel_jobs(None, ["a", "b", "c"], quietly=True)  # the same failures, returned, none raised
    assert [line.split(":")[0] for line in failures] == ["a", "b"]


def test_the_decoder_jar_is_built_once_when_jobs_submitted_together_ask_for_it(tmp_path, monkeypatch):
    """Two scoring jobs submitted together on a fresh machine both need jobs/udf's jar: one builds it, the
    other waits and takes it (they used to wipe each other's build folder)."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from jobs import jars

    builds, inside = [], []

    def build(mvn, target):
        inside.append(1)
        assert len(inside) == 1, "two builds at once"
        time.sleep(0.3)
        target.write_bytes(b"jar")
        builds.append(target)
        inside.pop()

    monkeypatch.setattr(jars.shutil, "which", lambda name: "/usr/bin/mvn")
    monkeypatch.setattr(jars, "_build_udf", build)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda _: jars.udf_jar(tmp_path), range(3)))
    assert len(builds) == 1 and got == [builds[0]] * 3
