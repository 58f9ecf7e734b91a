"""ONNX Runtime scoring for one streaming worker.

:class:`OnnxScorer` owns one ``InferenceSession``. Execution providers default
to the best available of TensorRT, CUDA, CPU (in that order); an explicit list
is used as given and must be available. Threads default to ``intra_op=1`` and
``inter_op=1``: a Flink task slot is one worker, parallelism comes from slots.
The session is warmed up at load with batches of several sizes so the first
real records do not pay for lazy initialisation.

GPU providers get the options production needs (:class:`GpuOptions`): TensorRT
with its engine and timing caches on disk (an engine is built once per model,
shape profile and GPU, not at every start), one shape profile covering batch 1
to ``trt_max_batch`` (no rebuild when a batch size is new), FP16 on request;
CUDA with its arena settings. When a GPU provider runs the session,
``predict_batch`` uses IO binding: the batch is copied to the device once,
explicitly, and only the score output is bound and copied back. Which
provider actually runs the session is logged (``onnx_session_ready``): TensorRT
or CUDA can fail to initialise, and ONNX Runtime then falls back to the next one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from models.registry import LoadedModel
from streamscore.foundation.errors import ModelError

PREFERRED_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
GRAPH_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
WARMUP_BATCH_SIZES = (1, 7, 64, 256)
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


@dataclass(frozen=True)
class GpuOptions:
    """Settings of the GPU providers; ignored when the session runs on the CPU."""

    device_id: int = 0
    trt_fp16: bool = False  # TensorRT may run layers in FP16 (looser scores; see benchmarks/gpu_check.py)
    trt_cache_dir: str | None = None  # TensorRT engine and timing caches here; None: engines are not cached
    trt_max_batch: int = 4096  # the shape profile: batch 1 .. trt_max_batch, tuned for trt_opt_batch
    trt_opt_batch: int = 512
    trt_workspace_bytes: int = 2 << 30
    io_binding: bool | None = None  # None: on exactly when a GPU provider runs the session

    def __post_init__(self) -> None:
        if self.device_id < 0 or not 1 <= self.trt_opt_batch <= self.trt_max_batch:
            raise ModelError(f"GpuOptions: need device_id >= 0 and 1 <= trt_opt_batch <= trt_max_batch, got {self}")


def _with_writable_cache(gpu: GpuOptions) -> GpuOptions:
    """``gpu`` as it is when its TensorRT cache folder can be made, else without a cache (said in a log
    line): a folder named by the submitter may not be writable on a TaskManager, which is no reason to fail."""
    try:
        Path(gpu.trt_cache_dir).mkdir(parents=True, exist_ok=True)
        return gpu
    except OSError as exc:
        from streamscore.foundation.logs import get_logger

        get_logger("models.runtime").warning("tensorrt_cache_unavailable", folder=gpu.trt_cache_dir,
                                             error=f"{type(exc).__name__}: {exc}")
        return dataclasses.replace(gpu, trt_cache_dir=None)


def provider_options(provider: str, gpu: GpuOptions, input_name: str, width: int) -> dict[str, str]:
    """ONNX Runtime options of one execution provider (strings, as its C API takes them)."""
    if provider == "TensorrtExecutionProvider":
        def shape(batch):
            return f"{input_name}:{batch}x{width}"
        cache = ({"trt_engine_cache_enable": "True", "trt_engine_cache_path": gpu.trt_cache_dir,
                  "trt_timing_cache_enable": "True", "trt_timing_cache_path": gpu.trt_cache_dir}
                 if gpu.trt_cache_dir else {})
        return {"device_id": str(gpu.device_id), "trt_fp16_enable": str(gpu.trt_fp16), **cache,
                "trt_max_workspace_size": str(gpu.trt_workspace_bytes),
                "trt_profile_min_shapes": shape(1), "trt_profile_opt_shapes": shape(gpu.trt_opt_batch),
                "trt_profile_max_shapes": shape(gpu.trt_max_batch)}
    if provider == "CUDAExecutionProvider":
        return {"device_id": str(gpu.device_id), "arena_extend_strategy": "kNextPowerOfTwo",
                "cudnn_conv_algo_search": "HEURISTIC", "do_copy_in_default_stream": "True"}
    return {}


def choose_providers(requested: Sequence[str] | None = None,
                     available: Sequence[str] | None = None) -> list[str]:
    """The requested providers (all must be available), or the best available ones."""
    available = list(ort.get_available_providers() if available is None else available)
    if requested is None:
        chosen = [p for p in PREFERRED_PROVIDERS if p in available]
        if not chosen:
            raise ModelError(f"none of {list(PREFERRED_PROVIDERS)} is available (have {available})")
        return chosen
    missing = [p for p in requested if p not in available]
    if missing or not requested:
        raise ModelError(f"execution providers {missing or list(requested)} not available (have {available})")
    return list(requested)


def labels_from_scores(scores: np.ndarray, threshold: float) -> np.ndarray:
    """The card's label rule: ``score >= threshold``."""
    return np.asarray(scores) >= threshold


def _session_options(intra_op_threads: int, inter_op_threads: int,
                     graph_optimization: str) -> ort.SessionOptions:
    if graph_optimization not in GRAPH_OPTIMIZATION:
        raise ModelError(f"graph_optimization {graph_optimization!r} is not one of {list(GRAPH_OPTIMIZATION)}")
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = GRAPH_OPTIMIZATION[graph_optimization]
    options.log_severity_level = 3
    return options


class OnnxScorer:
    """Scores float32 feature matrices with one ``session.run`` per batch."""

    def __init__(self, model: LoadedModel, *, providers: Sequence[str] | None = None,
                 intra_op_threads: int = 1, inter_op_threads: int = 1, graph_optimization: str = "all",
                 warmup_batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES, gpu: GpuOptions | None = None) -> None:
        self.model = model
        card = model.card
        self.input_name = card.onnx_input.name
        self.width = card.onnx_input.shape[1]
        self.score_output = card.outputs.score_output
        self.score_column = card.outputs.score_column
        self.threshold = float(card.outputs.threshold)
        self.gpu = gpu or GpuOptions()
        options = _session_options(intra_op_threads, inter_op_threads, graph_optimization)
        chosen = choose_providers(providers)
        if "TensorrtExecutionProvider" in chosen and self.gpu.trt_cache_dir:
            self.gpu = _with_writable_cache(self.gpu)
        per_provider = [provider_options(p, self.gpu, self.input_name, self.width) for p in chosen]
        try:
            self.session = ort.InferenceSession(model.onnx_bytes, sess_options=options, providers=chosen,
                                                provider_options=per_provider)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelError(f"{card.ref}: ONNX Runtime could not load the model: {exc}") from exc
        on_gpu = self.providers[0] in GPU_PROVIDERS
        self.io_binding = on_gpu if self.gpu.io_binding is None else self.gpu.io_binding
        self._device = "cuda" if on_gpu else "cpu"
        self.warm_up(warmup_batch_sizes)
        self._log_ready(chosen, graph_optimization)

    def _log_ready(self, requested: list[str], graph_optimization: str) -> None:
        from streamscore.foundation.logs import get_logger

        get_logger("models.runtime").info(
            "onnx_session_ready", model=self.model.card.ref, provider=self.providers[0], providers=self.providers,
            requested=requested, io_binding=self.io_binding, graph_optimization=graph_optimization,
            trt_fp16=self.gpu.trt_fp16 if self.providers[0] == "TensorrtExecutionProvider" else None)

    @property
    def providers(self) -> list[str]:
        """Execution providers the session actually uses, in priority order."""
        return self.session.get_providers()

    def warm_up(self, batch_sizes: Sequence[int] = WARMUP_BATCH_SIZES) -> None:
        for size in batch_sizes:
            self.predict_batch(np.zeros((size, self.width), dtype=np.float32))

    def predict_batch(self, features: np.ndarray) -> np.ndarray:
        """Scores (float64, shape (n,)) for a float32 [n, d] matrix, in row order."""
        if not isinstance(features, np.ndarray) or features.dtype != np.float32:
            raise ModelError(f"predict_batch needs a float32 ndarray, got {getattr(features, 'dtype', type(features))}")
        if features.ndim != 2 or features.shape[1] != self.width:
            raise ModelError(f"predict_batch needs shape (n, {self.width}), got {features.shape}")
        if features.shape[0] == 0:
            return np.empty(0, dtype=np.float64)
        features = np.ascontiguousarray(features)
        if self.io_binding:
            output = self._run_bound(features)
        else:
            output = self.session.run([self.score_output], {self.input_name: features})[0]
        scores = output if self.score_column is None else output[:, self.score_column]
        return scores.astype(np.float64)

    def _run_bound(self, features: np.ndarray) -> np.ndarray:
        """One run with IO binding: the input is placed on the session's device once, the score comes back."""
        binding = self.session.io_binding()
        if self._device == "cpu":
            binding.bind_cpu_input(self.input_name, features)
        else:
            on_device = ort.OrtValue.ortvalue_from_numpy(features, self._device, self.gpu.device_id)
            binding.bind_ortvalue_input(self.input_name, on_device)
        binding.bind_output(self.score_output, "cpu")
        self.session.run_with_iobinding(binding)
        return binding.get_outputs()[0].numpy()

    def labels(self, scores: np.ndarray) -> np.ndarray:
        return labels_from_scores(scores, self.threshold)
