"""The cuda runtime: capability logic, quantbench's integers in tinygemm's layout (checked with plain
torch and with torch's CPU build of the same kernel), the runtime's artifacts run on a CPU stand-in
target, the clear error on a machine without a GPU, and the GPU check's dry run. Tests marked
``cuda`` need an NVIDIA GPU and skip without one."""
import importlib.util
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.pipeline import realize_row
from quantbench.api import compare, deployment_runtimes
from quantbench.cli.main import main
from quantbench.config import parse_methods
from quantbench.errors import UserError
from quantbench.methods import Context, Unsupported
from quantbench.runtimes import TorchCPU, TorchCUDA
from quantbench.runtimes import cuda as cuda_runtime
from quantbench.formats.lowbit_file import read_lowbit
from quantbench.kernels.cuda_capability import Target
from quantbench.runtimes.cuda import CudaRunner, load_module
from quantbench.kernels.cuda_capability import kernel_unavailable_reason
from quantbench.kernels.weight_only import TinygemmLinear, check_tinygemm, tinygemm_weight
from quantbench.spec import CompareSpec
from quantbench.tasks import build_task
from quantbench.tasks.train import trained_fp32

from .test_weight_only import _fp16_scales, _grids

HAS_GPU = torch.cuda.is_available() and torch.version.cuda is not None
cuda = pytest.mark.cuda
needs_gpu = pytest.mark.skipif(not HAS_GPU, reason="needs an NVIDIA GPU and a CUDA build of torch")
ROOT = Path(__file__).resolve().parents[2]

V100, A100, L4, H100 = (7, 0), (8, 0), (8, 9), (9, 0)


# --- capability logic -----------------------------------------------------------------------------


def test_v100_has_no_int4_tinygemm_no_fp8_no_bf16():
    assert "needs sm80+, this GPU is sm70" in kernel_unavailable_reason("int4-weight-only", V100, "0.18.0")
    assert "needs sm89+, this GPU is sm70" in kernel_unavailable_reason("float8-dynamic", V100, "0.18.0")
    assert "dtype=float16" in kernel_unavailable_reason("bf16", V100, "0.18.0")
    assert "sm75" in kernel_unavailable_reason("int8-dynamic", V100, "0.18.0", dtype="float16")
    assert kernel_unavailable_reason("fp16", V100, None, dtype="float16") is None
    assert kernel_unavailable_reason("int8-weight-only", V100, None, dtype="float16") is None
    assert "bf16 compute needs sm80+" in kernel_unavailable_reason("int8-weight-only", V100, None)


def test_a100_runs_int4_but_not_fp8():
    assert kernel_unavailable_reason("int4-weight-only", A100, "0.18.0") is None
    assert kernel_unavailable_reason("int8-dynamic", A100, "0.18.0") is None
    assert kernel_unavailable_reason("float8-dynamic", A100, "0.18.0") == \
        "fp8 e4m3 dynamic activation x fp8 weight (torchao; torch._scaled_mm, fp8 tensor cores) needs sm89+, " \
        "this GPU is sm80"


@pytest.mark.parametrize("capability", [L4, H100])
def test_ada_and_hopper_run_every_kernel(capability):
    for kind in ("bf16", "fp16", "int8-weight-only", "int8-dynamic", "int4-weight-only", "float8-dynamic"):
        assert kernel_unavailable_reason(kind, capability, "0.18.0") is None, kind


def test_torchao_is_needed_only_by_its_own_kernels():
    for kind in ("int8-dynamic", "float8-dynamic"):
        assert kernel_unavailable_reason(kind, H100, None) == "torchao not installed: pip install 'quantbench[cuda]'"
    assert "too old" in kernel_unavailable_reason("int8-dynamic", H100, "0.9.2")
    assert kernel_unavailable_reason("int8-dynamic", H100, "0.18.0+cu126") is None
    for kind in ("bf16", "int8-weight-only", "int4-weight-only"):
        assert kernel_unavailable_reason(kind, H100, None) is None


def test_no_gpu_fp16_int4_and_unknown_kinds():
    assert kernel_unavailable_reason("bf16", None, "0.18.0") == "no CUDA GPU here"
    assert "computes in bf16 only" in kernel_unavailable_reason("int4-weight-only", H100, None, dtype="float16")
    with pytest.raises(ValueError, match="unknown CUDA kernel kind"):
        kernel_unavailable_reason("int3", H100, None)


# --- the runtime on a machine without a GPU --------------------------------------------------------


@pytest.mark.skipif(HAS_GPU, reason="a GPU is present")
def test_runtime_cuda_gives_a_clear_error_here(capsys, cache_dir):
    reason = TorchCUDA().unavailable_reason()
    assert reason and ("no CUDA support" in reason or "sees no GPU" in reason)
    with pytest.raises(UserError, match=r"runtime 'cuda' is not available here: "):
        deployment_runtimes("cuda")
    assert "cuda" not in [rt.name for rt in deployment_runtimes("all")]
    assert main(["compare", "--runtime", "cuda", "--hidden", "16", "--no-memory", "--no-progress",
                 "--cache-dir", cache_dir]) == 2
    assert f"runtime 'cuda' is not available here: {reason}" in capsys.readouterr().err
    assert main(["runtimes"]) == 0
    assert f"cuda: not available here: {reason}" in capsys.readouterr().out


def test_unavailable_reasons_name_the_build_and_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    assert "has no CUDA support" in cuda_runtime.cuda_unavailable_reason()
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cuda_runtime.cuda_unavailable_reason() == f"torch {torch.__version__} (CUDA 12.8) sees no GPU"


def test_runtime_options_are_checked():
    with pytest.raises(UserError, match="dtype"):
        TorchCUDA(dtype="float32")


# --- the runtime's artifacts on a CPU stand-in target ----------------------------------------------


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """64 -> 256 -> 128 -> 10 on digits (a head of 10: not a multiple of 8)."""
    task = build_task("tabular", dataset="digits", hidden=(256, 128), seed=0)
    model, _ = trained_fp32(task, 0, tmp_path_factory.mktemp("cache"), progress=False)
    return task, model


def stand_in() -> Target:
    """The cuda runtime's code on the CPU (torch's CPU tinygemm build), pretending an H100's capability."""
    return Target(torch.device("cpu"), torch.bfloat16, H100, cuda_runtime.torchao_version(), "CPU stand-in")


class StandInCUDA(TorchCUDA):
    """The cuda runtime aimed at a given target (the CPU stand-in by default)."""

    def __init__(self, target: Target):
        super().__init__()
        self._target = target

    def target(self) -> Target:
        return self._target


def realize_and_load(spec, mlp, tmp_path, target=None):
    task, model = mlp
    ctx = Context(task, progress=False)
    target = target or stand_in()
    realized = realize_row(parse_methods(spec)[0], model, ctx, StandInCUDA(target), tmp_path / "artifact")
    return realized, CudaRunner(load_module(realized.path, task, target), target), ctx


@pytest.mark.parametrize("spec, kernel", [
    ("fp32", "torch CUDA bf16 dense (cuBLAS)"),
    ("rtn", "tinygemm int4 weight-only (aten._weight_int4pack_mm)"),
    ("gptq:group_size=32,act_order=true", "act-order column gather"),
    ("rtn:bits=3,group_size=64", "tinygemm int4"),
    ("rtn:bits=8,sym=true,group_size=-1", "int8 weight-only, per-row scales"),
    ("gptq:bits=8", "int8 weight-only, grouped"),
    ("hqq", "tinygemm int4"),
    ("awq:fold=false,calib_samples=64", "multiply their input by a per-channel scale first"),
])
def test_artifacts_load_and_agree_with_fp32(spec, kernel, mlp, tmp_path):
    task, model = mlp
    realized, run, _ = realize_and_load(spec, mlp, tmp_path)
    assert kernel in realized.kernel and realized.details["cuda"]["gpu"] == "CPU stand-in"
    assert cuda_runtime.LATENCY_NOTE in realized.notes
    x = task.splits.x_test
    out = run(x)
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    with torch.no_grad():
        agree = (out.argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.95


def test_latency_times_the_forward_on_inputs_already_placed(mlp, tmp_path):
    """timed_call places the batch before the clock; the timed call leaves its output where it ran
    (bf16 here), while __call__ (for quality) returns float32 host tensors."""
    from quantbench.measure.runner import timed_call

    task, _ = mlp
    _, run, _ = realize_and_load("rtn", mlp, tmp_path)
    call, prepared = timed_call(run, task.splits.x_test[:4])
    assert call == run.run_prepared and prepared.dtype == torch.bfloat16
    assert call(prepared).dtype == torch.bfloat16 and run(task.splits.x_test[:4]).dtype == torch.float32
    assert timed_call(len, [1, 2]) == (len, [1, 2])  # a runner without prepare is timed as it is


def test_lowbit_rows_run_the_integers_of_the_torch_cpu_row(mlp, tmp_path):
    task, model = mlp
    spec = "gptq:group_size=32,act_order=true"
    realized, run, ctx = realize_and_load(spec, mlp, tmp_path)
    quantized, _ = ctx.quantize(parse_methods(spec)[0], model)
    packed, _ = read_lowbit(realized.path)
    assert realized.details["lowbit_sha256"] == quantized.details["lowbit_sha256"]
    for name, lw in quantized.format.layers.items():
        assert torch.equal(packed[name].q, lw.q) and torch.equal(packed[name].zeros, lw.zeros)
        assert torch.equal(packed[name].scales, lw.scales)
        assert isinstance(run.module.get_submodule(name), TinygemmLinear)
    x = task.splits.x_test
    with torch.no_grad():
        expected = quantized.module(x)
    assert (run(x) - expected).abs().max() <= 0.03 * expected.abs().max()


@pytest.mark.parametrize("spec, message", [
    ("ptq-static", "run on CPU runtimes only"), ("qat", "run on CPU runtimes only"),
    ("rtn:group_size=48", "layer 0: groups of 48 columns over in_features 64"),
])
def test_unsupported_rows_say_why(spec, message, mlp, tmp_path):
    with pytest.raises(Unsupported, match=message):
        realize_and_load(spec, mlp, tmp_path)


def test_capability_is_checked_before_quantizing(mlp, tmp_path):
    v100 = replace(stand_in(), capability=V100, dtype=torch.float16)
    with pytest.raises(Unsupported, match="int4-weight-only on cuda: .* needs sm80\\+, this GPU is sm70"):
        realize_and_load("rtn", mlp, tmp_path, v100)
    with pytest.raises(Unsupported, match="float8-dynamic on cuda: .*sm89"):
        realize_and_load("fp8", mlp, tmp_path, replace(stand_in(), capability=A100))


def test_ptq_dynamic_runs_torchao_int8_and_keeps_odd_layers(mlp, tmp_path):
    pytest.importorskip("torchao")
    task, model = mlp
    realized, run, _ = realize_and_load("ptq-dynamic", mlp, tmp_path)
    assert "int8 dynamic act x int8 weight, per-row scales" in realized.kernel
    assert realized.details["kept_layers"] == ["4"] and any("kept bfloat16" in n for n in realized.notes)
    assert type(run.module[0].weight).__name__ != "Parameter" and type(run.module[4].weight) is nn.Parameter
    x = task.splits.x_test
    with torch.no_grad():
        assert (run(x).argmax(1) == model(x).argmax(1)).float().mean() > 0.95


# --- the GPU check script ---------------------------------------------------------------------------


def test_gpu_check_dry_run_goes_through_every_row(tmp_path):
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--json", str(out),
                           "--artifacts", str(tmp_path / "artifacts")], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert {r["model"] for r in rows} == {"mlp", "tiny-llama"} and len(rows) == 12
    for row in rows:
        assert row["status"] in ("ok", "unsupported", "failed"), row
        if row["status"] == "ok":
            assert row["kernel"] and row["shapes"] and all(s["median_ms"] > 0 for s in row["shapes"])
        else:
            assert row["error"] and f"{row['row']:<18} {row['status']}: " in done.stdout
    ok = {(r["model"], r["row"]) for r in rows if r["status"] == "ok"}
    assert {("mlp", "bf16"), ("mlp", "int4 RTN g128"), ("tiny-llama", "int4 GPTQ g128")} <= ok
    for row in rows:
        if row["row"].startswith("int4") and row["status"] == "ok":
            assert all(s["err_vs_integers"] < 0.05 for s in row["shapes"])
    if not HAS_GPU:
        assert "cuda rows: unsupported: " in done.stdout and data["env"]["cuda_unavailable"]
    assert "== acceptance" in done.stdout


# --- on a GPU ----------------------------------------------------------------------------------------


@cuda
@needs_gpu
def test_gpu_tinygemm_layout_matches_the_cpu_reference():
    device = torch.device("cuda")
    for name, lw in _grids().items():
        if not torch.cuda.get_device_capability() >= (8, 0):
            pytest.skip("int4 tinygemm needs sm80+")
        lw = _fp16_scales(lw)
        tw = tinygemm_weight(lw)
        layer = TinygemmLinear(tw, None, device)
        assert check_tinygemm(layer, tw) < 0.02, name
        x = torch.randn(5, 256)
        expected = x @ lw.dequantize().T
        got = layer(x.to(device, torch.bfloat16)).float().cpu()
        assert (got - expected).abs().max() <= 0.03 * expected.abs().max(), name


@cuda
@needs_gpu
@pytest.mark.parametrize("spec", ["fp32", "rtn", "gptq:group_size=32,act_order=true",
                                  "rtn:bits=8,sym=true,group_size=-1", "ptq-dynamic"])
def test_gpu_rows_realize_load_and_agree(spec, mlp, tmp_path):
    runtime = TorchCUDA()
    task, model = mlp
    target = runtime.target()
    kind = {"fp32": target.dense_kind, "ptq-dynamic": "int8-dynamic"}.get(spec.split(":")[0], "int4-weight-only")
    kind = "int8-weight-only" if "bits=8" in spec else kind
    if target.reason(kind):
        pytest.skip(target.reason(kind))
    ctx = Context(task, progress=False)
    realized = realize_row(parse_methods(spec)[0], model, ctx, runtime, tmp_path / "artifact")
    assert realized.kernel and realized.details["cuda"]["capability"].startswith("sm")
    run = runtime.load(realized.path, task)
    x = task.splits.x_test
    with torch.no_grad():
        agree = (run(x).argmax(1) == model(x).argmax(1)).float().mean()
    assert agree > 0.95
    assert runtime.peak_memory(realized.path, task, 64, 1) > 0


@cuda
@needs_gpu
def test_gpu_compare_runs_every_method_and_names_kernels(cache_dir):
    results = compare(CompareSpec(hidden=(128,), batch_sizes=(1, 64), runtime="cuda", progress=False,
                                  cache_dir=cache_dir))
    by_method = {row.method: row for row in results.rows}
    assert by_method["ptq-static"].status == "unsupported" and "CPU engines" in by_method["ptq-static"].error
    for row in results.rows:
        assert row.status in ("ok", "unsupported"), (row.method, row.error)
        if row.status == "ok":
            assert row.kernel and row.latency and row.peak_memory_bytes


def test_gpu_check_module_imports_without_a_gpu(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "gpu_check", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert [label for label, _, _ in module.ROWS][:2] == ["bf16", "int8 weight-only"]
    shapes = module.shapes_for("tiny-llama", module.Sizes())
    assert shapes["decode 1x1"].rows == 1 and shapes["prefill 8x128"].rows == 1024


def test_cuda_options_of_the_spec_reach_the_runtime():
    options = CompareSpec(cuda_dtype="float16", cuda_compile=True).runtime_options()["cuda"]
    runtime = TorchCUDA(**options)
    assert (runtime.dtype, runtime.compile) == ("float16", True)
    with pytest.raises(UserError, match="dtype must be one of bfloat16, float16"):
        TorchCUDA(**CompareSpec(cuda_dtype="float32").runtime_options()["cuda"])
