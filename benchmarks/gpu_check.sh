#!/usr/bin/env bash
# GPU check of the scoring runtime: both demo models on TensorRT, CUDA and CPU, scores compared with
# the CPU's, rows/s at batch 1..4096, one table (+ $OUT/gpu_check.json). Fits in 8 minutes.
#
# Run from anywhere on a GPU machine:   benchmarks/gpu_check.sh
# Python: $PYTHON, else .venv/bin/python, else python3. It needs the package's dependencies and
# onnxruntime-gpu (`pip install -e '.[gpu]'`, after `pip uninstall onnxruntime`: the CPU and GPU
# wheels install the same module and must not both be present).
#
# A machine without network (the lent GPU machines): carry the wheels in the tree under
# $STREAMSCORE_WHEELS (default shared/wheels). A wheel over the 64 MiB a call carries (onnxruntime-gpu
# is ~250 MB) may be split with `split -b 60m X.whl X.whl.part-` and carried part by part while the
# machine stays warm; this script joins *.whl.part-* back and installs every wheel there with
# --no-index. Not yet tried on a GPU machine: no GPU was lent when this was written.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${PYTHON:-}" ]]; then py=$PYTHON; elif [[ -x .venv/bin/python ]]; then py=.venv/bin/python; else py=python3; fi
wheels=${STREAMSCORE_WHEELS:-shared/wheels}
if [[ -d $wheels ]]; then
    for first in "$wheels"/*.whl.part-aa; do
        [[ -e $first ]] || continue
        whole=${first%.part-aa}
        [[ -e $whole ]] || cat "$whole".part-* > "$whole"
    done
    if compgen -G "$wheels/*.whl" > /dev/null; then
        "$py" -m pip uninstall -y -q onnxruntime 2>/dev/null || true
        "$py" -m pip install -q --no-index --find-links "$wheels" "$wheels"/*.whl
    fi
fi
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
export PYTHONUNBUFFERED=1 STREAMSCORE_LOG_LEVEL=${STREAMSCORE_LOG_LEVEL:-warning}
exec timeout 470 "$py" -m benchmarks.gpu_check "$@"
