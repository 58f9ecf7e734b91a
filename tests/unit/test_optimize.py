"""Unit tests of models/optimize*: INT8/FP16/graph-optimized variants, the accuracy gate, the cards,
the heavy demo model, and the GPU-ready parts of models/runtime.py that run on a CPU."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from structlog.testing import capture_logs

from models.card import ModelCard
from models.optimize import OptimizeOptions, optimize_model, variant_version
from models.optimize_bench import auc, held_out_sample
from models.registry import DEFAULT_ROOT, ModelRegistry
from models.runtime import GpuOptions, OnnxScorer, provider_options
from streamscore.cli.main import main as cli_main
from streamscore.foundation.errors import ModelError

FAST = {"eval_rows": 4_000, "calibration_rows": 512, "bench_seconds": 0.02, "bench_rounds": 1}


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registry")
    for name in ("fraud", "fraud-mlp"):
        shutil.copytree(DEFAULT_ROOT / name / "1.0.0", root / name / "1.0.0")
    return root


@pytest.fixture(scope="module")
def int8(registry) -> dict:
    return optimize_model("fraud-mlp:1.0.0", OptimizeOptions("int8", **FAST), registry)


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return held_out_sample(2_000, seed=77)[0]


def _scores(registry: Path, ref: str, matrix: np.ndarray) -> np.ndarray:
    return OnnxScorer(ModelRegistry(registry).load(ref), warmup_batch_sizes=()).predict_batch(matrix)


def test_committed_heavy_model_loads_with_its_card():
    model = ModelRegistry().load("fraud-mlp:1.0.0")
    card = model.card
    assert card.contract.names == ModelRegistry().load("fraud:1.0.0").card.contract.names
    assert 0.8 < card.training.test_auc < 0.9 and "MLPClassifier" in card.training.algorithm
    assert sorted(card.drift_profile["features"]) == sorted(card.contract.names) and "score" in card.drift_profile
    assert len(model.onnx_bytes) < 5_000_000


def test_int8_registers_a_loadable_version_that_tracks_its_parent(registry, int8, sample):
    assert int8["ref"] == "fraud-mlp:1.0.0+int8"
    loaded = ModelRegistry(registry).load("fraud-mlp:1.0.0+int8")  # sha256 and graph checks
    assert len(loaded.onnx_bytes) < 0.5 * len(ModelRegistry(registry).load("fraud-mlp:1.0.0").onnx_bytes)
    parent, child = _scores(registry, "fraud-mlp:1.0.0", sample), _scores(registry, int8["ref"], sample)
    assert np.corrcoef(parent, child)[0, 1] > 0.99
    assert int8["accuracy"]["auc_drop"] <= 0.01 and int8["accuracy"]["label_agreement"] > 0.99
    assert ModelRegistry(registry).latest("fraud-mlp").version == "1.0.0"  # a variant is never 'latest'


def test_optimized_card_records_parent_deltas_and_speedups(registry, int8):
    card = ModelRegistry(registry).load(int8["ref"]).card
    opt = card.optimization
    assert (opt["parent"], opt["transformation"]) == ("fraud-mlp:1.0.0", "int8")
    assert opt["parent_sha256"] == ModelRegistry(registry).load("fraud-mlp:1.0.0").card.onnx_sha256
    assert {"parent_auc", "auc", "auc_drop", "label_agreement", "rows", "seed"} <= set(opt["accuracy"])
    assert opt["gate"] == {"max_auc_drop": 0.01, "passed": True}
    for batch in ("batch_1", "batch_512"):
        assert {"parent_rows_per_s", "rows_per_s", "speedup"} <= set(opt["speed"][batch])
        assert opt["speed"][batch]["speedup"] > 0
    assert opt["kept_float32"] and opt["calibration"]["rows"] == FAST["calibration_rows"]
    assert ModelCard.from_dict(card.to_dict()) == card
    assert "optimization" not in ModelRegistry(registry).load("fraud-mlp:1.0.0").card.to_dict()


def test_gate_refuses_and_registers_nothing(registry, int8):
    with pytest.raises(ModelError, match=r"not registered: AUC .* more than --max-auc-drop -1\.0000"):
        optimize_model("fraud-mlp:1.0.0", OptimizeOptions("int8", max_auc_drop=-1.0, force=True, **FAST), registry)
    assert ModelRegistry(registry).load(int8["ref"])  # the earlier variant is untouched


def test_gate_on_the_command_line_is_one_error_line(registry, capsys):
    code = cli_main(["models", "optimize", "fraud-mlp:1.0.0", "--int8", "--max-auc-drop", "-1",
                     "--eval-rows", "2000", "--registry-dir", str(registry)])
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.startswith("streamscore: error:")]
    assert code == 1 and out == "" and len(lines) == 1 and "not registered" in lines[0]
    assert not (registry / "fraud-mlp" / "1.0.0+int8.int8").exists()


def test_fp16_scores_within_tolerance(registry, sample):
    result = optimize_model("fraud-mlp:1.0.0", OptimizeOptions("fp16", **FAST), registry)
    parent, child = _scores(registry, "fraud-mlp:1.0.0", sample), _scores(registry, result["ref"], sample)
    np.testing.assert_allclose(child, parent, rtol=0, atol=2e-3)
    assert abs(result["accuracy"]["auc_drop"]) < 1e-3 and result["ref"] == "fraud-mlp:1.0.0+fp16"


def test_graph_optimized_variant_scores_like_its_parent(registry, sample):
    result = optimize_model("fraud:1.0.0", OptimizeOptions("opt-basic", **FAST), registry)
    np.testing.assert_allclose(_scores(registry, result["ref"], sample), _scores(registry, "fraud:1.0.0", sample),
                               rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["int8", "fp16"])
def test_tree_model_has_nothing_to_quantize(registry, kind):
    with pytest.raises(ModelError, match=rf"nothing to convert to {kind.upper()}: .*TreeEnsembleClassifier"):
        optimize_model("fraud:1.0.0", OptimizeOptions(kind, **FAST), registry)
    assert not (registry / "fraud" / f"1.0.0+{kind}").exists()


def test_missing_model_and_existing_variant_are_clear_errors(registry, int8, capsys):
    with pytest.raises(ModelError, match=r"model fraud-mlp:9\.9\.9 not found"):
        optimize_model("fraud-mlp:9.9.9", OptimizeOptions("int8", **FAST), registry)
    with pytest.raises(ModelError, match=r"already exists .* --force"):
        optimize_model("fraud-mlp:1.0.0", OptimizeOptions("int8", **FAST), registry)
    code = cli_main(["models", "optimize", "nosuch:1.0.0", "--int8", "--registry-dir", str(registry)])
    assert code == 1 and "model nosuch:1.0.0 not found" in capsys.readouterr().err
    code = cli_main(["models", "optimize", "fraud-mlp:1.0.0", "--registry-dir", str(registry)])
    assert code == 1 and "needs one of --int8, --fp16, --opt-level" in capsys.readouterr().err


def test_versions_and_options():
    assert variant_version("1.0.0", "int8") == "1.0.0+int8"
    assert variant_version("1.0.0+opt-all", "int8") == "1.0.0+opt-all.int8"
    with pytest.raises(ModelError, match="transformation"):
        OptimizeOptions("int4")
    assert auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)


# --- runtime: the GPU-ready parts, exercised on the CPU ------------------------------------------

def test_io_binding_path_equals_a_plain_run(sample):
    model = ModelRegistry().load("fraud-mlp:1.0.0")
    plain = OnnxScorer(model, warmup_batch_sizes=())
    bound = OnnxScorer(model, warmup_batch_sizes=(1,), gpu=GpuOptions(io_binding=True))
    assert (plain.io_binding, bound.io_binding) == (False, True)
    assert np.array_equal(bound.predict_batch(sample), plain.predict_batch(sample))
    assert bound.predict_batch(sample[:0]).shape == (0,)


def test_session_log_line_names_the_provider_used():
    with capture_logs() as logs:
        OnnxScorer(ModelRegistry().load("fraud:1.0.0"), warmup_batch_sizes=())
    ready = [entry for entry in logs if entry["event"] == "onnx_session_ready"]
    assert ready and ready[0]["provider"] == "CPUExecutionProvider" and ready[0]["model"] == "fraud:1.0.0"


def test_gpu_provider_options(tmp_path):
    gpu = GpuOptions(trt_fp16=True, trt_cache_dir=str(tmp_path), trt_max_batch=4096, trt_opt_batch=512)
    trt = provider_options("TensorrtExecutionProvider", gpu, "features", 25)
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_fp16_enable"] == "True" and trt["trt_profile_max_shapes"] == "features:4096x25"
    cuda = provider_options("CUDAExecutionProvider", gpu, "features", 25)
    assert cuda["device_id"] == "0" and provider_options("CPUExecutionProvider", gpu, "features", 25) == {}
    with pytest.raises(ModelError, match="trt_opt_batch"):
        GpuOptions(trt_opt_batch=8192)


def test_gpu_check_settings_and_score_checks():
    from benchmarks.gpu_check import score_check, usable_settings

    assert usable_settings(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["cpu"]
    assert usable_settings(["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]) == [
        "cpu", "cuda", "trt", "trt-fp16"]
    cpu = np.linspace(0.0, 1.0, 101)
    assert score_check("fraud-mlp:1.0.0", "cuda", cpu + 5e-4, cpu, 0.5)["passed"]
    assert not score_check("fraud-mlp:1.0.0", "cuda", cpu + 5e-3, cpu, 0.5)["passed"]
    assert score_check("fraud-mlp:1.0.0", "trt-fp16", cpu + 5e-3, cpu, 0.5)["passed"]


def test_an_unwritable_tensorrt_cache_folder_means_no_cache_not_a_failure(tmp_path):
    from models.runtime import _with_writable_cache

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    gpu = _with_writable_cache(GpuOptions(trt_cache_dir=str(blocker / "tensorrt")))
    assert gpu.trt_cache_dir is None
    assert _with_writable_cache(GpuOptions(trt_cache_dir=str(tmp_path / "ok"))).trt_cache_dir == str(tmp_path / "ok")


def test_the_gate_refuses_non_finite_scores_and_a_nan_auc():
    from models.optimize import _gate
    from models.optimize_bench import accuracy_delta

    labels = np.array([0, 1] * 50)
    parent = np.linspace(0.0, 1.0, 100)
    child = parent.copy()
    child[7] = np.nan  # one fp16 overflow: the AUC is NaN, and NaN > limit is False
    accuracy = accuracy_delta(labels, parent, child, 0.5)
    assert accuracy["non_finite_scores"] == 1
    options = OptimizeOptions("fp16", max_auc_drop=0.01)
    with pytest.raises(ModelError, match=r"^x not registered: 1 of its 100 held-out scores .* are NaN or infinite"):
        _gate(accuracy, options, "x")
    with pytest.raises(ModelError, match="not registered: AUC"):
        _gate({**accuracy, "non_finite_scores": 0, "auc_drop": float("nan")}, options, "x")
    assert _gate(accuracy_delta(labels, parent, parent, 0.5), options, "x")["passed"]
