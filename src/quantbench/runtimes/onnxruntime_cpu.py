"""ONNX Runtime on CPU: the FP32 model exported to one ``.onnx`` file (see ``kernels/onnx_export.py``;
for transformers tasks, named dict inputs and the one output the task reads), then per format:

- dense: the exported graph as is;
- int8 written by ONNX Runtime's own quantizers (the int8 methods' ONNX Runtime handlers: dynamic, or
  static QDQ with its calibrators): that graph as is;
- int8 of torch.ao (a converted torch model, static activations): exported to ONNX as
  QuantizeLinear / DequantizeLinear around float ops (its int8 weights and scales as they are);
- low-bit weight-only: quantbench's packed low-bit weights (the same integers as the torch rows,
  never re-quantized) fed to ``com.microsoft.MatMulNBits`` (see ``kernels/matmul_nbits.py``), float
  zero points split into integer ones and a per-group correction after it, a per-input-channel scale
  as a Div before it.

Each row's kernel names the operators ONNX Runtime runs after its graph optimizations (read from
the optimized graph it writes out: ORT tells which nodes it kept in no other way short of profiling
a run), not just what the file holds. A row parses its ``.onnx`` file once (``load_graph``) for all
it reads there, and the optimized graph once, without its tensors. Sessions use a fixed number of
intra-op threads (torch's thread count, which ``compare`` sets from ``--threads``) and one
inter-op thread.
"""
from __future__ import annotations

import functools
import importlib.util
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..formats import DenseFormat, Float8Format, Int8Format, LowBitFormat
from ..formats.dense import is_dense_bf16
from ..formats.layout import get_weight_out_in
from ..formats.lowbit_file import restore_released_weights
from ..kernels import matmul_nbits
from ..kernels.matmul_nbits import block_groups, split_float_zeros, unpack_lowbit
from ..kernels.onnx_export import export_onnx, exported, input_types, load_graph, remove_onnx, save_onnx, to_feeds
from ..measure.memory import peak_memory_bytes
from .base import RUNTIMES, Realized, Runner

INSTALL_HINT = "pip install 'quantbench[onnx]'"
_COMPUTE_OPS = ("MatMul", "Gemm", "Conv", "Quantize", "Attention")


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

    def supports(self, quantized) -> str | None:
        """Why ``quantized``'s format cannot run here, or None: decided from the format alone."""
        fmt = quantized.format
        if isinstance(fmt, Float8Format):
            return "float8: ONNX Runtime's CPU provider has no float8 matmul kernel"
        if is_dense_bf16(fmt):
            return ("dense bfloat16: ONNX Runtime's CPU provider has no bfloat16 MatMul, Gemm or Relu kernel (checked "
                    "on onnxruntime 1.32: a session refuses such a graph, NOT_IMPLEMENTED); its only bf16 math is an "
                    "Arm64 fast-math option for fp32 graphs")
        if isinstance(fmt, DenseFormat) and fmt.dtype != "float32":
            return f"dense {fmt.dtype}: quantbench exports dense models to ONNX in float32 only"
        if isinstance(fmt, Int8Format) and fmt.source not in ("onnxruntime", "torch.ao"):
            return f"int8 made by {fmt.source} has no ONNX form"
        if isinstance(fmt, Int8Format) and fmt.source == "torch.ao" and fmt.activations == "dynamic":
            return "torch.ao's dynamic int8 modules do not export to ONNX; ONNX Runtime quantizes dynamically itself"
        if isinstance(fmt, LowBitFormat):
            return next((f"layer {name}: {why}" for name, lw in fmt.layers.items()
                         if (why := matmul_nbits.nbits_refusal(lw))), None)
        return None

    def realize(self, quantized, task, stem: Path) -> Realized:
        """Write ``quantized`` (supported here) as an ``.onnx`` file (unless a runtime-native quantizer wrote
        it already) and name the operators that run it."""
        path = quantized.graph or stem.with_suffix(".onnx")
        saved = functools.cache(functools.partial(load_graph, path))  # the file, parsed once for all that reads it
        realized = _write(self, quantized, task, path, saved)
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


# --- one writer per format: each writes ``path``; ``saved()`` gives that file parsed (once) ---------


def _write(rt, quantized, task, path: Path, saved) -> Realized:
    fmt, notes, details = quantized.format, list(quantized.notes), dict(quantized.details)
    if quantized.graph is not None:  # written by ONNX Runtime's own quantizer
        return Realized(path, f"onnxruntime CPU int8 {_int8_kind(fmt)} (MLAS)", notes, details, compute_dtype="int8")
    remove_onnx(path)
    if isinstance(fmt, LowBitFormat):
        return _lowbit(rt, quantized, task, path, saved)
    start = time.perf_counter()
    export_onnx(quantized.module, task, path)
    details["onnx_export_seconds"] = time.perf_counter() - start
    if isinstance(fmt, Int8Format):
        notes.append("the torch.ao int8 model exported as QuantizeLinear/DequantizeLinear around float ops: its int8 "
                     "weights, scales and zero points as is")
        return Realized(path, "onnxruntime CPU int8 QDQ from a torch.ao int8 model (MLAS)", notes, details,
                        compute_dtype="int8")
    return Realized(path, "onnxruntime CPU fp32 (MLAS)", notes, details)


def _int8_kind(fmt: Int8Format) -> str:
    return "dynamic" if fmt.activations == "dynamic" else "static QDQ"


def _lowbit(rt, quantized, task, path: Path, saved) -> Realized:
    fmt = quantized.format
    weights = {name: matmul_nbits.pack_lowbit(lw) for name, lw in fmt.layers.items()}
    restored = restore_released_weights(quantized.module, fmt.layers)  # the export traces dense layers
    absent = _write_nbits_graph(quantized.module, weights, task, rt.accuracy_level, path)
    weights = matmul_nbits.read_nbits_weights(saved(), path.parent)  # what the file holds, checked below
    _check_same_integers({name: lw for name, lw in fmt.layers.items() if name not in absent}, weights)
    details = quantized.details | {"ort_accuracy_level": rt.accuracy_level, "same_integers_checked": True,
                                   "nbits_block_sizes": sorted({w.block_size for w in weights.values()}),
                                   "nbits_layers_not_in_graph": absent}
    bits = "/".join(map(str, fmt.bits))
    notes = quantized.notes + _nbits_notes(bits, weights, rt.accuracy_level) + _absent_notes(absent, task)
    notes += [f"the ONNX export traces a dense model: {len(restored)} quantized layers were dequantized again "
              "for it (one more dense copy of them in memory while exporting)"] if restored else []
    kernel = f"onnxruntime CPU MatMulNBits int{bits} accuracy_level {rt.accuracy_level} (MLAS)"
    return Realized(path, kernel, notes, details, compute_dtype="int8" if rt.accuracy_level == 4 else "float32")


def _write_nbits_graph(module: nn.Module, weights: dict, task, accuracy_level: int, path: Path) -> list[str]:
    """Export ``module``, put MatMulNBits on ``weights`` in place of their layers' MatMul/Gemm, save
    to ``path``; returns the quantized layers the exported graph does not contain."""
    import onnx

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


def _nbits_notes(bits: str, weights: dict, accuracy_level: int) -> list[str]:
    blocks = "/".join(map(str, sorted({w.block_size for w in weights.values()})))
    level = {0: "0: fp32 compute on dequantized weights", 4: "4: activations quantized to int8 per block"}
    notes = [f"MatMulNBits fed with quantbench's {bits}-bit codes, zero points and fp16-rounded scales as they are "
             f"(read back from the saved file, unpacked and checked equal); block size {blocks}; "
             f"accuracy_level {level.get(accuracy_level, accuracy_level)}", _nbits_size_note(weights)]
    permuted = [name for name, w in weights.items() if w.perm is not None]
    if permuted:
        notes.append(f"act-order groups: a Gather puts the input columns of {', '.join(permuted)} in group order "
                     f"before MatMulNBits (same integers, permuted along K)")
    scaled = [name for name, w in weights.items() if w.input_scale is not None]
    if scaled:
        notes.append(f"per-input-channel scales applied at run time: a Div before MatMulNBits in {', '.join(scaled)}")
    floating = [name for name, w in weights.items() if w.zero_correction is not None]
    if floating:
        notes.append(f"float zero points split exactly into MatMulNBits' integer zero points and a per-group "
                     f"correction (group sums of the input x scale x fractional zero, subtracted after it): "
                     f"{', '.join(floating)}")
    return notes


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
    (``run(batch).last_hidden_state``). Its calls run on the session's own thread pool."""

    own_threads = True

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


def _check_same_integers(packed: dict, weights: dict) -> None:
    """The MatMulNBits tensors, unpacked, hold exactly the LowBitWeight's codes, zeros and scales (and
    its input scale; float zeros as their integer part plus the correction ``split_float_zeros`` gives)."""
    if set(packed) != set(weights):
        raise AssertionError(f"the file's MatMulNBits layers {sorted(weights)} are not the quantized ones "
                             f"{sorted(packed)}")
    for name, lw in packed.items():
        if not _holds_exactly(weights[name], lw):
            raise AssertionError(f"layer {name}: MatMulNBits tensors do not hold the quantbench integers")


def _holds_exactly(w, lw) -> bool:
    codes, zeros, scales = unpack_lowbit(w)
    groups = block_groups(w.K, w.block_size, lw.group_size)
    integer_zeros, correction = split_float_zeros(lw) if lw.float_zeros else (lw.zeros.numpy(), None)
    input_scale = None if lw.input_scale is None else lw.input_scale.float().numpy()
    return (np.array_equal(codes, lw.q.numpy()) and np.array_equal(zeros, integer_zeros[:, groups])
            and np.array_equal(scales, lw.scales.float().numpy()[:, groups])
            and _same_or_both_none(w.zero_correction, correction) and _same_or_both_none(w.input_scale, input_scale)
            and (correction is None or np.array_equal(w.group_of_column, lw.g_idx.numpy())))


def _same_or_both_none(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.array_equal(a, b))


def _weight_out_in(module: nn.Module, name: str) -> np.ndarray:
    return get_weight_out_in(module.get_submodule(name)).detach().float().numpy()


def _nbits_size_note(weights: dict) -> str:
    one_hot = {w.group_of_column.tobytes(): 4 * w.K * (int(w.group_of_column.max()) + 1)
               for w in weights.values() if w.group_of_column is not None}  # shared by layers with the same groups
    total = sum(w.nbytes for w in weights.values()) + sum(one_hot.values())
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
