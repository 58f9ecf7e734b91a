"""The prediction cache's logic with an in-memory stand-in for Redis: hits, misses, TTL, and the bypass."""
import numpy as np
import pytest

from connectors.prediction_cache import PredictionCache
from jobs.batch_scorer import BatchScorer, ScorerSetup
from models.demo_data import generate_events
from models.registry import load_model
from models.runtime import OnnxScorer
from schemas import serde_for


class FakeRedis:
    def __init__(self):
        self.data, self.ttls, self.down, self.calls = {}, {}, False, 0

    def _check(self):
        self.calls += 1
        if self.down:
            raise ConnectionError("Connection refused")

    def mget(self, keys):
        self._check()
        return [self.data.get(k) for k in keys]

    def pipeline(self, transaction=False):
        return FakePipeline(self)


class FakePipeline:
    def __init__(self, redis):
        self.redis, self.ops = redis, []

    def set(self, key, value, ex):
        self.ops.append((key, value, ex))

    def execute(self):
        self.redis._check()
        for key, value, ex in self.ops:
            self.redis.data[key], self.redis.ttls[key] = value, ex


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Log:
    def __init__(self):
        self.lines = []

    def warning(self, event, **kw):
        self.lines.append(event)

    def info(self, event, **kw):
        self.lines.append(event)


def test_keys_depend_on_model_and_row_and_misses_then_hits():
    redis = FakeRedis()
    cache = PredictionCache(lambda: redis, model_ref="fraud:1.0.0", ttl_s=60)
    matrix = np.arange(12, dtype=np.float32).reshape(3, 4)
    keys = cache.keys(matrix)
    assert len(set(keys)) == 3 and all(k.startswith(b"streamscore:pred:fraud:1.0.0:") for k in keys)
    assert PredictionCache(lambda: redis, model_ref="fraud:2.0.0").keys(matrix)[0] != keys[0]
    scores, hit = cache.lookup(keys)
    assert not hit.any() and np.isnan(scores).all()
    cache.store(keys[:2], [0.25, 0.75])
    scores, hit = cache.lookup(keys)
    assert hit.tolist() == [True, True, False] and scores[:2].tolist() == [0.25, 0.75]
    assert set(redis.ttls.values()) == {60}
    assert (cache.stats.hits, cache.stats.misses) == (2, 4)


def test_redis_down_bypasses_for_a_while_logs_once_and_recovers():
    redis, clock, log = FakeRedis(), Clock(), Log()
    cache = PredictionCache(lambda: redis, model_ref="m:1", retry_after_s=5, clock=clock, log=log)
    keys = cache.keys(np.ones((4, 2), dtype=np.float32))
    redis.down = True
    _, hit = cache.lookup(keys)
    assert not hit.any() and cache.bypassed and cache.stats.errors == 1
    calls = redis.calls
    for _ in range(10):  # while bypassed, Redis is not even asked
        cache.lookup(keys)
        cache.store(keys, [0.5] * 4)
    assert redis.calls == calls and cache.stats.errors == 1 and cache.stats.bypassed_rows == 44
    clock.now = 6
    cache.lookup(keys)  # retried once, still down: bypass again, no second "unavailable" line
    assert cache.stats.errors == 2 and log.lines == ["prediction_cache_unavailable"]
    redis.down = False
    clock.now = 12
    cache.lookup(keys)
    assert not cache.bypassed and log.lines == ["prediction_cache_unavailable", "prediction_cache_recovered"]


def test_batch_scorer_scores_only_misses_and_gives_identical_outputs():
    model = load_model("fraud:1.0.0")
    predictor = OnnxScorer(model)

    class Counting:
        def __init__(self):
            self.rows = 0

        def predict_batch(self, features):
            self.rows += len(features)
            return predictor.predict_batch(features)

    counting, redis = Counting(), FakeRedis()
    cache = PredictionCache(lambda: redis, model_ref=model.card.ref)
    scorer = BatchScorer(model, counting, ScorerSetup(job="t", source_topic="events", clock_ms=lambda: 5, cache=cache))
    plain = BatchScorer(model, predictor, ScorerSetup(job="t", source_topic="events", clock_ms=lambda: 5))
    encode = serde_for("event").encode
    payloads = [encode(e) for e in generate_events(200, seed=4)]
    first = scorer.score(payloads[:100], [0] * 100, list(range(100)))
    second = scorer.score(payloads, [0] * 200, list(range(200)))  # the first 100 repeat
    assert (first.cache_hits, second.cache_hits, second.cache_lookups) == (0, 100, 200)
    assert counting.rows == 200  # 100 + only the 100 misses
    reference = plain.score(payloads, [0] * 200, list(range(200)))
    assert second.bodies == reference.bodies  # cached scores are the model's scores: same records
    redis.down = True
    third = scorer.score(payloads, [0] * 200, list(range(200)))
    assert third.cache_errors == 1 and third.cache_hits == 0 and third.bodies == reference.bodies


def test_cache_config_is_checked():
    from jobs.scoring_config import ScoringJobConfig
    from streamscore.foundation.errors import ConfigError

    with pytest.raises(ConfigError, match="needs redis_url"):
        ScoringJobConfig(bootstrap="b", cache_enabled=True).checked()
    with pytest.raises(ConfigError, match="credentials"):
        ScoringJobConfig(bootstrap="b", redis_url="redis://u:secret@h:6379/0").checked()


def test_a_model_replaced_under_its_version_gets_other_keys():
    # models optimize --force replaces X.Y.Z+int8 in place: its cached scores must not be read back
    import dataclasses

    from connectors.prediction_cache import model_key

    card = load_model("fraud:1.0.0").card
    replaced = dataclasses.replace(card, onnx_sha256="0" * 64)
    assert model_key(card) == f"fraud:1.0.0:{card.onnx_sha256[:16]}"
    assert model_key(replaced) != model_key(card)
