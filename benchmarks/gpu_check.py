"""GPU check of the cuda runtime: every CUDA row for an MLP and a small transformer, in one run.

    benchmarks/gpu_check.sh                      # in a session with a GPU: install, then this, with a timeout
    python benchmarks/gpu_check.py [--quick] [--skip-gptq] [--compile] [--budget 240]
    python benchmarks/gpu_check.py --dry-run     # tiny sizes; without a GPU: the control flow on the CPU

Prints the environment (GPU, compute capability, L2, torch/torchao versions, device-to-device copy
bandwidth measured with CUDA events), then for

  (a) an MLP of 4 Linear(8192, 8192) layers (537 MB of bf16 weights, far beyond an H100's 50 MB L2)
      and a small head, at batch 1 and 64;
  (b) a Llama-like transformer built here from a config (8 blocks, hidden 2048, random weights,
      no download): one-token decode steps without KV cache (batch 1 and 64) and prefills of 1x128
      and 8x128 tokens,

one line per row and shape: bf16, int8 weight-only (rtn 8-bit, symmetric, per channel), int8 dynamic
(torchao), int4 weight-only
from quantbench's RTN and GPTQ codes (tinygemm), fp8 dynamic (torchao,
sm89+). Each line has median / p10 / p90 ms (eager; quantbench's timing loop with a synchronize
after every call), the same with a CUDA graph at batch 1 (launch overhead removed), the ratio to
the memory-bandwidth bound at batch 1 (bytes of the weights the forward reads / measured copy
bandwidth), the max relative error of the outputs against the bf16 row and, for rtn/gptq rows,
against the same integers dequantized and run in fp32 (a layout error shows up there as ~1), and
the kernel. A row that cannot run prints "unsupported: why" or "failed: error" and the check goes
on. With $OUT set, every number goes to $OUT/gpu_check.json.

Quantization (RTN, GPTQ) runs on the CPU as in ``quantbench compare``; GPTQ uses few calibration
samples to stay fast. Sizes are chosen to finish in under 5 minutes on one H100.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

try:
    import quantbench  # noqa: F401  (installed, or on the path)
except ImportError:  # not installed: run from the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from quantbench.config import parse_methods  # noqa: E402
from quantbench.measure.latency import measure_latency  # noqa: E402
from quantbench.methods import Context, Unsupported  # noqa: E402
from quantbench.pipeline import realize_row  # noqa: E402
from quantbench.runtimes import TorchCPU, TorchCUDA  # noqa: E402
from quantbench.kernels.cuda_capability import Target, synchronize  # noqa: E402
from quantbench.runtimes.cuda import free_cached, torchao_version  # noqa: E402
from quantbench.measure.size import weight_bytes  # noqa: E402
from quantbench.kernels.cuda_capability import INT_MM_MIN_ROWS  # noqa: E402
from quantbench.tasks.base import Splits, Task, TaskBase  # noqa: E402

ROWS = (  # label, cuda runtime options, method
    ("bf16", {}, "fp32"),
    ("int8 weight-only", {}, "rtn:bits=8,sym=true,group_size=-1"),
    ("int8 dynamic", {}, "ptq-dynamic"),
    ("int4 RTN g128", {}, "rtn:bits=4,group_size=128"),
    ("int4 GPTQ g128", {}, "gptq:bits=4,group_size=128,calib_samples={calib}"),
    ("fp8 dynamic", {}, "fp8"),
)
MISMATCH = 0.05  # error against the same integers in fp32 above this: the kernel does not compute them


@dataclass
class Sizes:
    width: int = 8192
    layers: int = 4
    hidden: int = 2048
    blocks: int = 8
    heads: int = 16
    ffn: int = 5632
    vocab: int = 8192
    tokens: int = 128
    big_batch: int = 64
    mlp_calib: int = 64
    lm_calib: int = 4


QUICK = Sizes(width=4096, blocks=4)
DRY = Sizes(width=256, layers=2, hidden=128, blocks=2, heads=4, ffn=256, vocab=512, tokens=32, big_batch=8,
            mlp_calib=16, lm_calib=2)


# --- the models ---------------------------------------------------------------------------------


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        h = x.float()
        return (h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()).to(x.dtype)


def _rope(x, positions: int):
    half = x.shape[-1] // 2
    inv = 1.0 / 10000.0 ** (torch.arange(half, device=x.device, dtype=torch.float32) / half)
    angles = torch.outer(torch.arange(positions, device=x.device, dtype=torch.float32), inv)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()
    x1, x2 = x.float().chunk(2, -1)
    return (x.float() * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj, self.v_proj, self.o_proj = (nn.Linear(dim, dim, bias=False) for _ in range(4))

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (p(x).view(b, t, self.heads, d // self.heads).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        y = nn.functional.scaled_dot_product_attention(_rope(q, t), _rope(k, t), v, is_causal=True)
        return self.o_proj(y.transpose(1, 2).reshape(b, t, d))


class Block(nn.Module):
    def __init__(self, s: Sizes):
        super().__init__()
        self.input_layernorm, self.post_attention_layernorm = RMSNorm(s.hidden), RMSNorm(s.hidden)
        self.self_attn = Attention(s.hidden, s.heads)
        self.mlp = nn.Module()
        self.mlp.gate_proj, self.mlp.up_proj = (nn.Linear(s.hidden, s.ffn, bias=False) for _ in range(2))
        self.mlp.down_proj = nn.Linear(s.ffn, s.hidden, bias=False)

    def forward(self, x):
        x = x + self.self_attn(self.input_layernorm(x))
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(nn.functional.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class TinyLlama(nn.Module):
    """Llama's layout (model.layers.N.self_attn.q_proj, ..., lm_head): quantbench finds its blocks."""

    def __init__(self, s: Sizes):
        super().__init__()
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(s.vocab, s.hidden)
        self.model.layers = nn.ModuleList(Block(s) for _ in range(s.blocks))
        self.model.norm = RMSNorm(s.hidden)
        self.lm_head = nn.Linear(s.hidden, s.vocab, bias=False)

    def forward(self, input_ids):
        h = self.model.embed_tokens(input_ids)
        for block in self.model.layers:
            h = block(h)
        return self.lm_head(self.model.norm(h))


def mlp(s: Sizes) -> nn.Module:
    layers = []
    for _ in range(s.layers):
        layers += [nn.Linear(s.width, s.width), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(s.width, 16))


def skeleton(build):
    """The architecture on the meta device: the runtime fills it from the artifact (fast to build)."""
    def make():
        with torch.device("meta"):
            return build()
    return make


class TokenTask(TaskBase):
    traceable = False

    def __init__(self, s: Sizes):
        self.name, self.notes = "tiny-llama", []
        self.description = f"Llama-like, {s.blocks} blocks, hidden {s.hidden}, ffn {s.ffn}, vocab {s.vocab}"
        self.build_model = skeleton(lambda: TinyLlama(s))
        gen = torch.Generator().manual_seed(1)
        self.tokens = torch.randint(0, s.vocab, (max(s.lm_calib, 8), s.tokens), generator=gen)

    @property
    def example_input(self):
        return {"input_ids": self.tokens[:1]}

    def calibration_inputs(self, n_samples: int, batch_size: int = 8) -> list:
        return [{"input_ids": b} for b in self.tokens[:n_samples].split(batch_size)]

    def latency_input(self, batch_size: int):
        return {"input_ids": self.tokens[:1].repeat(batch_size, 1)}


def mlp_task(s: Sizes) -> Task:
    x = torch.randn(max(s.mlp_calib, 64), s.width, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(len(x), dtype=torch.long)
    return Task("mlp", f"MLP {s.layers} x Linear({s.width}, {s.width}) + Linear({s.width}, 16)",
                Splits(x, y, x, y, x, x, y), 16, skeleton(lambda: mlp(s)))


@dataclass(frozen=True)
class Shape:
    """One input: its dims, the batch (sequences or samples) and the rows every Linear sees."""

    dims: tuple[int, ...]
    batch: int
    rows: int


def shapes_for(model_name: str, s: Sizes) -> dict[str, Shape]:
    """(batch, features) for the MLP; (batch, tokens) for the transformer: decode steps without KV
    cache (one token per sequence) and prefills."""
    if model_name == "mlp":
        return {f"b{b}": Shape((b, s.width), b, b) for b in (1, s.big_batch)}
    shapes = {f"decode {b}x1": (b, 1) for b in (1, s.big_batch)} | {f"prefill {b}x{s.tokens}": (b, s.tokens)
                                                                     for b in (1, 8)}
    return {name: Shape(dims, dims[0], math.prod(dims)) for name, dims in shapes.items()}


def make_inputs(model_name: str, shapes: dict, s: Sizes, device, dtype) -> dict:
    gen = torch.Generator().manual_seed(2)
    if model_name == "mlp":
        return {k: torch.randn(*shape.dims, generator=gen).to(device, dtype) for k, shape in shapes.items()}
    return {k: {"input_ids": torch.randint(0, s.vocab, shape.dims, generator=gen).to(device)}
            for k, shape in shapes.items()}


# --- measuring ----------------------------------------------------------------------------------


class CpuStandIn(TorchCUDA):
    """Dry run without a GPU: the cuda runtime's own code on the CPU (torch's CPU build of the
    tinygemm kernel), only to exercise the control flow. Its numbers are not CUDA numbers."""

    def unavailable_reason(self):
        return None

    def target(self) -> Target:
        return Target(torch.device("cpu"), getattr(torch, self.dtype), (9, 0), torchao_version(),
                      "CPU stand-in (dry run)", self.compile)

    def peak_memory(self, *args):
        return None


def call(module, x):
    with torch.inference_mode():
        out = module(**x) if isinstance(x, dict) else module(x)
    return out.logits if hasattr(out, "logits") else out


def rel_err(y, ref) -> float | None:
    if ref is None:
        return None
    y, ref = y.float(), ref.float()
    return float((y - ref).abs().max() / ref.abs().max().clamp(min=1e-12))


def time_eager(module, x, batch: int, device, seconds: float):
    def run(inp):
        call(module, inp)
        synchronize(device)
    return measure_latency(run, x, batch, warmup=3, min_repeats=10, max_seconds=seconds)


def time_graph(module, x, batch: int, device, seconds: float):
    """The same call replayed from a CUDA graph (no Python or launch overhead)."""
    if device.type != "cuda":
        return None
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            call(module, x)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        call(module, x)

    def replay(_):
        graph.replay()
        synchronize(device)
    return measure_latency(replay, x, batch, warmup=3, min_repeats=10, max_seconds=seconds)


def copy_bandwidth(device) -> float | None:
    """Bytes per second read + written by a 1 GiB device-to-device copy (CUDA events)."""
    if device.type != "cuda":
        return None
    n = 1 << 28
    src = torch.empty(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    torch.cuda.synchronize(device)
    return 2 * 4 * n * 10 / (start.elapsed_time(end) / 1e3)


# --- the check ----------------------------------------------------------------------------------


class Check:
    def __init__(self, args, sizes: Sizes, device):
        self.args, self.sizes, self.device = args, sizes, device
        self.start = time.perf_counter()
        self.records: list[dict] = []
        self.env: dict = {}
        self.stand_in = device.type != "cuda"
        self.broken: str | None = None

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def runtime(self, options: dict):
        return (CpuStandIn if self.stand_in else TorchCUDA)(compile=self.args.compile, **options)

    def environment(self) -> None:
        reason = TorchCUDA().unavailable_reason()
        env = {"torch": torch.__version__, "torch_cuda": torch.version.cuda, "torchao": torchao_version(),
               "cuda_unavailable": reason, "dry_run": self.args.dry_run, "sizes": vars(self.sizes)}
        if reason is None:
            props = torch.cuda.get_device_properties(self.device)
            env |= {"gpu": props.name, "capability": f"sm{props.major}{props.minor}",
                    "memory_gb": props.total_memory / 1e9, "l2_bytes": getattr(props, "L2_cache_size", None),
                    "copy_bandwidth_gbs": copy_bandwidth(self.device) / 1e9}
        self.env = env
        print("== environment")
        for key, value in env.items():
            print(f"  {key}: {value}")
        if reason is not None:
            print(f"  cuda rows: unsupported: {reason}")
            print("  dry run: the same rows run through the cuda runtime's code on the CPU (torch's CPU tinygemm), "
                  "to exercise the control flow; those numbers are not CUDA numbers")

    def model(self, name: str, task, fp32: nn.Module) -> None:
        shapes = shapes_for(name, self.sizes)
        dtype = torch.bfloat16
        inputs = make_inputs(name, shapes, self.sizes, self.device, dtype)
        ctx = Context(task, progress=False)
        print(f"\n== {name}: {task.description}")
        print(f"  {'row':<18} {'shape':<14} {'median':>8} {'p10':>8} {'p90':>8} {'graph':>8} {'x bound':>8} "
              f"{'err bf16':>9} {'err ints':>9}  (ms; kernel below each row)")
        reference: dict = {}
        for label, options, method in ROWS:
            spec = method.format(calib=self.sizes.mlp_calib if name == "mlp" else self.sizes.lm_calib)
            record = {"model": name, "row": label, "method": spec, "runtime_options": options, "shapes": []}
            self.records.append(record)
            if self.elapsed() > self.args.budget or self.broken:
                self._skip(record, self.broken or f"time budget of {self.args.budget:.0f} s spent")
                continue
            if self.args.skip_gptq and spec.startswith("gptq"):
                self._skip(record, "--skip-gptq")
                continue
            try:
                self._row(record, label, options, spec, task, fp32, ctx, shapes, inputs, reference)
            except Unsupported as e:
                self._fail(record, "unsupported", str(e))
            except Exception as e:  # a failed row is data; the check goes on
                self._fail(record, "failed", f"{type(e).__name__}: {e}", traceback.format_exc(limit=4))
            free_cached(self.device)
        self.write()

    def _row(self, record, label, options, spec, task, fp32, ctx, shapes, inputs, reference) -> None:
        runtime = self.runtime(options)
        config = parse_methods(spec)[0]
        stem = Path(self.args.artifacts) / f"{task.name}-{label.replace(' ', '_')}"
        realized = realize_row(config, fp32, ctx, runtime, stem)
        runner = runtime.load(realized.path, task)
        record |= {"status": "ok", "kernel": realized.kernel, "notes": realized.notes,
                   "quantize_seconds": realized.quantize_seconds, "size_bytes": realized.path.stat().st_size,
                   "weight_bytes": weight_bytes(runner.module),
                   "details": {k: v for k, v in realized.details.items() if k != "layers"}}
        ints = self._integer_reference(config, fp32, ctx, inputs) if config.name in ("rtn", "gptq") else {}
        for shape_name, x in inputs.items():
            out = call(runner.module, x)
            if label == "bf16":
                reference[shape_name] = out
            entry = self._measure(runner.module, x, shapes[shape_name], realized, record["weight_bytes"])
            entry |= {"shape": shape_name, "err_vs_bf16": rel_err(out, reference.get(shape_name)),
                      "err_vs_integers": rel_err(out, ints.get(shape_name)) if ints else None}
            record["shapes"].append(entry)
            self._print_shape(label, entry)
        print(f"  {'':<18} kernel: {realized.kernel}; artifact {record['size_bytes'] / 1e6:.1f} MB, weights read "
              f"{record['weight_bytes'] / 1e6:.1f} MB, quantized in {realized.quantize_seconds:.1f} s")
        del runner
        free_cached(self.device)
        batch = max(s.batch for s in shapes.values())
        record["peak_memory_bytes"] = runtime.peak_memory(realized.path, task, batch, 1)
        if record["peak_memory_bytes"]:
            print(f"  {'':<18} peak GPU memory to load and run batch {batch}: "
                  f"{record['peak_memory_bytes'] / 1e6:.1f} MB")

    def _measure(self, module, x, shape: Shape, realized, weight_bytes_read: int) -> dict:
        """Eager timing; at one row per Linear also a CUDA graph replay and the bandwidth bound."""
        eager = time_eager(module, x, shape.batch, self.device, self.args.seconds)
        graph, bound_ms = None, None
        if shape.rows == 1:
            graph = self._graph(module, x, shape.batch) if not realized.details.get("host_sync_in_forward") \
                else "not captured: the forward synchronizes with the host (see the row's notes)"
            bandwidth = self.env.get("copy_bandwidth_gbs")
            bound_ms = weight_bytes_read / (bandwidth * 1e9) * 1e3 if bandwidth else None
        graph_ms = None if graph is None or isinstance(graph, str) else graph.median_ms
        return {"rows": shape.rows, "median_ms": eager.median_ms, "p10_ms": eager.p10_ms, "p90_ms": eager.p90_ms,
                "repeats": eager.repeats, "graph_median_ms": graph_ms,
                "graph_error": graph if isinstance(graph, str) else None, "bound_ms": bound_ms,
                "x_bound": eager.median_ms / bound_ms if bound_ms else None,
                "x_bound_graph": graph_ms / bound_ms if bound_ms and graph_ms else None,
                "kernel_here": self._kernel_here(realized, shape.rows)}

    def _graph(self, module, x, batch):
        try:
            return time_graph(module, x, batch, self.device, self.args.seconds)
        except Exception as e:  # capture can fail (a host sync inside the forward): say so, keep going
            message = f"failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:160]}"
            try:
                synchronize(self.device)
            except Exception as after:  # the failure left the CUDA context unusable: stop measuring
                self.broken = f"CUDA context unusable after a failed graph capture: {type(after).__name__}: {after}"
            return message

    def _integer_reference(self, config, fp32, ctx, inputs) -> dict:
        """Outputs of the same integers dequantized, in fp32 on the same device (the layout check)."""
        quantized, _ = ctx.quantize(config, fp32)
        model = copy.deepcopy(quantized.module).to(self.device, torch.float32).eval()
        outs = {k: call(model, x if isinstance(x, dict) else x.float()) for k, x in inputs.items()}
        del model
        free_cached(self.device)
        return outs

    @staticmethod
    def _kernel_here(realized, rows: int) -> str | None:
        small = realized.details.get("int_mm_small_rows")
        if small is False and rows < INT_MM_MIN_ROWS:
            return f"torchao fp32 matmul fallback (torch._int_mm refuses < {INT_MM_MIN_ROWS} rows)"
        return None

    @staticmethod
    def _print_shape(label, e) -> None:
        def f(v, spec=".3f"):
            return "-" if v is None else format(v, spec)
        graph = f(e["graph_median_ms"]) if not e["graph_error"] else "n/a"
        bound = f(e["x_bound"], ".2f") + (f"/{e['x_bound_graph']:.2f}g" if e["x_bound_graph"] else "")
        flag = "  MISMATCH" if (e["err_vs_integers"] or 0) > MISMATCH else ""
        print(f"  {label:<18} {e['shape']:<14} {f(e['median_ms']):>8} {f(e['p10_ms']):>8} {f(e['p90_ms']):>8} "
              f"{graph:>8} {bound:>8} {f(e['err_vs_bf16'], '.4f'):>9} {f(e['err_vs_integers'], '.4f'):>9}{flag}")
        if e["graph_error"]:
            print(f"  {'':<18} CUDA graph: {e['graph_error']}")
        if e["kernel_here"]:
            print(f"  {'':<18} at this shape: {e['kernel_here']}")

    def _skip(self, record, why: str, status: str = "skipped") -> None:
        record |= {"status": status, "error": why}
        print(f"  {record['row']:<18} {status}: {why}")

    def _fail(self, record, status: str, error: str, trace: str | None = None) -> None:
        record |= {"status": status, "error": error, "traceback": trace}
        print(f"  {record['row']:<18} {status}: {error}")

    def acceptance(self) -> dict:
        """int4 weight-only faster than bf16 at batch 1 on the MLP (weights beyond L2); every row names its kernel."""
        by_row = {r["row"]: r for r in self.records if r["model"] == "mlp" and r.get("status") == "ok"}

        def b1(row, key):
            entry = next((e for e in by_row.get(row, {}).get("shapes", []) if e["shape"] == "b1"), None)
            return entry and entry[key]
        verdict = {"weights_exceed_l2": None, "every_measured_row_names_its_kernel":
                   all(r.get("kernel") for r in self.records if r.get("status") == "ok")}
        l2, bf16 = self.env.get("l2_bytes"), by_row.get("bf16")
        if l2 and bf16:
            verdict["weights_exceed_l2"] = bf16["weight_bytes"] > l2
        for row in ("int4 RTN g128", "int4 GPTQ g128"):
            for key in ("median_ms", "graph_median_ms"):
                int4, base = b1(row, key), b1("bf16", key)
                verdict[f"{row} {key} b1"] = {"int4": int4, "bf16": base,
                                               "int4_faster": None if not (int4 and base) else int4 < base}
        print("\n== acceptance (MLP, batch 1: int4 weight-only faster than bf16; every row names its kernel)")
        for key, value in verdict.items():
            print(f"  {key}: {value}")
        if self.stand_in:
            print("  (CPU stand-in: not CUDA numbers; run on a GPU for the verdict)")
        return verdict

    def write(self, verdict: dict | None = None) -> None:
        if not self.args.json:
            return
        path = Path(self.args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {"env": self.env, "rows": self.records, "acceptance": verdict, "elapsed_s": self.elapsed()}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1, default=str))
        tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # every line out before a timeout could kill the run
    sizes = DRY if args.dry_run else QUICK if args.quick else Sizes()
    device = torch.device("cuda", torch.cuda.current_device()) if TorchCUDA().unavailable_reason() is None \
        else torch.device("cpu")
    if device.type != "cuda" and not args.dry_run:
        print(f"gpu_check: no usable GPU ({TorchCUDA().unavailable_reason()}); use --dry-run to check the control "
              f"flow on the CPU", file=sys.stderr)
        return 2
    if device.type != "cuda":  # the CPU stand-in: short timings, one thread (no fight with other work)
        args.seconds = min(args.seconds, 0.05)
        torch.set_num_threads(1)
    torch.manual_seed(0)
    check = Check(args, sizes, device)
    check.environment()
    Path(args.artifacts).mkdir(parents=True, exist_ok=True)
    check.model("mlp", mlp_task(sizes), mlp(sizes).eval())
    torch.manual_seed(0)  # the same transformer weights every run
    check.model("tiny-llama", TokenTask(sizes), TinyLlama(sizes).eval())
    verdict = check.acceptance()
    check.write(verdict)
    print(f"\ngpu_check: done in {check.elapsed():.0f} s" + (f"; wrote {args.json}" if args.json else ""))
    return 0


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes; without a GPU, run on the CPU stand-in")
    parser.add_argument("--quick", action="store_true", help="MLP width 4096 and 4 transformer blocks")
    parser.add_argument("--skip-gptq", action="store_true", help="leave out the GPTQ row (its CPU quantization)")
    parser.add_argument("--compile", action="store_true", help="torch.compile every row (slow to start)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing budget per row and shape")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds after which remaining rows are skipped")
    out = os.environ.get("OUT")
    parser.add_argument("--json", default=str(Path(out) / "gpu_check.json") if out else None,
                        help="write every number here (default $OUT/gpu_check.json when OUT is set)")
    parser.add_argument("--artifacts", default=None, help="folder for the artifacts (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.artifacts is None:
        import tempfile

        args.artifacts = tempfile.mkdtemp(prefix="quantbench-gpu-check-")
    return args


if __name__ == "__main__":
    sys.exit(main())
