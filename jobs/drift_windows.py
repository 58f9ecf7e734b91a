"""The drift sidecar's stateful step: one key, so one judgement per window whatever the parallelism.

Partial counts arrive from every counting subtask. Feature windows: merged per window in Flink state
and judged when the watermark passes their end plus the allowed lateness (time windows) or when they
hold the configured number of events (count windows). Labelled windows: merged per bucket of label
time and cut over whole buckets in label-time order (``jobs.label_windows``). Each judgement applies
hysteresis, cooldown and episodes (state kept in Flink) and emits Avro alerts and triggers.
"""

from __future__ import annotations

import numpy as np
from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.datastream.time_domain import TimeDomain

from jobs.drift_config import DriftJobConfig
from jobs.label_windows import LabelWindow, LabelWindowCutter

_BYTES = Types.PRIMITIVE_ARRAY(Types.BYTE())
LONG_MIN = -(2**63)  # Flink's watermark before the first one


class DriftWindows(KeyedProcessFunction):
    """Merges partials per window in Flink state; judges closed windows; emits alerts and triggers.

    Its input rows: (window_start, n, counts, labelled); a labelled row's window_start is its bucket."""

    def __init__(self, config: DriftJobConfig):
        self.config = config

    def open(self, runtime_context: RuntimeContext):
        from jobs.drift_logic import SidecarLogic
        from jobs.job_metrics import SidecarMetrics

        self.logic = SidecarLogic.for_model(self.config)
        self.metrics = SidecarMetrics(runtime_context.get_metrics_group(), self.logic.model_name,
                                      self.logic.model_version, self.logic.counter.contract.names)
        self.cutter = LabelWindowCutter(self.config.label_bucket_ms, self.config.label_window_events)
        self.label_window = runtime_context.get_state(ValueStateDescriptor("label_window", _BYTES))
        self.label_buckets = runtime_context.get_map_state(MapStateDescriptor("label_buckets", Types.LONG(), _BYTES))
        # the last label time of the buckets added so far: a label at or before it is late, also right after a
        # restore (when the watermark starts over) or an idle flush (when it has not reached the buckets)
        self.labels_added_through = runtime_context.get_state(
            ValueStateDescriptor("labels_added_through", Types.LONG()))
        # the watermark when the pending idle check was set (None: no check pending)
        self.idle_check_watermark = runtime_context.get_state(
            ValueStateDescriptor("label_idle_check_watermark", Types.LONG()))
        self.labelled_state = runtime_context.get_state(ValueStateDescriptor("labelled_episodes", _BYTES))
        self.windows = runtime_context.get_map_state(MapStateDescriptor("windows", Types.LONG(), _BYTES))
        self.detector_state = runtime_context.get_state(ValueStateDescriptor("detector", _BYTES))

    def process_element(self, value, ctx: KeyedProcessFunction.Context):
        window_start, blob = value[0], value[2]
        if value[3]:
            yield from self._label_partial(window_start, value[1], blob, ctx.timer_service())
            return
        if self.config.window_kind == "time" and self._judged(window_start, ctx):
            self.metrics.late_partials.inc(1)  # past its allowed lateness: re-opening it would judge it twice
            return
        current = self.windows.get(window_start)
        merged = self.logic.merge(current, blob)
        if self.config.window_kind == "count":
            if self.logic.events_in(merged) >= self.config.window_events:
                self.windows.remove(window_start)
                yield from self._judge(window_start, merged)
                return
        elif current is None:
            ctx.timer_service().register_event_time_timer(self._closes(window_start))
        self.windows.put(window_start, merged)

    def _closes(self, window_start: int) -> int:
        """The event time the window is judged at: its end plus its allowed lateness (its timer)."""
        return window_start + self.config.window_ms + self.config.allowed_lateness_ms - 1

    def _judged(self, window_start: int, ctx) -> bool:
        """Whether the watermark passed the window's timer (it was judged already)."""
        return self._closes(window_start) <= ctx.timer_service().current_watermark()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext):
        if ctx.time_domain() == TimeDomain.PROCESSING_TIME:
            yield from self._idle_check(ctx.timer_service())
            return
        if self.config.window_kind == "time":  # count windows have no timer (and all live under key 0)
            window_start = timestamp + 1 - self.config.window_ms - self.config.allowed_lateness_ms
            merged = self.windows.get(window_start)
            if merged is not None:
                self.windows.remove(window_start)
                yield from self._judge(window_start, merged)
        yield from self._add_bucket(self.cutter.bucket_closing_at(timestamp))

    def _judge(self, window_start: int, counts: bytes):
        state = self.detector_state.value()
        outputs, new_state = self.logic.judge(window_start, counts, state)
        self.detector_state.update(new_state)
        self.metrics.record_window(self.logic.last_verdict)
        for sink, key, payload in outputs:
            yield Row(sink, key, payload)

    # -- labelled windows over buckets of label time --------------------------------------------------

    def _label_partial(self, bucket: int, size: int, blob: bytes, timers):
        added_through = max(timers.current_watermark(), self.labels_added_through.value() or LONG_MIN)
        if self.cutter.is_closed(bucket, added_through):
            self.metrics.late_labels.inc(size)  # its bucket was added already: it joins the open window
            yield from self._add_labels(blob, bucket)
            return
        current = self.label_buckets.get(bucket)
        if current is None:
            timers.register_event_time_timer(self.cutter.closes_at(bucket))
        self.label_buckets.put(bucket, self.logic.merge_labelled(current, blob))
        if self.idle_check_watermark.value() is None:
            self._schedule_idle_check(timers)

    def _schedule_idle_check(self, timers) -> None:
        self.idle_check_watermark.update(timers.current_watermark())
        timers.register_processing_time_timer(timers.current_processing_time() + self.config.label_flush_ms)

    def _idle_check(self, timers):
        """The watermark has not moved since the check was set, label_flush_ms ago (every source idle: the
        stream paused): the open buckets are added as they are, in label-time order, and the windows they
        complete are judged. Otherwise, while buckets wait, check again later."""
        stood_still = self.idle_check_watermark.value() == timers.current_watermark()
        self.idle_check_watermark.clear()
        buckets = sorted(self.label_buckets.keys())
        if not buckets:
            return
        if not stood_still:
            self._schedule_idle_check(timers)
            return
        self.metrics.label_flushes.inc(1)
        for bucket in buckets:
            yield from self._add_bucket(bucket)  # its event-time timer then finds nothing

    def _add_bucket(self, bucket: int):
        counts = self.label_buckets.get(bucket)
        if counts is None:
            return
        self.label_buckets.remove(bucket)
        self.labels_added_through.update(max(self.labels_added_through.value() or LONG_MIN,
                                             self.cutter.closes_at(bucket)))
        yield from self._add_labels(counts, bucket)

    def _add_labels(self, blob: bytes, bucket: int):
        open_window = LabelWindow.from_bytes(self.label_window.value())
        window, closed = self.cutter.add(open_window, np.frombuffer(blob, dtype=np.int64), bucket)
        self.label_window.update(window.to_bytes())
        if closed is None:
            return
        outputs, new_state = self.logic.judge_labelled(closed, self.labelled_state.value())
        self.labelled_state.update(new_state)
        self.metrics.record_labelled(self.logic.last_labelled)
        for sink, key, payload in outputs:
            yield Row(sink, key, payload)
