"""The load profile's pure parts: thread CPU from /proc ticks, py-spy's folded stacks, the summary."""

from __future__ import annotations

import os

import pytest

from benchmarks.load_profile import ProfileError, flink_row, py_spy_top, summary, thread_cores, thread_ticks


def test_thread_cores_folds_digits_and_counts_only_the_window():
    before = {"1": ("GC Thread#0", 100), "2": ("GC Thread#1", 50), "3": ("Source: x", 1_000)}
    after = {"1": ("GC Thread#0", 150), "2": ("GC Thread#1", 100), "3": ("Source: x", 1_500),
             "4": ("C2 CompilerThread0", 20)}  # born in the window: all its ticks count
    cores = thread_cores(before, after, seconds=10.0)
    assert cores == {"Source: x": 0.5, "GC Thread#N": 0.1, "CN CompilerThreadN": 0.02}


def test_thread_ticks_reads_this_process():
    ticks = thread_ticks(os.getpid())
    assert str(os.getpid()) in ticks and all(used >= 0 for _, used in ticks.values())


def test_py_spy_top_counts_a_function_once_per_sample(tmp_path):
    folded = tmp_path / "w.folded"
    folded.write_text("run (a.py:1);score (b.py:5);score (b.py:9) 3\n"
                      "run (a.py:1);to_pandas (c.py:2) 1\n")
    top = py_spy_top(folded)
    assert top == {"run (a.py)": 1.0, "score (b.py)": 0.75, "to_pandas (c.py)": 0.25}


def test_summary_leaves_void_runs_out():
    rows = [{"void": False, "us_per_event": {"flink-tm": 5.0, "kafka": 2.0}},
            {"void": False, "us_per_event": {"flink-tm": 7.0, "kafka": 4.0}},
            {"void": False, "us_per_event": {"flink-tm": 6.0, "kafka": 3.0}},
            {"void": True, "us_per_event": {"flink-tm": 90.0, "kafka": 90.0}}]
    assert summary(rows) == {"flink-tm": "6.00 (5.00-7.00)", "kafka": "3.00 (2.00-4.00)",
                             "total": "9.00 (7.00-11.00)"}


def test_summary_of_only_void_runs_is_empty():
    assert summary([{"void": True, "us_per_event": {"kafka": 1.0}}]) == {}


def test_flink_row_refuses_an_unknown_or_non_flink_system():
    assert flink_row("wire-jvm-alo").exactly_once is False
    for key in ("no-such-row", "handwritten-confluent"):
        with pytest.raises(ProfileError, match="unknown system"):
            flink_row(key)
