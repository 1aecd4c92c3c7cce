"""A task's model as one ``.onnx`` file (the TorchScript-based exporter, ``dynamo=False``: offline,
and what ONNX Runtime's quantizers expect), and the inputs that file takes.

- Tasks with one tensor input: input ``input``, output ``output``, dynamic batch axis.
- Tasks with dict inputs (transformers): one input per key of the batch dict (``input_ids``,
  ``attention_mask``, ...), dynamic batch and sequence axes, and one output: the field the task's
  ``evaluate`` reads (``task.model_output``, e.g. ``last_hidden_state`` or ``logits``). Computation
  that does not reach it (e.g. BERT's pooler) is not in the file. Inputs the graph does not use
  are dropped by the exporter; ``input_types`` lists the ones it kept.

The helpers take a file as ``load_graph`` parses it (an onnx.ModelProto), so that a caller parses
each file once.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 17
LARGE_BYTES = 1_800_000_000
"""Tensors beyond this go to external data (one ``<file>.data`` beside the ``.onnx``): a protobuf
file cannot exceed 2 GB. torch's exporter decides the same on its own."""
_PER_TOKEN_AXES = {0: "batch", 1: "sequence"}


def export_onnx(module: nn.Module, task, path: Path) -> Path:
    """``module`` (run on ``task``'s inputs) written to ``path``; warnings and exporter prints hidden.
    A model over the protobuf limit, which torch's exporter writes as one file per tensor named
    after the tensor, is re-saved with its tensors in one ``<file>.data`` (``save_onnx``), so that
    two large exports in one folder cannot overwrite each other's tensors."""
    exported, args, inputs, outputs, axes = _export_signature(module, task)
    with tempfile.TemporaryDirectory(prefix="quantbench-export-", dir=Path(path).parent) as tmp:  # large: same disk
        raw = Path(tmp) / "model.onnx"
        with torch.no_grad(), warnings.catch_warnings(), contextlib.redirect_stdout(sys.stderr):
            warnings.simplefilter("ignore")
            torch.onnx.export(exported, args, str(raw), dynamo=False, opset_version=OPSET, input_names=inputs,
                              output_names=outputs, dynamic_axes=axes)
        if len(list(Path(tmp).iterdir())) == 1:  # all tensors inside the file
            shutil.move(raw, path)
        else:
            import onnx

            save_onnx(onnx.load(str(raw)), path)
    return path


@contextlib.contextmanager
def exported(module: nn.Module, task):
    """The model exported to a temporary ``.onnx`` file (the input of ORT's quantizers)."""
    with tempfile.TemporaryDirectory(prefix="quantbench-onnx-") as tmp:
        yield str(export_onnx(module, task, Path(tmp) / "fp32.onnx"))


def load_graph(path):
    """The ``.onnx`` file at ``path`` as an onnx.ModelProto, without the tensors it keeps in external
    data beside it (their entries point there; ``numpy_helper.to_array(t, folder)`` reads one)."""
    import onnx

    return onnx.load(str(path), load_external_data=False)


def is_large(model) -> bool:
    """Whether ``model``'s tensors (inside its file or beside it) exceed ``LARGE_BYTES``."""
    from onnx.external_data_helper import uses_external_data

    inits = model.graph.initializer
    return any(uses_external_data(t) for t in inits) or sum(len(t.raw_data) for t in inits) > LARGE_BYTES


def remove_onnx(path: Path) -> None:
    """Delete ``path`` and its ``<name>.data``, if there: onnx and ORT's quantizers append tensors to an
    existing external-data file, so a file left by an earlier run would grow (and be counted)."""
    for stale in (Path(path), Path(f"{path}.data")):
        stale.unlink(missing_ok=True)


def save_onnx(model, path: Path) -> Path:
    """``model`` (an onnx.ModelProto) to ``path``, its tensors in ``<name>.data`` beside it when large."""
    import onnx

    remove_onnx(path)
    onnx.save_model(model, str(path), save_as_external_data=is_large(model), all_tensors_to_one_file=True,
                    location=f"{Path(path).name}.data", size_threshold=1024)
    return path


def input_types(model) -> dict[str, np.dtype]:
    """Name -> numpy dtype of each input of ``model`` (an onnx.ModelProto), in order."""
    from onnx.helper import tensor_dtype_to_np_dtype

    return {i.name: tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type) for i in model.graph.input}


def to_feeds(batch, types: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """An ORT feed dict from a task batch (a tensor, or a dict of tensors fed by name)."""
    if not isinstance(batch, dict):
        (name,) = types
        batch = {name: batch}
    return {name: np.ascontiguousarray(_numpy(batch[name]), dtype) for name, dtype in types.items()}


class OutputOf(nn.Module):
    """A transformers model called with positional tensors (the batch dict's values, in key
    order) that returns the one output field the task reads."""

    def __init__(self, model: nn.Module, input_names: list[str], field: str):
        super().__init__()
        self.model, self.input_names, self.field = model, input_names, field

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(**dict(zip(self.input_names, inputs))), self.field)


def _export_signature(module: nn.Module, task):
    """(module to export, example args, input names, output names, dynamic axes).
    The exporter restores the exported module's train/eval mode afterwards: it is put in eval
    mode here, so the caller's model is left in eval mode (a fresh wrapper would be in training
    mode and switch dropout back on in the wrapped model)."""
    example = task.example_input
    if not isinstance(example, dict):
        return module.eval(), (example,), ["input"], ["output"], {"input": {0: "batch"}, "output": {0: "batch"}}
    names, field = list(example), task.model_output
    axes = {name: _PER_TOKEN_AXES for name in [*names, field]}
    return OutputOf(module, names, field).eval(), tuple(example.values()), names, [field], axes


def _numpy(value) -> np.ndarray:
    return value.detach().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
