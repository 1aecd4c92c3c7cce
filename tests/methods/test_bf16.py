"""The bf16 baseline: every weight in bfloat16, run in bf16 by each runtime that can (torch-cpu natively
where the CPU has AVX512-BF16 or AMX, CUDA on sm80+), and refused with its reason where it cannot (ONNX
Runtime's CPU provider). The row names the host's bf16 path, read from the CPU's flags."""
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.config import make_config
from quantbench.errors import Unsupported
from quantbench.formats import DenseFormat
from quantbench.kernels.cpu_dense import bf16_cpu_path
from quantbench.kernels.cuda_capability import Target
from quantbench.methods import Context
from quantbench.methods.bf16 import bfloat16_copy, cast_to_bf16
from quantbench.pipeline import measure_method, realize_row
from quantbench.runtimes import RUNTIMES
from quantbench.runtimes import cuda as cuda_runtime
from quantbench.runtimes.cuda import CudaRunner, TorchCUDA, held_target, load_module
from quantbench.runtimes.torch_cpu import host_bf16_path
from quantbench.spec import CompareSpec
from quantbench.tasks import build_task
from quantbench.tasks.base import CLASSIFICATION_METHODS, PRETRAINED_METHODS

SPEC = CompareSpec(batch_sizes=(1, 8), memory=False, progress=False)


@pytest.mark.parametrize("flags, machine, kernel, native", [
    ({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}, "x86_64", "torch bf16 dense (oneDNN, AMX-BF16)", True),
    ({"avx2", "avx512f", "avx512_bf16"}, "x86_64", "torch bf16 dense (oneDNN, AVX512-BF16)", True),
    ({"avx2", "avx512f", "avx512_vnni"}, "x86_64", "no native bf16 on this CPU (AVX-512 without BF16)", False),
    ({"avx2", "fma"}, "x86_64", "no native bf16 on this CPU (AVX2 only): emulated, expect slower than fp32", False),
    (set(), "x86_64", "no native bf16 on this CPU (no AVX2 found)", False),
    ({"asimd", "bf16"}, "aarch64", "torch bf16 dense (oneDNN/ACL, Arm BF16)", True),
    ({"asimd"}, "aarch64", "no native bf16 on this CPU (Arm without BF16)", False),
])
def test_the_kernel_name_comes_from_the_cpu_flags(flags, machine, kernel, native):
    path = bf16_cpu_path(flags, machine)
    assert path.kernel.startswith(kernel) and path.native is native


def test_the_cast_makes_new_bf16_tensors_and_leaves_the_model_as_it_is():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10), nn.BatchNorm1d(10))
    model[1].weight = model[0].weight  # tied, as embeddings and heads are
    model.register_buffer("constant", torch.ones(3), persistent=False)
    before = {k: (v.dtype, v.data_ptr(), v.clone()) for k, v in model.state_dict().items()}
    quantized = cast_to_bf16(make_config("bf16", {}), model, None)
    copy = quantized.module
    assert quantized.format == DenseFormat(dtype="bfloat16")
    for key, (dtype, ptr, value) in before.items():  # the model: untouched
        now = model.state_dict()[key]
        assert now.dtype == dtype and now.data_ptr() == ptr and torch.equal(now, value), key
    for key, tensor in copy.state_dict().items():  # the copy: new bf16 tensors (integer buffers as they were)
        assert tensor.dtype == (torch.bfloat16 if before[key][0].is_floating_point else before[key][0]), key
        assert tensor.data_ptr() != before[key][1], key
    assert copy[1].weight is copy[0].weight and not copy[0].weight.requires_grad
    assert copy.constant.dtype == torch.float32 and "constant" in quantized.notes[0]
    assert torch.equal(bfloat16_copy(model)[1].bias, model[1].bias.to(torch.bfloat16))


def _rows(task, model, runtime_name, tmp_path, methods=("fp32", "bf16")):
    ctx, runtime = Context(task, progress=False), RUNTIMES.get(runtime_name)()
    reference = task.reference(model)
    return {m: measure_method(make_config(m, {}), model, ctx, runtime, reference, SPEC, tmp_path) for m in methods}


def _check_bf16_row(fp32, bf16, run_mode):
    assert bf16.status == "ok", (bf16.error, bf16.details.get("traceback"))
    assert bf16.kernel == f"{host_bf16_path().kernel}; {run_mode}" and "bf16" in bf16.kernel
    assert bf16.details["compute_dtype"] == "bfloat16"
    assert 0.45 < bf16.size_bytes / fp32.size_bytes < 0.55  # 2 bytes a weight, not 4
    assert bf16.latency and all(lat.median_ms > 0 for lat in bf16.latency)


def test_a_bf16_row_on_the_tabular_task(mlp, tmp_path):
    """Measured (digits MLP 64-256-256-10): accuracy 0.972 both, agreement 1.0, 174 kB vs 344 kB."""
    task, model = mlp
    rows = _rows(task, model, "torch-cpu", tmp_path)
    fp32, bf16 = rows["fp32"], rows["bf16"]
    _check_bf16_row(fp32, bf16, "frozen TorchScript")
    assert abs(bf16.quality - fp32.quality) <= 0.02 and bf16.agreement >= 0.97
    assert any("casts its input to bf16" in note for note in bf16.notes)
    assert next(model.parameters()).dtype == torch.float32  # the fp32 model that later rows quantize


def test_a_bf16_row_on_a_tiny_llama_keeps_its_tensors_bf16(tiny_llama_dir, tmp_path):
    """Random weights: perplexity is about the vocabulary size, so next-token agreement with fp32 (4 x 31
    tokens) is the sharp signal. Measured: perplexity within 0.01%, agreement 0.98."""
    task = build_task("lm", model=tiny_llama_dir, seq_len=32, eval_samples=4)
    rows = _rows(task, task.pretrained, "torch-cpu", tmp_path)
    fp32, bf16 = rows["fp32"], rows["bf16"]
    _check_bf16_row(fp32, bf16, "eager")
    assert abs(bf16.quality / fp32.quality - 1) < 0.01 and bf16.agreement > 0.9
    runtime = RUNTIMES.get("torch-cpu")()
    realized = realize_row(make_config("bf16", {}), task.pretrained, Context(task, progress=False), runtime,
                           tmp_path / "again")
    assert realized.path.suffix == ".safetensors"
    run = runtime.load(realized.path, task)
    assert {p.dtype for p in run.module.parameters()} == {torch.bfloat16}
    assert run.module.model.rotary_emb.inv_freq.dtype == torch.float32  # a computed constant, as HF keeps it


def test_onnxruntime_says_why_it_cannot_run_bf16(mlp, tmp_path):
    runtime = RUNTIMES.get("onnxruntime")()
    if runtime.unavailable_reason():
        pytest.skip(runtime.unavailable_reason())
    task, model = mlp
    row = _rows(task, model, "onnxruntime", tmp_path, methods=("bf16",))["bf16"]
    assert row.status == "unsupported" and "CPU provider has no bfloat16 MatMul" in row.error


class _StandInCUDA(TorchCUDA):
    """The cuda runtime's code aimed at the CPU, pretending a GPU's capability."""

    def __init__(self, target: Target):
        super().__init__()
        self._target = target

    def target(self) -> Target:
        return self._target


def _stand_in(dtype: torch.dtype, capability=(9, 0)) -> Target:
    return Target(torch.device("cpu"), dtype, capability, cuda_runtime.torchao_version(), "CPU stand-in")


@pytest.mark.parametrize("dtype, note", [(torch.float16, "while this runtime's other rows compute in float16"),
                                         (torch.bfloat16, "the same computation as this runtime's fp32 row")])
def test_cuda_runs_a_bf16_row_in_bf16_whatever_its_dtype(dtype, note, mlp, tmp_path):
    task, model = mlp
    target = _stand_in(dtype)
    realized = realize_row(make_config("bf16", {}), model, Context(task, progress=False), _StandInCUDA(target),
                           tmp_path / "artifact")
    assert realized.kernel == "torch CUDA bf16 dense (cuBLAS)" and realized.compute_dtype == "bfloat16"
    assert any(note in n for n in realized.notes)
    module = load_module(realized.path, task, target)
    run = CudaRunner(module, held_target(module, target))
    assert run.target.dtype == torch.bfloat16 and {p.dtype for p in module.parameters()} == {torch.bfloat16}
    x = task.splits.x_test
    out = run(x)
    with torch.no_grad():
        assert out.dtype == torch.float32 and (out.argmax(1) == model(x).argmax(1)).float().mean() > 0.97


def test_cuda_refuses_bf16_before_sm80(mlp, tmp_path):
    task, model = mlp
    v100 = replace(_stand_in(torch.float16), capability=(7, 0))
    with pytest.raises(Unsupported, match="bf16 dense on cuda: .* needs sm80\\+, this GPU is sm70"):
        realize_row(make_config("bf16", {}), model, Context(task, progress=False), _StandInCUDA(v100),
                    Path(tmp_path) / "artifact")


def test_bf16_is_listed_next_to_fp32_for_pretrained_models_only():
    assert PRETRAINED_METHODS.split(",")[:2] == ["fp32", "bf16"]
    assert "bf16" not in CLASSIFICATION_METHODS.split(",")  # the default compare is unchanged
