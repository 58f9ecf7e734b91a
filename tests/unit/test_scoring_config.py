"""Unit tests of jobs/scoring_config.py: the scoring job's settings, checked before submission."""

from __future__ import annotations

import dataclasses
import json

import pytest

from jobs.job_wire import RegistryWire, check_wire
from jobs.scoring_config import (
    MIN_TRANSACTION_TIMEOUT_MS,
    TIMEOUT_HEADROOM,
    ScoringJobConfig,
    check_against_broker,
    min_transaction_timeout_ms,
)
from streamscore.foundation.errors import ConfigError
from streamscore.foundation.security import ClientAuth

BOOTSTRAP = "127.0.0.1:19092"


def base(**changes) -> ScoringJobConfig:
    return dataclasses.replace(ScoringJobConfig(bootstrap=BOOTSTRAP), **changes)


def test_defaults_pass_and_derive_names():
    config = ScoringJobConfig(bootstrap=BOOTSTRAP)
    assert config.checked() is config
    assert config.model == "fraud:1.0.0"
    assert (config.events_topic, config.scored_topic, config.dead_letter_topic) == ("events", "scored", "dead-letter")
    assert config.exactly_once is True
    assert config.consumer_group == "streamscore-scoring"
    assert config.transactional_prefix == "streamscore-scoring"
    assert base(group_id="g", transactional_id_prefix="tx").consumer_group == "g"
    assert base(group_id="g", transactional_id_prefix="tx").transactional_prefix == "tx"


def test_default_minimum_transaction_timeout():
    config = ScoringJobConfig(bootstrap=BOOTSTRAP)
    assert min_transaction_timeout_ms(config) == MIN_TRANSACTION_TIMEOUT_MS == 60_000
    slow = base(checkpoint_interval_ms=30_000, max_delay_ms=500)
    assert min_transaction_timeout_ms(slow) == TIMEOUT_HEADROOM * 30_500 == 305_000


def test_json_round_trip_with_every_field_changed():
    config = ScoringJobConfig(
        bootstrap="kafka:9092", model="fraud:2.1.0", registry_dir="/models", events_topic="in",
        scored_topic="out", dead_letter_topic="dlq", job_name="j", group_id="g",
        transactional_id_prefix="tx", max_batch_size=64, max_delay_ms=20, checkpoint_interval_ms=2000,
        transaction_timeout_ms=120_000, exactly_once=False, parallelism=3, startup_mode="earliest-offset",
        providers=("CUDAExecutionProvider", "CPUExecutionProvider"), intra_op_threads=2, batches_per_bundle=3,
    )
    text = config.to_json()
    assert json.loads(text)["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    back = ScoringJobConfig.from_json(text)
    assert back == config
    assert isinstance(back.providers, tuple)
    assert back.to_json() == text


def test_json_round_trip_of_defaults():
    config = ScoringJobConfig(bootstrap=BOOTSTRAP)
    assert json.loads(config.to_json())["providers"] is None
    assert ScoringJobConfig.from_json(config.to_json()) == config


def test_from_json_checks_the_values():
    text = json.dumps({"bootstrap": BOOTSTRAP, "max_batch_size": 0})
    with pytest.raises(ConfigError, match=r"max_batch_size must be >= 1, got 0"):
        ScoringJobConfig.from_json(text)
    text = json.dumps({"bootstrap": BOOTSTRAP, "transaction_naming": "POOLED"})
    with pytest.raises(ConfigError, match=r"transaction_naming must be one of pooling, incrementing, got 'POOLED'"):
        ScoringJobConfig.from_json(text)


def test_unknown_keys_are_named():
    text = json.dumps({"bootstrap": BOOTSTRAP, "batch_size": 10, "zz": 1})
    with pytest.raises(ConfigError) as info:
        ScoringJobConfig.from_json(text)
    assert str(info.value) == "scoring job config has unknown keys ['batch_size', 'zz']"


@pytest.mark.parametrize("text", ["", "{", "{'bootstrap': 'x'}", "not json", '{"bootstrap": "x",}'])
def test_bad_json_is_a_config_error(text):
    with pytest.raises(ConfigError, match=r"^scoring job config is not JSON: "):
        ScoringJobConfig.from_json(text)


@pytest.mark.parametrize("text", ["42", "null", '["bootstrap"]', "{}",
                                  '{"bootstrap": "x", "max_batch_size": "512"}'])
def test_json_of_the_wrong_shape_is_a_config_error(text):
    with pytest.raises(ConfigError):
        ScoringJobConfig.from_json(text)


def test_a_providers_string_is_refused_or_kept_whole():
    text = json.dumps({"bootstrap": BOOTSTRAP, "providers": "CPUExecutionProvider"})
    try:
        config = ScoringJobConfig.from_json(text)
    except ConfigError:
        return
    assert config.providers == ("CPUExecutionProvider",)  # today: ('C', 'P', 'U', 'E', ...)


@pytest.mark.parametrize("name", ["max_batch_size", "max_delay_ms", "checkpoint_interval_ms",
                                  "parallelism", "intra_op_threads"])
@pytest.mark.parametrize("value", [0, -1])
def test_positive_knobs(name, value):
    with pytest.raises(ConfigError) as info:
        base(**{name: value}).checked()
    assert str(info.value) == f"{name} must be >= 1, got {value}"
    assert base(**{name: 1}).checked()


def test_a_bundle_holds_whole_batches():
    from jobs.scoring_job import bundle_size

    assert [bundle_size(b) for b in (1, 64, 512, 1000, 2048)] == [8192, 8192, 8192, 9000, 8192]
    assert bundle_size(2048, 4) == 8192 and bundle_size(512, 1) == 512
    assert base(batches_per_bundle=0).checked() and base(batches_per_bundle=4).checked()
    with pytest.raises(ConfigError, match="batches_per_bundle must be >= 0"):
        base(batches_per_bundle=-1).checked()


def test_the_worker_freezes_its_start_up_heap():
    import gc

    from jobs.scoring_job import freeze_start_up_heap

    before = gc.get_freeze_count()
    try:
        freeze_start_up_heap()
        assert gc.get_freeze_count() > before
    finally:
        gc.unfreeze()


class _RecordedConf:
    """A table config that records what the job sets (the job's configure step needs no cluster)."""

    def __init__(self):
        self.values: dict[str, str] = {}

    def get_config(self):
        return self

    def set(self, key: str, value: str):
        self.values[key] = value


@pytest.mark.parametrize("reuse", [True, False])
def test_configure_sets_the_batch_bundle_and_object_reuse(reuse):
    from jobs.scoring_job import configure

    conf = _RecordedConf()
    configure(conf, base(max_batch_size=2048, object_reuse=reuse), None)
    assert conf.values["pipeline.object-reuse"] == str(reuse).lower()
    assert conf.values["python.fn-execution.arrow.batch.size"] == "2048"
    assert conf.values["python.fn-execution.bundle.size"] == "8192"
    assert conf.values["python.fn-execution.bundle.time"] == "100"  # the max delay (halving it lost: the docs)
    assert base().object_reuse is True  # the default, measured (docs/benchmarks.md)


def test_batch_size_upper_bound():
    assert base(max_batch_size=100_000).checked()
    with pytest.raises(ConfigError, match=r"max_batch_size 100001 is unreasonably large \(max 100000\)"):
        base(max_batch_size=100_001).checked()


@pytest.mark.parametrize("topics", [("a", "a", "b"), ("a", "b", "a"), ("a", "b", "b"), ("x", "x", "x")])
def test_topics_must_differ(topics):
    events, scored, dead = topics
    with pytest.raises(ConfigError) as info:
        base(events_topic=events, scored_topic=scored, dead_letter_topic=dead).checked()
    assert str(info.value) == f"events, scored and dead-letter topics must differ, got {list(topics)}"


@pytest.mark.parametrize("mode", ["earliest", "latest", "", "GROUP-OFFSETS", "timestamp"])
def test_bad_startup_mode(mode):
    with pytest.raises(ConfigError) as info:
        base(startup_mode=mode).checked()
    assert "startup_mode must be group-offsets, earliest-offset or latest-offset" in str(info.value)
    assert repr(mode) in str(info.value)


@pytest.mark.parametrize("mode", ["group-offsets", "earliest-offset", "latest-offset"])
def test_good_startup_modes(mode):
    assert base(startup_mode=mode).checked().startup_mode == mode


def test_transaction_timeout_below_the_minimum():
    config = base(checkpoint_interval_ms=10_000, max_delay_ms=100)
    needed = min_transaction_timeout_ms(config)
    assert needed == 101_000
    assert config.with_changes(transaction_timeout_ms=needed).transaction_timeout_ms == needed
    with pytest.raises(ConfigError) as info:
        config.with_changes(transaction_timeout_ms=needed - 1)
    message = str(info.value)
    assert message.startswith("transaction_timeout_ms 100999 is too close to the checkpoint interval")
    assert "(10000 ms)" in message and "(100 ms)" in message
    assert "use at least 101000 ms" in message


def test_transaction_timeout_floor_is_one_minute():
    with pytest.raises(ConfigError, match=r"use at least 60000 ms"):
        base(transaction_timeout_ms=59_999).checked()
    assert base(transaction_timeout_ms=60_000).checked()


def test_at_least_once_ignores_the_transaction_timeout():
    assert base(exactly_once=False, transaction_timeout_ms=1_000).checked().transaction_timeout_ms == 1_000


def test_with_changes_checks_and_does_not_mutate():
    config = ScoringJobConfig(bootstrap=BOOTSTRAP)
    changed = config.with_changes(max_batch_size=32)
    assert (changed.max_batch_size, config.max_batch_size) == (32, 512)
    with pytest.raises(ConfigError, match=r"max_delay_ms must be >= 1, got 0"):
        config.with_changes(max_delay_ms=0)


def test_broker_max_timeout():
    config = base(transaction_timeout_ms=600_000)
    check_against_broker(config, 600_000)  # equal is fine
    check_against_broker(config, 900_000)
    with pytest.raises(ConfigError) as info:
        check_against_broker(config, 300_000)
    message = str(info.value)
    assert "transaction_timeout_ms 600000 exceeds the broker's transaction.max.timeout.ms 300000" in message
    assert "lower it or raise the broker's limit" in message


def test_broker_max_timeout_does_not_matter_at_least_once():
    config = base(exactly_once=False, transaction_timeout_ms=600_000)
    assert check_against_broker(config, 1) is None


def _secure(tmp_path, **changes) -> ScoringJobConfig:
    password = tmp_path / "kafka.pw"
    password.write_text("s3cret-pw\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("not read here\n")
    auth = ClientAuth(kafka_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256", kafka_username="alice",
                      kafka_password_file=str(password), kafka_ca_file=str(ca), kafka_endpoint_identification=False)
    return base(control_topic="control", shadow_topic="shadow", auth=auth, **changes)


def test_the_control_reader_logs_in_like_the_submitter(tmp_path):
    from streamscore.foundation.config import load_settings

    config = _secure(tmp_path)
    text = config.to_json()
    assert "s3cret-pw" not in text  # the password's file travels, never the password
    back = ScoringJobConfig.from_json(text)
    assert back == config
    settings = load_settings(back.python_kafka_env())  # as the Python worker does on the TaskManager
    security = settings.kafka_security
    assert (settings.kafka_bootstrap, settings.kafka_mode) == (BOOTSTRAP, "external")
    assert (security.protocol, security.sasl_mechanism, security.username) == ("SASL_SSL", "SCRAM-SHA-256", "alice")
    assert security.password.reveal() == "s3cret-pw"
    assert security.ca_file == tmp_path / "ca.pem" and security.endpoint_identification is False


def test_plaintext_reader_env_has_no_security():
    settings_env = base().python_kafka_env()
    assert settings_env["STREAMSCORE_KAFKA_SECURITY_PROTOCOL"] == "PLAINTEXT"
    assert not any("PASSWORD" in k or "SSL_CA" in k for k in settings_env)


def test_following_control_over_sasl_needs_a_password_file(tmp_path):
    with pytest.raises(ConfigError, match="STREAMSCORE_KAFKA_SASL_PASSWORD_FILE"):
        secure = _secure(tmp_path)
        dataclasses.replace(secure, auth=dataclasses.replace(secure.auth, kafka_password_file=None)).checked()
    base(auth=ClientAuth(kafka_protocol="SASL_SSL")).checked()  # a pinned model reads no control: fine


def test_the_client_auth_is_read_back_strictly(tmp_path):
    raw = json.loads(_secure(tmp_path).to_json())
    assert raw["auth"]["kafka_username"] == "alice" and "kafka_security_protocol" not in raw
    with pytest.raises(ConfigError, match="auth has unknown keys"):
        ScoringJobConfig.from_json(json.dumps({**raw, "auth": {**raw["auth"], "kafka_password": "x"}}))
    not_a_flag = {**raw, "auth": {**raw["auth"], "kafka_endpoint_identification": "no"}}
    with pytest.raises(ConfigError, match=r"auth\.kafka_endpoint_identification must be bool"):
        ScoringJobConfig.from_json(json.dumps(not_a_flag))


def test_a_job_from_the_settings_gets_the_default_batch_and_the_registry_unless_asked_otherwise():
    from jobs.scoring_config import DEFAULT_BOUND_BATCH
    from jobs.submit import scoring_config_from_settings
    from streamscore.foundation.config import load_settings

    settings = load_settings()
    fraud = scoring_config_from_settings(settings)
    assert fraud.max_batch_size == DEFAULT_BOUND_BATCH
    assert fraud.registry.url == settings.schema_registry.url_for_jobs and fraud.registry.scored_schema_id == 0
    assert scoring_config_from_settings(settings, model="sensor:1.0.0").max_batch_size == DEFAULT_BOUND_BATCH
    assert scoring_config_from_settings(settings, model="sensor:1.0.0", max_batch_size=256).max_batch_size == 256
    short = scoring_config_from_settings(settings, transaction_timeout_ms=60_000)
    assert short.registry.wait_ms == 30_000  # a batch waits for the registry at most half the transaction timeout
    single = scoring_config_from_settings(settings, registry=RegistryWire(framing="single-object"))
    assert single.registry.url == "" and not single.registry.confluent


def test_a_framing_outside_the_choices_or_single_object_with_a_registry_is_refused():
    with pytest.raises(ConfigError, match=r"registry\.framing must be one of confluent, single-object"):
        check_wire(RegistryWire(framing="protobuf"), 600_000)
    with pytest.raises(ConfigError, match="single-object framing takes no registry url"):
        check_wire(RegistryWire(url="http://r:8080", framing="single-object"), 600_000)
    check_wire(RegistryWire(url="http://r:8080"), 600_000)  # no ids yet: the job registers them at its start


@pytest.mark.parametrize("batch, profile_max", [(512, 4096), (4096, 4096), (20_000, 20_000)])
def test_the_tensorrt_profile_holds_the_jobs_largest_batch(batch, profile_max):
    # a batch beyond the profile would fail each model call and be scored row by row
    from jobs.scoring_job import gpu_options
    from models.runtime import provider_options

    config = ScoringJobConfig(bootstrap="b", max_batch_size=batch, model_cache_dir="/tmp/trt").checked()
    options = provider_options("TensorrtExecutionProvider", gpu_options(config), "features", 25)
    assert options["trt_profile_max_shapes"] == f"features:{profile_max}x25"
    assert options["trt_engine_cache_path"] == "/tmp/trt"
