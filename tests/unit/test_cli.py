"""Unit tests of the ``streamscore`` command: usage errors, one-line failures, offline subcommands.

Everything runs in-process through ``streamscore.cli.main`` except the two ``produce --input``
cases: today they block inside librdkafka (not interruptible from Python) for 30 s before failing,
so they run as subprocesses with a deadline; both are started together so they cost one deadline.
No test here needs Kafka, Flink or Redis: every address points at a closed local port.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.demo_data import generate_events
from streamscore.cli.main import EXIT_ERROR, EXIT_USAGE, main
from streamscore.foundation.errors import InputError

REPO = Path(__file__).resolve().parents[2]
CLOSED = "127.0.0.1:1"  # nothing listens on port 1
# A guard against a run that hangs on Kafka, not a timing goal: the tests below fail on what the
# run says (an error naming the file, not Kafka). A Python start on a busy 2-core machine can take
# several seconds, and 4 s once failed while a full integration run shared the machine.
PRODUCE_DEADLINE_S = 20.0


def offline_env(home: Path) -> dict[str, str]:
    return {"STREAMSCORE_KAFKA_BOOTSTRAP": CLOSED, "STREAMSCORE_FLINK_REST": CLOSED,
            "STREAMSCORE_REDIS": CLOSED, "STREAMSCORE_HOME": str(home)}


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("STREAMSCORE_"):
            monkeypatch.delenv(name)
    for name, value in offline_env(tmp_path / "home").items():
        monkeypatch.setenv(name, value)


def run_cli(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` in-process: (exit code, stdout, stderr); argparse exits are turned into codes."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("streamscore: error: "), lines[0]
    assert "Traceback" not in err
    return lines[0]


# --- the two produce --input runs, started first so their deadline overlaps the other tests --------


@pytest.fixture(scope="module", autouse=True)
def produce_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("produce")
    missing = folder / "no-such-events.jsonl"
    bad_line = folder / "events.jsonl"
    event = generate_events(1, seed=1, id_prefix="cli-")[0]
    bad_line.write_text(json.dumps(event) + "\n\n{not json\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMSCORE_")}
    env.update(offline_env(folder / "home"))
    procs = {}
    for name, path in (("missing", missing), ("bad_line", bad_line)):
        argv = [sys.executable, "-m", "streamscore.cli.main", "produce", "--input", str(path), "--quiet"]
        procs[name] = (path, subprocess.Popen(argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    started = time.monotonic()
    yield procs, started
    for _, proc in procs.values():
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def finish(produce_runs, name: str) -> tuple[Path, int, str, str]:
    procs, started = produce_runs
    path, proc = procs[name]
    try:
        out, err = proc.communicate(timeout=max(0.1, started + PRODUCE_DEADLINE_S - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"'produce --input {path.name}' still runs after {PRODUCE_DEADLINE_S}s "
                    f"(it contacts Kafka before reading the file)")
    return path, proc.returncode, out, err


# --- usage errors: exit 2, one line, no traceback ----------------------------------------------------


@pytest.mark.parametrize("argv, fragment", [
    ([], "the following arguments are required: command"),
    (["--bogus", "models", "list"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["stack"], "the following arguments are required: action"),
    (["stack", "explode"], "invalid choice: 'explode'"),
    (["models", "frobnicate"], "invalid choice: 'frobnicate'"),
    (["consume", "events", "--max", "abc"], "argument --max: invalid int value: 'abc'"),
    (["consume"], "the following arguments are required: topic"),
    (["produce", "--count", "ten"], "argument --count: invalid int value: 'ten'"),
    (["submit", "scoring", "--startup-mode", "soon"], "argument --startup-mode: invalid choice: 'soon'"),
    (["submit", "ranking"], "invalid choice: 'ranking'"),
    (["models", "list", "--verbose"], "unrecognized arguments: --verbose"),
    (["models", "promote", "fraud:1.1.0", "--activation-delay-ms", "0"], "--activation-delay-ms: must be > 0 ms"),
    (["retrain", "--activation-delay-ms", "soon"], "--activation-delay-ms: not a number of milliseconds: 'soon'"),
])
def test_usage_errors_exit_2_with_one_line(capsys, argv, fragment):
    code, out, err = run_cli(capsys, argv)
    assert code == EXIT_USAGE == 2
    line = assert_one_error_line(err)
    assert fragment in line
    assert line.endswith("(see --help)")
    assert out == ""


def test_help_goes_to_stdout_and_exits_0(capsys):
    code, out, err = run_cli(capsys, ["--help"])
    assert code == 0 and err == ""
    for command in ("stack", "topics", "consume", "produce", "demo", "run", "submit", "jobs", "models"):
        assert command in out


@pytest.mark.parametrize("argv,own,others", [
    (["models", "--help"], ["promote", "optimize", "shadow-attach"], ["--int8", "--percent", "--heavy", "--onnx"]),
    (["models", "optimize", "--help"], ["--int8", "--max-auc-drop"], ["--percent", "--heavy", "--onnx"]),
    (["models", "canary", "--help"], ["--percent", "--activation-delay-ms"], ["--int8", "--heavy"]),
    (["submit", "scoring", "--help"], ["--max-batch-size", "--batches-per-bundle", "--cache"],
     ["--window-events", "--window-kind"]),
    (["submit", "drift", "--help"], ["--window-events", "--state-backend", "--label-wait-ms"],
     ["--max-batch-size", "--cache"]),
])
def test_each_subcommand_lists_only_its_own_flags(capsys, argv, own, others):
    code, out, _ = run_cli(capsys, argv)
    assert code == 0
    assert all(flag in out for flag in own), out
    assert not [flag for flag in others if flag in out], out


def test_the_cli_does_not_load_the_benchmarks_until_bench_runs():
    probe = ("import sys; from streamscore.cli.main import build_parser; build_parser().parse_args(['models', 'list']);"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'benchmarks'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_failure_prints_one_line_and_keeps_its_cause(capsys, tmp_path):
    from schemas.json_lines import read_json_lines
    from streamscore.foundation.errors import InputError

    code, _, err = run_cli(capsys, ["produce", "--input", str(tmp_path / "missing.jsonl")])
    assert code == EXIT_ERROR and "missing.jsonl" in assert_one_error_line(err)
    with pytest.raises(InputError) as caught:
        read_json_lines(tmp_path / "missing.jsonl")
    assert isinstance(caught.value.__cause__, FileNotFoundError)


# --- errors the user causes after parsing: exit 1, one line --------------------------------------------


def test_consume_max_zero(capsys):
    code, out, err = run_cli(capsys, ["consume", "events", "--max", "0"])
    assert code == EXIT_ERROR == 1
    assert assert_one_error_line(err) == "streamscore: error: --max must be > 0"
    assert out == ""


def test_consume_negative_max(capsys):
    code, _, err = run_cli(capsys, ["consume", "scored", "--max", "-5"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: --max must be > 0"


@pytest.mark.parametrize("argv", [["produce", "--count", "0"], ["produce", "--transaction-size", "0"],
                                  ["produce", "--rate", "-1"]])
def test_produce_bad_numbers_fail_before_kafka(capsys, argv):
    began = time.monotonic()
    code, _, err = run_cli(capsys, argv)
    assert code == 1
    line = assert_one_error_line(err)
    assert "--count and --transaction-size must be > 0 and --rate >= 0" in line
    assert time.monotonic() - began < 5


@pytest.mark.parametrize("flags", [["--label-flip", "1.5"], ["--label-delay-ms", "-1"], ["--drift-after", "-5"]])
def test_produce_bad_label_flags_fail_before_any_event_is_sent(capsys, flags):
    # Kafka is closed here: an error naming the flags, not Kafka's, shows nothing was sent first
    code, out, err = run_cli(capsys, ["produce", "--count", "10", "--labels", *flags])
    assert code == 1 and out == ""
    assert "--labels needs --label-delay-ms >= 0, --label-flip in [0, 1] and --drift-after >= 0" in \
        assert_one_error_line(err)


@pytest.mark.parametrize(("flags", "message"), [
    (["--labels-topic", "t"], "--labels-topic goes with --labels (with --labels-input, name the topic with --topic)"),
    (["--input", "events.jsonl", "--drift", "amount:scale=2"],
     "--drift changes the generated demo events, not events of --input")])
def test_produce_flags_that_would_be_ignored_are_refused(capsys, flags, message):
    code, out, err = run_cli(capsys, ["produce", "--count", "10", *flags])
    assert code == 1 and out == ""
    assert message in assert_one_error_line(err)


def test_a_file_goes_whole_or_not_at_all(monkeypatch):
    # the producer is replaced by a recorder (no Kafka in unit tests): with the file checked first, a bad
    # event in the third transaction's worth fails the run before the producer pulls a single record
    import connectors.kafka_transactions
    from streamscore.cli.produce import EventWire, ProduceLimits, produce_events

    pulled = []

    def record(settings, topic, items, plan):
        pulled.extend(items)
        return {"produced": len(pulled)}

    def encode(event):
        if not isinstance(event["amount"], float):
            raise InputError(f"{event['id']}: amount is not a number")
        return b"ok"

    monkeypatch.setattr(connectors.kafka_transactions, "produce_transactionally", record)
    wire = EventWire(encode, "id", None, 1)
    events = [{"id": f"e{i}", "amount": 1.0} for i in range(2500)]
    events[2100]["amount"] = "oops"
    with pytest.raises(InputError, match="e2100: amount is not a number"):
        produce_events(None, "t", events, ProduceLimits(transaction_size=1000, check_all_first=True), wire=wire)
    assert pulled == []
    with pytest.raises(InputError):  # a stream (the generator's) is sent as it comes: 2,100 pulled first
        produce_events(None, "t", iter(events), ProduceLimits(transaction_size=1000), wire=wire)
    assert len(pulled) == 2100


def test_drift_report_judges_whole_windows_and_says_what_it_left_out(capsys, tmp_path):
    events = generate_events(1500, seed=3, id_prefix="dr-")
    events[7]["amount"] = -5.0  # breaks the contract
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    code, out, err = run_cli(capsys, ["drift", "report", "--input", str(path), "--window", "600", "--json"])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]  # stdout stays JSON lines
    assert len({row["window"] for row in rows}) == 2  # 1,499 accepted events: two whole windows of 600
    notes = [line for line in err.splitlines() if line.startswith("#")]
    assert notes == ["# the last 299 event(s) fill no whole window of 600 and were not judged",
                     "# 1 event(s) broke the contract and were left out"]


@pytest.mark.parametrize("window, fragment", [("0", "--window must be >= 1, got 0"),
                                              ("2000", "--window 2000: ")])
def test_drift_report_refuses_a_window_it_cannot_fill(capsys, tmp_path, window, fragment):
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in generate_events(1500, seed=3)), encoding="utf-8")
    code, out, err = run_cli(capsys, ["drift", "report", "--input", str(path), "--window", window])
    assert code == 1 and out == ""
    assert fragment in assert_one_error_line(err)


@pytest.mark.parametrize("flag", [["--model", "sensor:1.0.0"], ["--count", "1000"], ["--rate", "100"]])
def test_overload_refuses_the_flags_it_would_ignore(capsys, flag):
    code, out, err = run_cli(capsys, ["chaos", "--overload", *flag])
    assert code == 1 and out == ""
    assert f"{flag[0]}: not for --overload (it scores fraud-wide:1.0.0" in assert_one_error_line(err)


@pytest.mark.parametrize("argv, message", [
    (["--soak", "--fault", "kill-taskmanager", "--count", "5"], "--fault, --count: not for --soak"),
    (["--soak", "--minutes", "0"], "--minutes must be > 0, got 0.0"),
    (["--fault", "kill-taskmanager", "--rate", "0"], "--rate must be > 0, got 0.0"),
    (["--fault", "kill-taskmanager", "--minutes", "5"], "--minutes: not for a fault run"),
    (["--soak", "--overload"], "--soak and --overload are two different runs"),
    ([], "chaos needs --fault KIND (repeatable), --soak or --overload"),
])
def test_chaos_refuses_flags_it_would_ignore_or_misread(capsys, argv, message):
    code, out, err = run_cli(capsys, ["chaos", *argv])
    assert code == 1 and out == ""
    assert message in assert_one_error_line(err)


def test_submit_with_batch_size_zero_fails_before_kafka(capsys):
    began = time.monotonic()
    code, out, err = run_cli(capsys, ["submit", "scoring", "--max-batch-size", "0"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: max_batch_size must be >= 1, got 0"
    assert out == ""
    assert time.monotonic() - began < 5


def test_submit_with_a_negative_bundle_fails_before_kafka(capsys):
    code, out, err = run_cli(capsys, ["submit", "scoring", "--batches-per-bundle", "-1"])
    assert code == 1 and out == ""
    assert assert_one_error_line(err).startswith("streamscore: error: batches_per_bundle must be >= 0")


def test_run_with_a_too_short_transaction_timeout(capsys):
    code, _, err = run_cli(capsys, ["run", "scoring", "--transaction-timeout-ms", "1000"])
    assert code == 1
    line = assert_one_error_line(err)
    assert "transaction_timeout_ms 1000 is too close" in line and "use at least 60000 ms" in line


def test_submit_at_least_once_skips_the_timeout_check_but_not_the_batch_check(capsys):
    code, _, err = run_cli(capsys, ["submit", "scoring", "--at-least-once", "--transaction-timeout-ms", "1000",
                                    "--max-delay-ms", "0"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: max_delay_ms must be >= 1, got 0"


def test_jobs_cancel_needs_an_id(capsys):
    code, _, err = run_cli(capsys, ["jobs", "cancel"])
    assert code == 1
    assert "jobs cancel needs a JOB_ID" in assert_one_error_line(err)


def test_bad_environment_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("STREAMSCORE_KAFKA_BOOTSTRAP", "no-port-here")
    code, out, err = run_cli(capsys, ["stack", "config"])
    assert code == 1 and out == ""
    assert assert_one_error_line(err) == (
        "streamscore: error: STREAMSCORE_KAFKA_BOOTSTRAP must be HOST:PORT, got 'no-port-here'")


# --- offline commands that succeed ----------------------------------------------------------------------


def test_models_list(capsys):
    code, out, err = run_cli(capsys, ["models", "list"])
    assert code == 0 and err == ""
    assert "fraud:1.0.0" in out.splitlines()


def test_models_show(capsys):
    code, out, err = run_cli(capsys, ["models", "show", "fraud:1.0.0"])
    assert code == 0 and err == ""
    card = json.loads(out)
    assert (card["name"], card["version"]) == ("fraud", "1.0.0")
    assert card["outputs"]["threshold"] == 0.2014
    assert len(card["features"]) == 25
    assert "drift_profile" not in card


def test_models_show_without_a_ref(capsys):
    code, _, err = run_cli(capsys, ["models", "show"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: models show needs NAME:VERSION"


@pytest.mark.parametrize("ref, fragment", [("fraud:9.9.9", "model fraud:9.9.9 not found"),
                                          ("fraud:one", "is not a semantic version"),
                                          ("nosuch", "no model named 'nosuch'")])
def test_models_show_unknown(capsys, ref, fragment):
    code, out, err = run_cli(capsys, ["models", "show", ref])
    assert code == 1 and out == ""
    assert fragment in assert_one_error_line(err)


def test_stack_config(capsys, tmp_path):
    code, out, err = run_cli(capsys, ["stack", "config"])
    assert code == 0 and err == ""
    described = json.loads(out)
    # describe() lists the dataclass fields: the bootstrap address is the "kafka" field
    # (Settings.kafka_bootstrap is a property and is not repeated).
    assert described["kafka"] == CLOSED
    assert described["jobs_kafka_bootstrap"] == CLOSED
    assert described["flink_rest"] == CLOSED
    assert described["redis"] == CLOSED
    assert described["kafka_mode"] == "local"
    assert described["home"] == str((tmp_path / "home").resolve())
    assert described["transaction_max_timeout_ms"] == "900000"
    assert "topics" not in described
    assert all(isinstance(v, str) for v in described.values())


# --- produce --input ---------------------------------------------------------------------------------


def test_produce_missing_input_file_fails_fast_naming_the_file(produce_runs):
    path, code, out, err = finish(produce_runs, "missing")
    assert code == 1
    line = assert_one_error_line(err)
    assert str(path) in line
    assert out == ""


def test_produce_malformed_input_line_fails_naming_file_and_line(produce_runs):
    path, code, out, err = finish(produce_runs, "bad_line")
    assert code == 1
    line = assert_one_error_line(err)
    assert f"{path}:3" in line
    assert "produced" not in out


def test_a_drift_sidecar_at_parallelism_0_is_refused_in_one_line(capsys):
    code, _, err = run_cli(capsys, ["submit", "drift", "--parallelism", "0"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: parallelism must be >= 1, got 0"


def test_the_drift_sidecars_state_backend_comes_from_its_flag():
    from streamscore.cli.jobs import drift_config
    from streamscore.cli.main import build_parser
    from streamscore.foundation.config import load_settings

    settings, parser = load_settings(), build_parser()
    chosen = parser.parse_args(["submit", "drift", "--state-backend", "hashmap"])
    assert drift_config(settings, chosen).state_backend == "hashmap"
    assert drift_config(settings, parser.parse_args(["submit", "drift"])).state_backend == "rocksdb"


def test_the_label_joins_wait_comes_from_its_flag_and_is_refused_below_1(capsys):
    from streamscore.cli.jobs import drift_config
    from streamscore.cli.main import build_parser
    from streamscore.foundation.config import load_settings

    settings, parser = load_settings(), build_parser()
    chosen = parser.parse_args(["submit", "drift", "--label-wait-ms", "3600000"])
    assert drift_config(settings, chosen).label_wait_ms == 3_600_000
    assert drift_config(settings, parser.parse_args(["submit", "drift"])).label_wait_ms == 600_000
    code, _, err = run_cli(capsys, ["submit", "drift", "--label-wait-ms", "0"])
    assert code == 1
    assert assert_one_error_line(err) == "streamscore: error: label_wait_ms must be >= 1, got 0"


def test_generated_demo_events_are_stamped_recently_and_never_ahead():
    """A broker's time retention reads record timestamps (the event times): generated readings and
    demo events are stamped recently, or a retention check deletes them minutes after they are produced;
    and never in the future, which a job following control routes only once its clock gets there."""
    import time

    from streamscore.cli.produce import _generated_for, live_demo_events

    before = int(time.time() * 1000)
    readings = _generated_for("sensor:1.0.0", 2000, seed=1, prefix="t-")
    events = list(live_demo_events(3, seed=1, prefix="t-"))
    after = int(time.time() * 1000)
    stamps = [r["ts"] for r in readings]
    assert before - 120_000 <= min(stamps) and max(stamps) <= after, (before, min(stamps), max(stamps), after)
    assert all(before <= e["event_time"] <= after for e in events), [e["event_time"] for e in events]


def test_a_schema_file_that_is_not_text_is_refused_in_one_line(capsys, tmp_path):
    schema = tmp_path / "readings.avsc"
    schema.write_bytes(b"\xff\xfe\x00{")
    code, out, err = run_cli(capsys, ["models", "register", "--onnx", str(tmp_path / "m.onnx"), "--schema",
                                      str(schema), "--model", "m:1.0.0", "--features", "a", "--training-sample",
                                      str(tmp_path / "s.jsonl")])
    assert code == 1 and out == ""
    assert f"--schema {schema}: not UTF-8 text (byte 0" in assert_one_error_line(err)


@pytest.mark.parametrize("argv, message", [
    (["produce", "--rate", "nan"], "argument --rate: not a finite number: 'nan'"),
    (["produce", "--max-rate", "inf"], "argument --max-rate: not a finite number: 'inf'"),
    (["retrain", "--follow", "--poll-s", "-1"], "argument --poll-s: must be > 0, got '-1'"),
    (["consume", "scored", "--idle-timeout", "0"], "argument --idle-timeout: must be > 0, got '0'")])
def test_number_flags_refuse_what_float_takes_but_no_flag_means(capsys, argv, message):
    code, out, err = run_cli(capsys, argv)
    assert code == 2 and out == ""
    assert message in err.strip().splitlines()[-1]


@pytest.mark.parametrize("mode", ["--soak", "--overload"])
def test_a_report_folder_that_cannot_be_written_is_refused_before_the_run(capsys, tmp_path, mode):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    code, out, err = run_cli(capsys, ["chaos", mode, "--out", str(not_a_folder / "reports")])
    assert code == 1 and out == ""
    assert f"--out {not_a_folder / 'reports'}: cannot write a report there (" in assert_one_error_line(err)


def test_bench_refuses_a_system_key_it_does_not_have(capsys):
    code, out, err = run_cli(capsys, ["bench", "--systems", "wire-jvm-eo", "wire-jvm-b2048"])
    assert code == 1 and out == ""
    assert "--systems: no such system wire-jvm-b2048 in this plan" in assert_one_error_line(err)
