"""The load profile's pure parts: thread CPU from /proc ticks, py-spy's folded stacks, the arithmetic, the
reasons a repetition does not count, the summary."""

from __future__ import annotations

import os
import threading
import time

import pytest

from benchmarks.load_profile import (
    ProfileError,
    flink_row,
    frame_name,
    py_spy_top,
    summary,
    thread_cores,
    thread_ticks,
    us_per_event,
    void_reason,
)


def test_thread_cores_folds_digits_and_counts_only_the_window():
    hz = os.sysconf("SC_CLK_TCK")
    before = {"1": ("GC Thread#0", 1 * hz), "2": ("GC Thread#1", 0), "3": ("Source: x", 10 * hz)}
    after = {"1": ("GC Thread#0", 1.5 * hz), "2": ("GC Thread#1", 0.5 * hz), "3": ("Source: x", 15 * hz),
             "4": ("C2 CompilerThread0", 0.2 * hz)}  # born in the window: all its ticks count
    cores = thread_cores(before, after, seconds=10.0)
    assert cores == {"Source: x": 0.5, "GC Thread#N": 0.1, "CN CompilerThreadN": 0.02}


def test_thread_ticks_see_a_busy_thread_work():
    spun, read = threading.Event(), threading.Event()

    def spin():
        end = time.thread_time() + 0.3
        while time.thread_time() < end:
            pass
        spun.set()
        read.wait(10)  # stay listed until the second reading

    worker = threading.Thread(target=spin)
    before = thread_ticks(os.getpid())  # before the spinner starts (a new thread counts from 0): read after its
    worker.start()  # start, a busy machine once let it spin 0.2 s first (9 ticks seen, clean-clone run of d0414a4)
    spun.wait(10)
    after = thread_ticks(os.getpid())
    read.set()
    worker.join()
    grown = {tid: after[tid][1] - before.get(tid, ("", 0))[1] for tid in after}
    assert max(grown.values()) >= 0.1 * os.sysconf("SC_CLK_TCK")  # the spinner's 0.3 s of CPU, in its own ticks


def test_frame_name_drops_the_line_only():
    assert frame_name("BatchScorer.score (jobs/batch_scorer.py:76)") == "BatchScorer.score (jobs/batch_scorer.py)"
    assert frame_name("<lambda> (<string>:1)") == "<lambda> (<string>)"
    assert frame_name("odd frame") == "odd frame"


def test_py_spy_top_counts_a_function_once_per_sample(tmp_path):
    folded = tmp_path / "w.folded"
    folded.write_text("run (a.py:1);score (b.py:5);score (b.py:9) 3\n"
                      "run (a.py:1);to_pandas (c.py:2) 1\n")
    assert py_spy_top(folded) == {"run (a.py)": 1.0, "score (b.py)": 0.75, "to_pandas (c.py)": 0.25}


def test_us_per_event_divides_each_role_by_the_events():
    assert us_per_event({"kafka": 0.5, "flink-tm": 1.0}, 100_000) == {"kafka": 5.0, "flink-tm": 10.0}


def test_void_reason_names_what_went_wrong():
    ok = {"lost": 0, "duplicated": 0, "sender_max_lag_ms": 20.0}
    assert void_reason(ok) is None
    assert void_reason({**ok, "lost": 2}) == "2 lost, 0 duplicated"
    assert "behind its schedule" in void_reason({**ok, "sender_max_lag_ms": 900.0})
    assert void_reason({**ok, "error": "ProfileError: stack down"}) == "ProfileError: stack down"


def test_summary_leaves_void_runs_out():
    rows = [{"void": None, "us_per_event": {"flink-tm": 5.0, "kafka": 2.0}},
            {"void": None, "us_per_event": {"flink-tm": 7.0, "kafka": 4.0}},
            {"void": None, "us_per_event": {"flink-tm": 6.0, "kafka": 3.0}},
            {"void": "1 lost, 0 duplicated", "us_per_event": {"flink-tm": 90.0, "kafka": 90.0}}]
    assert summary(rows) == {"flink-tm": "6.00 (5.00-7.00)", "kafka": "3.00 (2.00-4.00)",
                             "total": "9.00 (7.00-11.00)"}


def test_summary_of_only_void_runs_is_empty():
    assert summary([{"void": "stack down"}]) == {}


def test_flink_row_refuses_an_unknown_or_non_flink_system():
    assert flink_row("wire-jvm-alo").exactly_once is False
    for key in ("no-such-row", "handwritten-confluent"):
        with pytest.raises(ProfileError, match="unknown system"):
            flink_row(key)
