"""ONNX Runtime on CPU: the FP32 model exported to one ``.onnx`` file (see ``onnx_export.py``; for
transformers tasks, named dict inputs and the one output the task reads), then

- ``fp32``: the exported graph as is;
- ``ptq-dynamic`` / ``ptq-static``: ONNX Runtime's own int8 quantizers (``quantize_dynamic``;
  ``quantize_static`` in QDQ format with its calibrators) on the layers with weights
  (MatMul/Gemm/Conv), not on attention's activation x activation products;
- ``rtn`` / ``gptq``: quantbench's packed low-bit weights (the same integers as the torch rows,
  never re-quantized) fed to ``com.microsoft.MatMulNBits`` (see ``matmul_nbits.py``);
- ``qat``: the torch int8 model that QAT converts to, exported to ONNX as QuantizeLinear /
  DequantizeLinear around float ops (its int8 weights and scales as they are).

Each row's kernel names the operators ONNX Runtime runs after its graph optimizations (read from
the optimized graph it writes out: ORT tells which nodes it kept in no other way short of profiling
a run), not just what the file holds. A row parses its ``.onnx`` file once (``load_graph``) for all
it reads there, and the optimized graph once, without its tensors. Sessions use a fixed number of
intra-op threads (torch's thread count, which ``compare`` sets from ``--threads``) and one
inter-op thread.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import logging
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..errors import NotRepresentable, UserError
from ..measure.memory import peak_memory_bytes
from ..tasks.base import batch_rows
from .base import RUNTIMES, Realized, Runner
from .onnx_export import (export_onnx, exported, input_types, is_large, load_graph, remove_onnx, save_onnx,
                          to_feeds)

INSTALL_HINT = "pip install 'quantbench[onnx]'"
_OBSERVER_TO_ORT = {"minmax": "MinMax", "histogram": "Entropy", "percentile": "Percentile"}
_COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "Quantize", "Attention")
_LAYER_OPS = ("MatMul", "Gemm", "Conv")  # the layers (with a weight) that ptq-static quantizes


@RUNTIMES.register("onnxruntime")
@dataclass
class OnnxRuntimeCPU:
    """``accuracy_level`` of MatMulNBits rows: 0 computes in fp32 with the dequantized weights;
    4 quantizes activations to int8 per block (about 4x faster at batch 1 on AVX2, ~0.5% error)."""

    name: str = "onnxruntime"
    accuracy_level: int = 4

    def __post_init__(self):
        if self.accuracy_level not in range(5):
            raise UserError(f"onnxruntime: accuracy_level must be 0..4, got {self.accuracy_level}")

    def unavailable_reason(self) -> str | None:
        missing = [p for p in ("onnxruntime", "onnx") if importlib.util.find_spec(p) is None]
        if missing:
            return f"{' and '.join(missing)} not installed: {INSTALL_HINT}"
        import onnxruntime

        if "CPUExecutionProvider" not in onnxruntime.get_available_providers():
            return f"this onnxruntime build has no CPUExecutionProvider ({onnxruntime.get_available_providers()})"
        return None

    def describe(self) -> str:
        import onnxruntime

        return (f"onnxruntime {onnxruntime.__version__}, CPUExecutionProvider (MLAS); providers here: "
                f"{', '.join(onnxruntime.get_available_providers())}; MatMulNBits accuracy_level {self.accuracy_level}")

    def realize(self, config, fp32: nn.Module, ctx, stem: Path) -> Realized:
        from ..methods import Unsupported

        build = _BUILDERS.get(config.name)
        if build is None:
            raise Unsupported(f"method '{config.name}' has no ONNX Runtime path")
        path = stem.with_suffix(".onnx")
        remove_onnx(path)
        saved = functools.cache(functools.partial(load_graph, path))  # the file, parsed once for all that reads it
        realized = build(self, config, fp32, ctx, path, saved)
        ops = {"run": count_ops_run(path, torch.get_num_threads()), "saved": _op_counts(saved())}
        realized.kernel = f"{realized.kernel}: {', '.join(op for op in ops['run'] if _is_compute(op))}"
        realized.notes.append(f"ONNX Runtime runs {_count_text(ops['run'])} "
                              f"(the file holds {_count_text(ops['saved'])})")
        realized.details.update({"ort_ops_run": ops["run"], "ort_ops_saved": ops["saved"],
                                 "onnx_inputs": list(input_types(saved())),
                                 "ort_threads": torch.get_num_threads(), "ort_version": _ort_version()})
        realized.extra_files = external_data_files(saved(), path.parent)
        if realized.extra_files:
            realized.details["extra_files"] = [str(p) for p in realized.extra_files]
            realized.notes.append(f"tensors in external data beside the .onnx file (over ONNX's 2 GB protobuf "
                                  f"limit): {', '.join(p.name for p in realized.extra_files)}; counted in the size")
        return realized

    def load(self, path: Path, task) -> Runner:
        return OrtRunner(make_session(path, torch.get_num_threads()))

    def peak_memory(self, path: Path, task, batch_size: int, threads: int) -> int | None:
        feeds = to_feeds(task.latency_input(batch_size), input_types(load_graph(path)))
        inputs = {name: [list(a.shape), a.dtype.name] for name, a in feeds.items()}
        return peak_memory_bytes(path, inputs, threads, imports=_ORT_IMPORTS, load_and_run=_ORT_LOAD_AND_RUN)


# --- one builder per method: each writes ``path``; ``saved()`` gives that file parsed (once) ---------


def _fp32(rt, config, fp32, ctx, path, saved) -> Realized:
    start = time.perf_counter()
    export_onnx(fp32, ctx.task, path)
    return Realized(path, "onnxruntime CPU fp32 (MLAS)", 0.0, [], {"onnx_export_seconds": time.perf_counter() - start})


def _ptq_dynamic(rt, config, fp32, ctx, path, saved) -> Realized:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with exported(fp32, ctx.task) as source:
        graph = load_graph(source)
        start = time.perf_counter()
        with quiet_ort_quantization():
            quantize_dynamic(source, path, weight_type=QuantType.QInt8, per_channel=config.per_channel,
                             reduce_range=_reduce_range(), op_types_to_quantize=["MatMul", "Gemm"],
                             nodes_to_exclude=_unweighted_nodes(graph), use_external_data_format=is_large(graph))
        seconds = time.perf_counter() - start
    notes = [f"ONNX Runtime quantize_dynamic: int8 weights ({'per channel' if config.per_channel else 'per tensor'}), "
             f"uint8 activations quantized per batch at run time; linear layers only (MatMul/Gemm with a weight; "
             f"not the activation x activation products of attention), as the method defines" + _reduce_range_note()]
    return Realized(path, "onnxruntime CPU int8 dynamic (MLAS)", seconds, notes)


def _ptq_static(rt, config, fp32, ctx, path, saved) -> Realized:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    calib = ctx.task.calibration_inputs(config.calib_samples, config.calib_batch)
    method = _OBSERVER_TO_ORT[config.observer]
    extra = {"CalibStridedMinMax": 1}  # one batch at a time (see _CalibrationReader)
    if config.observer == "percentile":
        extra["CalibPercentile"] = config.percentile
    with exported(fp32, ctx.task) as source:
        graph = load_graph(source)
        start = time.perf_counter()
        with quiet_ort_quantization():
            quantize_static(source, path, _CalibrationReader(input_types(graph), calib), quant_format=QuantFormat.QDQ,
                            per_channel=config.per_channel, reduce_range=_reduce_range(),
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, method), extra_options=extra,
                            op_types_to_quantize=list(_LAYER_OPS),
                            nodes_to_exclude=_unweighted_nodes(graph), use_external_data_format=is_large(graph))
        seconds = time.perf_counter() - start
    mapping = {"minmax": "MinMax", "histogram": "Entropy (KL divergence; torch's histogram observer minimizes L2 "
                                                "error instead, so the ranges differ)",
               "percentile": f"Percentile ({config.percentile})"}[config.observer]
    notes = [f"ONNX Runtime quantize_static, QDQ format, calibrated on {sum(map(batch_rows, calib))} training samples; "
             f"observer {config.observer} -> ORT CalibrationMethod.{mapping}; int8 weights "
             f"({'per channel' if config.per_channel else 'per tensor'}), uint8 activations; layers with weights "
             f"only (MatMul/Gemm/Conv)" + _reduce_range_note()]
    return Realized(path, "onnxruntime CPU int8 static QDQ (MLAS)", seconds, notes)


def _qat(rt, config, fp32, ctx, path, saved) -> Realized:
    quantized, seconds = ctx.quantize(config, fp32)
    export_onnx(quantized.module, ctx.task, path)
    notes = quantized.notes + ["the torch int8 model (fine-tuned, converted) exported as QuantizeLinear/"
                               "DequantizeLinear around float ops: its int8 weights, scales and zero points as is"]
    return Realized(path, "onnxruntime CPU int8 QDQ from torch QAT (MLAS)", seconds, notes, quantized.details)


def _lowbit(rt, config, fp32, ctx, path, saved) -> Realized:
    from ..methods import Unsupported
    from . import matmul_nbits

    quantized, seconds = ctx.quantize(config, fp32)
    try:
        weights = {name: matmul_nbits.pack_lowbit(lw) for name, lw in quantized.packed.items()}
    except NotRepresentable as e:
        raise Unsupported(f"{config.label()} on onnxruntime: {e}") from None
    absent = _write_nbits_graph(quantized.module, weights, ctx.task, rt.accuracy_level, path)
    weights = matmul_nbits.read_nbits_weights(saved(), path.parent)  # what the file holds, checked below
    _check_same_integers({name: lw for name, lw in quantized.packed.items() if name not in absent}, weights)
    details = quantized.details | {"ort_accuracy_level": rt.accuracy_level, "same_integers_checked": True,
                                   "nbits_block_sizes": sorted({w.block_size for w in weights.values()}),
                                   "nbits_layers_not_in_graph": absent}
    notes = quantized.notes + _nbits_notes(config.bits, weights, rt.accuracy_level) + _absent_notes(absent, ctx.task)
    kernel = f"onnxruntime CPU MatMulNBits int{config.bits} accuracy_level {rt.accuracy_level} (MLAS)"
    return Realized(path, kernel, seconds, notes, details)


def _write_nbits_graph(module: nn.Module, weights: dict, task, accuracy_level: int, path: Path) -> list[str]:
    """Export ``module``, put MatMulNBits on ``weights`` in place of their layers' MatMul/Gemm, save
    to ``path``; returns the quantized layers the exported graph does not contain."""
    import onnx

    from . import matmul_nbits

    with exported(module, task) as source:
        model = onnx.load(source)
    dense = {name: _weight_out_in(module, name) for name in weights}
    replaced = matmul_nbits.replace_linear_nodes(model, weights, dense, accuracy_level)
    if not replaced:
        raise RuntimeError("none of the quantized layers is in the exported ONNX graph")
    save_onnx(model, path)
    return [name for name in weights if name not in replaced]


def _absent_notes(absent: list[str], task) -> list[str]:
    if not absent:
        return []
    output = getattr(task, "model_output", "the model's output")
    return [f"quantized but not in the ONNX file: {', '.join(absent)} (their output does not reach {output}, "
            f"so the exporter leaves them out)"]


def _nbits_notes(bits: int, weights: dict, accuracy_level: int) -> list[str]:
    blocks = "/".join(map(str, sorted({w.block_size for w in weights.values()})))
    level = {0: "0: fp32 compute on dequantized weights", 4: "4: activations quantized to int8 per block"}
    notes = [f"MatMulNBits fed with quantbench's {bits}-bit codes, zero points and fp16-rounded scales as they are "
             f"(read back from the saved file, unpacked and checked equal); block size {blocks}; "
             f"accuracy_level {level.get(accuracy_level, accuracy_level)}", _nbits_size_note(weights)]
    permuted = [name for name, w in weights.items() if w.perm is not None]
    if permuted:
        notes.append(f"act-order groups: a Gather puts the input columns of {', '.join(permuted)} in group order "
                     f"before MatMulNBits (same integers, permuted along K)")
    return notes


_BUILDERS = {"fp32": _fp32, "ptq-dynamic": _ptq_dynamic, "ptq-static": _ptq_static, "qat": _qat,
             "rtn": _lowbit, "gptq": _lowbit}


# --- helpers ----------------------------------------------------------------------------------


def make_session(path: Path, threads: int, optimized_path: Path | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if optimized_path is not None:
        options.optimized_model_filepath = str(optimized_path)
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name",
                                         f"{optimized_path.name}.data")
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def count_ops_run(path: Path, threads: int) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime runs after optimizing the file at ``path``: the
    optimized graph it writes out, its tensors in a file beside it so that only the graph is parsed."""
    with tempfile.TemporaryDirectory(prefix="quantbench-onnx-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        make_session(path, threads, optimized)
        return _op_counts(load_graph(optimized))


def external_data_files(model, folder: Path) -> list[Path]:
    """Files in ``folder`` that hold tensors of ``model`` (parsed from a file there; empty: all
    tensors are in the .onnx file)."""
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    names = {ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)}
    return [Path(folder) / n for n in sorted(names)]


class OrtRunner:
    """Feeds a task batch to an ORT session as numpy: a tensor, or a dict of tensors fed by input
    name (the session's inputs, with their types). A tensor batch gives the first output as a tensor;
    a dict batch gives an object with one tensor attribute per output, as transformers models do
    (``run(batch).last_hidden_state``)."""

    def __init__(self, session):
        self.session, self.types = session, _session_input_types(session)
        self.outputs = [o.name for o in session.get_outputs()]

    def __call__(self, batch):
        values = [torch.from_numpy(v) for v in self.session.run(self.outputs, to_feeds(batch, self.types))]
        if isinstance(batch, dict):
            return SimpleNamespace(**dict(zip(self.outputs, values)))
        return values[0]


def _session_input_types(session) -> dict[str, np.dtype]:
    """Name -> numpy dtype of each input of an ORT session, in order (ORT names types
    ``tensor(float)``, ``tensor(int64)``: ONNX's element types in lower case)."""
    from onnx import TensorProto
    from onnx.helper import tensor_dtype_to_np_dtype

    return {i.name: tensor_dtype_to_np_dtype(TensorProto.DataType.Value(i.type.removeprefix("tensor(")
                                                                         .removesuffix(")").upper()))
            for i in session.get_inputs()}


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


class _CalibrationReader:
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


def _unweighted_nodes(model) -> list[str]:
    """Names of the MatMul/Gemm/Conv nodes of ``model`` whose second operand is not a weight (an
    initializer): the activation x activation products of attention, which the int8 methods leave
    in float (they quantize layers with weights)."""
    graph = model.graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type in _LAYER_OPS and n.input[1] not in weights]


def _reduce_range() -> bool:
    """7-bit weights on x86 without VNNI: ORT's u8s8 kernels use VPMADDUBSW, which can saturate."""
    from ..env import cpu_flags

    flags = cpu_flags()
    return "avx2" in flags and not flags & {"avx512_vnni", "avx_vnni"}


def _reduce_range_note() -> str:
    if not _reduce_range():
        return ""
    return "; 7-bit weights (reduce_range: no VNNI on this CPU, u8s8 products could saturate)"


def _check_same_integers(packed: dict, weights: dict) -> None:
    """The MatMulNBits tensors, unpacked, hold exactly the LowBitWeight's codes, zeros and scales."""
    from .matmul_nbits import block_groups, unpack_lowbit

    if set(packed) != set(weights):
        raise AssertionError(f"the file's MatMulNBits layers {sorted(weights)} are not the quantized ones "
                             f"{sorted(packed)}")
    for name, lw in packed.items():
        w = weights[name]
        codes, zeros, scales = unpack_lowbit(w)
        groups = block_groups(w.K, w.block_size, lw.group_size)
        same = (np.array_equal(codes, lw.q.numpy()) and np.array_equal(zeros, lw.zeros.numpy()[:, groups])
                and np.array_equal(scales, lw.scales.float().numpy()[:, groups]))
        if not same:
            raise AssertionError(f"layer {name}: MatMulNBits tensors do not hold the quantbench integers")




def _weight_out_in(module: nn.Module, name: str) -> np.ndarray:
    from ..methods.lowbit.layers import get_weight_out_in

    return get_weight_out_in(module.get_submodule(name)).detach().float().numpy()


def _nbits_size_note(weights: dict) -> str:
    total = sum(w.nbytes for w in weights.values())
    codes = sum(w.B.nbytes for w in weights.values())
    fp32 = sum(4 * w.N * w.K for w in weights.values())
    return (f"quantized layers: {total / 1e6:.3f} MB in MatMulNBits tensors ({codes / 1e6:.3f} MB codes) vs "
            f"{fp32 / 1e6:.3f} MB fp32 ({fp32 / total:.1f}x smaller)")


def _op_counts(model) -> dict[str, int]:
    counts = Counter(n.op_type for n in model.graph.node if n.op_type not in ("Constant", "Identity"))
    return dict(sorted(counts.items()))


def _is_compute(op: str) -> bool:
    """Operators named in the kernel string (the rest are listed in the row's notes)."""
    return any(word in op for word in _COMPUTE_OPS)


def _count_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{op} x{n}" for op, n in counts.items()) or "no operators"


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


_ORT_IMPORTS = """import numpy as np, onnxruntime
from quantbench.runtimes.onnxruntime_cpu import make_session
x = {name: np.ones(dims, dtype) for name, (dims, dtype) in shape.items()}"""

_ORT_LOAD_AND_RUN = """make_session(path, threads).run(None, x)"""
"""The probe opens its session exactly as the timed rows do (``make_session``)."""
