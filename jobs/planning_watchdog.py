"""The warm submitter's bound on one planning (``jobs.submitter_daemon``).

Without it a planning that never returned held every later submission of the stack home in the daemon's
queue until each client's wait ran out. Past the limit the gateway JVM is killed: a call stuck in it then
fails, the caller is answered with an error, and the daemon leaves after answering (its queued clients
start a fresh one). A planning stuck in Python still ``grace_s`` later ends the daemon at once. A job the
JVM may have handed to the cluster before it was killed is looked for by its name and cancelled, so no
job is left running that its caller never heard of.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from jobs.flink_cluster import cancel_unreported, job_name_in_args
from jobs.submitter_client import SubmitRequest

PLAN_LIMIT_S = 150.0  # below the client's 180 s wait (jobs.flink_cluster): a stuck planning gets an answer
REGISTER_WAIT_S = 2.0  # for a job submitted just before the kill to show in the cluster's job list


def _log(message: str) -> None:
    print(message, file=sys.__stdout__, flush=True)  # not the job's redirected output: the daemon's log


class PlanningWatchdog:
    """A context manager around one planning: past ``limit_s``, ``planner.stop_jvm()``; still not
    returned ``grace_s`` later, ``leave()`` (the daemon's end)."""

    def __init__(self, planner, limit_s: float, grace_s: float = 15.0, leave=None):
        self.planner, self.limit_s, self.grace_s = planner, limit_s, grace_s
        self.leave = leave or (lambda: os._exit(3))
        self.expired = False
        self._returned = threading.Event()
        self._timer = threading.Timer(limit_s, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> PlanningWatchdog:
        self._timer.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._returned.set()
        self._timer.cancel()

    def _expire(self) -> None:
        if self._returned.is_set():  # it returned just as the timer fired: a healthy JVM stays
            return
        self.expired = True
        _log(f"planning took longer than {self.limit_s:.0f} s: stopping the gateway JVM")
        self.planner.stop_jvm()
        if not self._returned.wait(self.grace_s):
            _log(f"planning still stuck {self.grace_s:.0f} s later: the warm submitter leaves")
            self.leave()


def requested_job_name(request: SubmitRequest) -> str | None:
    """The job's name as the request gives it (``--job-name N`` or ``--config`` JSON's ``job_name``)."""
    return job_name_in_args(request.args)


def cancel_unreported_job(request: SubmitRequest, since_ms: int) -> str:
    """Cancel the request's job if the cluster got it after ``since_ms`` (its caller never got its id);
    what was done, in words for the caller's error."""
    name = requested_job_name(request)
    if name is not None:  # nothing to look for otherwise: no wait
        time.sleep(REGISTER_WAIT_S)
    return cancel_unreported(request.rest, name, since_ms,
                             log=lambda job_id, name: _log(f"cancelled {job_id} ({name}): submitted by a planning "
                                                           f"that was stopped"))
