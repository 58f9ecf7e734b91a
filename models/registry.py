"""The on-disk model registry: ``<root>/<name>/<version>/{model.onnx, model.json}``.

The default root is this package's directory, so the demo model ships at
``models/fraud/1.0.0/``. :meth:`ModelRegistry.load` trusts nothing: it checks
the ONNX file's sha256 against the card, and the card's input/outputs against
the ONNX graph (names, element dtypes, shapes), raising :class:`ModelError`
that names the mismatch.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from models.card import ModelCard, load_card
from models.contract import FeatureContract
from streamscore.foundation.errors import ModelError

DEFAULT_ROOT = Path(__file__).resolve().parent
ONNX_FILE = "model.onnx"
CARD_FILE = "model.json"
_ONNX_DTYPES = {"float32": onnx.TensorProto.FLOAT}
_SCORE_DTYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE)
_VERSION = re.compile(r"^(\d+)\.(\d+)\.(\d+)")


@dataclass(frozen=True, order=True)
class ModelRef:
    """A model name and semantic version; ``str()`` gives ``"name:version"``."""

    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


def parse_ref(ref: str) -> ModelRef:
    """Parse ``"fraud:1.0.0"``; a malformed ref raises ModelError."""
    name, sep, version = ref.partition(":")
    if not sep or not name or not version or ":" in version or "/" in ref:
        raise ModelError(f"model ref {ref!r} is not 'name:version'")
    if not _VERSION.match(version):
        raise ModelError(f"model ref {ref!r}: {version!r} is not a semantic version")
    return ModelRef(name, version)


def _version_key(version: str) -> tuple[int, ...]:
    match = _VERSION.match(version)
    return tuple(int(part) for part in match.groups()) if match else (-1,)


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its card, ONNX bytes and where they came from."""

    ref: ModelRef
    card: ModelCard
    onnx_bytes: bytes
    directory: Path

    @property
    def contract(self) -> FeatureContract:
        return self.card.contract


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dims(value_info: Any) -> list[int | str | None]:
    return [dim.dim_value if dim.HasField("dim_value") else (dim.dim_param or None)
            for dim in value_info.type.tensor_type.shape.dim]


def _check_input(card: ModelCard, graph: Any) -> None:
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    expected = card.onnx_input
    if [i.name for i in inputs] != [expected.name]:
        raise ModelError(f"{card.ref}: ONNX inputs {[i.name for i in inputs]} != card input ['{expected.name}']")
    elem_type = inputs[0].type.tensor_type.elem_type
    if elem_type != _ONNX_DTYPES[expected.dtype]:
        got = onnx.helper.tensor_dtype_to_np_dtype(elem_type) if elem_type else "undefined"
        raise ModelError(f"{card.ref}: ONNX input '{expected.name}' dtype {got} != card dtype {expected.dtype}")
    dims = _dims(inputs[0])
    batch_ok = len(dims) == 2 and (dims[0] is None or isinstance(dims[0], str))
    if not batch_ok or dims[1] != expected.shape[1]:
        raise ModelError(f"{card.ref}: ONNX input '{expected.name}' shape {dims} != card shape "
                         f"[None, {expected.shape[1]}]")


def _check_outputs(card: ModelCard, graph: Any) -> None:
    outputs = {o.name: o for o in graph.output}
    spec = card.outputs
    if spec.score_output not in outputs:
        raise ModelError(f"{card.ref}: score output '{spec.score_output}' not among ONNX outputs {sorted(outputs)}")
    output = outputs[spec.score_output]
    if output.type.tensor_type.elem_type not in _SCORE_DTYPES:
        raise ModelError(f"{card.ref}: ONNX output '{spec.score_output}' is not a float tensor")
    dims = _dims(output)
    rank = 1 if spec.score_column is None else 2
    if len(dims) != rank:
        raise ModelError(f"{card.ref}: ONNX output '{spec.score_output}' has rank {len(dims)}, card needs {rank}")
    if rank == 2 and isinstance(dims[1], int) and dims[1] > 0 and spec.score_column >= dims[1]:
        raise ModelError(f"{card.ref}: score column {spec.score_column} outside output width {dims[1]}")


def check_onnx_against_card(card: ModelCard, onnx_bytes: bytes) -> None:
    """Checksum, input and score output of the ONNX model must match the card."""
    digest = sha256_hex(onnx_bytes)
    if digest != card.onnx_sha256:
        raise ModelError(f"{card.ref}: the ONNX file's sha256 {digest} is not the card's onnx_sha256 "
                         f"{card.onnx_sha256}: the file is corrupt or was replaced")
    try:
        graph = onnx.load_model_from_string(onnx_bytes).graph
    except Exception as exc:  # protobuf raises its own DecodeError family
        raise ModelError(f"{card.ref}: model.onnx is not a valid ONNX model: {exc}") from exc
    _check_input(card, graph)
    _check_outputs(card, graph)


class ModelRegistry:
    """Models stored as ``<root>/<name>/<version>/model.onnx`` + ``model.json``."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else DEFAULT_ROOT

    def directory(self, name: str, version: str) -> Path:
        ref = parse_ref(f"{name}:{version}")
        return self.root / ref.name / ref.version

    def list_models(self) -> list[ModelRef]:
        """Every name/version directory holding both files, sorted by name then version."""
        refs = [ModelRef(card.parent.parent.name, card.parent.name)
                for card in self.root.glob(f"*/*/{CARD_FILE}") if (card.parent / ONNX_FILE).is_file()]
        return sorted(refs, key=lambda ref: (ref.name, _version_key(ref.version), ref.version))

    def latest(self, name: str) -> ModelRef:
        """The newest version of ``name``; optimized builds (``1.0.0+int8``) only when nothing else exists."""
        versions = [ref for ref in self.list_models() if ref.name == name]
        if not versions:
            raise ModelError(f"no model named {name!r} under {self.root}")
        releases = [ref for ref in versions if "+" not in ref.version]
        return (releases or versions)[-1]

    def card(self, ref: ModelRef) -> ModelCard:
        """The card of ``ref`` alone (no ONNX read): what a caller needs to know before loading the model."""
        return load_card(self.directory(ref.name, ref.version) / CARD_FILE)

    def load(self, name: str, version: str | None = None) -> LoadedModel:
        """Load ``name, version``, a ``"name:version"`` ref, or the latest version of ``name``."""
        ref = parse_ref(name) if version is None and ":" in name else (
            ModelRef(name, version) if version is not None else self.latest(name))
        directory = self.directory(ref.name, ref.version)
        if not (directory / ONNX_FILE).is_file():
            raise ModelError(f"model {ref} not found: no {directory / ONNX_FILE}")
        card = self.card(ref)
        if (card.name, card.version) != (ref.name, ref.version):
            raise ModelError(f"model {ref}: card says {card.ref}")
        onnx_bytes = (directory / ONNX_FILE).read_bytes()
        try:
            check_onnx_against_card(card, onnx_bytes)
        except ModelError as exc:
            raise ModelError(f"{exc} ({directory / ONNX_FILE})") from exc
        return LoadedModel(ref=ref, card=card, onnx_bytes=onnx_bytes, directory=directory)


def load_model(ref: str, root: str | Path | None = None) -> LoadedModel:
    """Shortcut: ``load_model("fraud:1.0.0")``."""
    return ModelRegistry(root).load(ref)
