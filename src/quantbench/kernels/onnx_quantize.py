"""Plumbing for ONNX Runtime's own int8 quantizers (``onnxruntime.quantization``), which the int8
methods' ONNX Runtime handlers call: which nodes they quantize, calibration batches as ORT reads
them, the reduce-range rule of this CPU, and keeping their logging away from the user."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings

import numpy as np

from ..env import cpu_flags
from pathlib import Path

from .onnx_export import remove_onnx, to_feeds

LAYER_OPS = ("MatMul", "Gemm", "Conv")  # the layers (with a weight) that the int8 methods quantize


@contextlib.contextmanager
def quiet_ort_quantization():
    """Hide the advice ORT's quantizers log on the root logger ('consider pre-processing')."""
    root = logging.getLogger()

    def from_ort(record: logging.LogRecord) -> bool:
        return "onnxruntime" not in record.pathname

    root.addFilter(from_ort)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # calibration progress prints
            warnings.simplefilter("ignore")
            yield
    finally:
        root.removeFilter(from_ort)


class CalibrationReader:
    """ORT's CalibrationDataReader protocol over the task's calibration batches: ``get_next`` until
    None, within the range ``set_range`` chose. With ``CalibStridedMinMax=1`` ORT's calibrators
    (all of them, despite the name) collect one batch per range and merge the ranges / histograms:
    one batch of activations in memory at a time, and batches may differ in shape (text batches
    padded to their own longest sentence; a smaller last batch), which ORT cannot stack."""

    def __init__(self, types: dict[str, np.dtype], batches: list):
        self._batches = [to_feeds(b, types) for b in batches]
        self.set_range(0, len(self._batches))

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._feeds = iter(self._batches[start_index:end_index])

    def get_next(self):
        return next(self._feeds, None)


def fresh_onnx_path(stem: Path) -> Path:
    """``stem``.onnx, with the files an earlier run left there (graph and external data) removed."""
    path = stem.with_suffix(".onnx")
    remove_onnx(path)
    return path


def unweighted_nodes(model) -> list[str]:
    """Names of the MatMul/Gemm/Conv nodes of ``model`` whose second operand is not a weight (an
    initializer): the activation x activation products of attention, which the int8 methods leave
    in float (they quantize layers with weights)."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type in LAYER_OPS and n.input[1] not in weights]


def reduce_range() -> bool:
    """7-bit weights on x86 without VNNI: ORT's u8s8 kernels use VPMADDUBSW, which can saturate."""
    flags = cpu_flags()
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"}


def reduce_range_note() -> str:
    if not reduce_range():
        return ""
    return "; 7-bit weights (reduce_range: no VNNI on this CPU, u8s8 products could saturate)"
