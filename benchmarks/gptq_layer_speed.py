"""Speed of the GPTQ layer math on CPU (2 threads) against the IST-DASLab/gptq reference, both timed here.

For each layer shape (out x in), 32k calibration tokens of random correlated inputs, 4-bit,
group size 128: time to accumulate the Hessian (one per input size), time of gptq_quantize,
and time of rtn_quantize. With ``--reference DIR`` (a checkout of https://github.com/IST-DASLab/gptq,
whose ``gptq.py`` / ``quant.py`` it imports), the reference's ``GPTQ.add_batch`` and
``GPTQ.fasterquant`` run in the same process on the same inputs and settings, and each line prints
ours / reference. Without it, no ratio is printed: a ratio needs its peer measured in the same run.

Run: PYTHONPATH=src python benchmarks/gptq_layer_speed.py [--reference ~/src/gptq] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

import torch
from torch import nn

from quantbench.methods.lowbit import accumulate_hessian, gptq_quantize, rtn_quantize

SHAPES = [(768, 768), (3072, 768), (768, 3072)]
QUICK_SHAPES = [(64, 128), (128, 64)]
BITS = 4
GROUP_SIZE = 128
BLOCK_SIZE = 128
DAMP = 0.01


def correlated_chunks(in_features: int, n_tokens: int, chunk_tokens: int, seed: int = 0):
    """Yield [chunk_tokens, in] float32 chunks: Z @ A with heavy-tailed column scales (same for every caller)."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(in_features, in_features, generator=gen) / in_features**0.5
    column_scale = torch.rand(in_features, generator=gen) ** 4 * 8 + 0.1
    for _ in range(max(1, n_tokens // chunk_tokens)):
        z = torch.randn(chunk_tokens, in_features, generator=gen)
        yield (z @ mixing) * column_scale


def timed_sum(step, chunks) -> float:
    """Seconds spent in ``step(chunk)`` over all chunks (making the chunks excluded)."""
    seconds = 0.0
    for x in chunks:
        start = time.perf_counter()
        step(x)
        seconds += time.perf_counter() - start
    return seconds


def best_time(fn, setup=lambda: None, repeats: int = 3) -> float:
    """Fastest of ``repeats`` calls of ``fn(setup())``; ``setup`` is not timed."""
    best = float("inf")
    for _ in range(repeats):
        arg = setup()
        start = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - start)
    return best


def our_hessian(chunks) -> tuple[torch.Tensor, float]:
    state = {"H": None, "n": 0}

    def step(x):
        state["H"], state["n"] = accumulate_hessian(state["H"], state["n"], x)

    seconds = timed_sum(step, chunks)
    return state["H"], seconds


def load_reference(folder: Path):
    """The reference's ``gptq`` and ``quant`` modules from ``folder``. Its ``fasterquant`` ends with
    ``torch.cuda.synchronize()``, which CPU-only torch refuses: made a no-op when there is no GPU."""
    if not (folder / "gptq.py").is_file():
        sys.exit(f"--reference {folder}: no gptq.py there; clone https://github.com/IST-DASLab/gptq")
    sys.path.insert(0, str(folder))
    import gptq as reference  # noqa: PLC0415  (the reference checkout)
    import quant  # noqa: PLC0415

    if not torch.cuda.is_available():
        torch.cuda.synchronize = torch.cuda.empty_cache = lambda *a, **k: None
    return reference, quant


def reference_hessian(reference, in_features: int, chunks) -> tuple[torch.Tensor, int, float]:
    """(H, samples, seconds in ``GPTQ.add_batch`` only), for an input size."""
    g = reference.GPTQ(nn.Linear(in_features, 1, bias=False))
    seconds = timed_sum(lambda x: g.add_batch(x, None), chunks)
    return g.H, g.nsamples, seconds


def reference_quantizer(reference_modules, w: torch.Tensor, H: torch.Tensor, n_samples: int):
    """A fresh reference GPTQ for weight ``w`` holding a copy of ``H`` (``fasterquant`` consumes it)."""
    reference, quant = reference_modules
    layer = nn.Linear(w.shape[1], w.shape[0], bias=False)
    layer.weight.data = w.clone()
    g = reference.GPTQ(layer)
    g.H, g.nsamples = H.clone(), n_samples
    g.quantizer = quant.Quantizer()
    g.quantizer.configure(BITS, perchannel=True, sym=False, mse=False)
    return g


def run_reference_quantize(g) -> None:
    with contextlib.redirect_stdout(io.StringIO()):  # it prints its time and error
        g.fasterquant(blocksize=BLOCK_SIZE, percdamp=DAMP, groupsize=GROUP_SIZE)


def ratio(ours: float, ref: float | None) -> str:
    return f"{ours / ref:8.2f}" if ref else f"{'-':>8}"


def seconds_cell(value: float | None, width: int = 9) -> str:
    return f"{value:{width}.3f}" if value is not None else f"{'-':>{width}}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="a checkout of IST-DASLab/gptq, timed in this run")
    parser.add_argument("--quick", action="store_true", help="tiny shapes and 2k tokens (checks the script runs)")
    args = parser.parse_args(argv)
    shapes, n_tokens, chunk = (QUICK_SHAPES, 2048, 1024) if args.quick else (SHAPES, 32 * 1024, 4096)
    ref = load_reference(args.reference.expanduser()) if args.reference else None
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {n_tokens} tokens, "
          f"{BITS}-bit g{GROUP_SIZE}; times in seconds (best of 3 for quantize/RTN)")
    print("reference: " + (f"IST-DASLab/gptq at {args.reference}, timed in this run" if ref else
                           "not given (--reference DIR): no ratios printed"))
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}. Run it alone: another CPU-heavy")
    print("process on a 2-core machine makes these timings 10-50x slower (OpenMP oversubscription).")
    print()
    print(f"{'Hessian in':>10} | {'ours':>7} | {'reference':>9} | {'ours/ref':>8}")
    hessians = {}
    for in_features in sorted({s[1] for s in shapes}):
        H, seconds = our_hessian(correlated_chunks(in_features, n_tokens, chunk))
        H_ref, n_ref, ref_s = (reference_hessian(ref[0], in_features, correlated_chunks(in_features, n_tokens, chunk))
                               if ref else (None, 0, None))
        hessians[in_features] = H, H_ref, n_ref
        print(f"{in_features:>10} | {seconds:7.3f} | {seconds_cell(ref_s)} | {ratio(seconds, ref_s)}")
    print()
    print(f"{'layer out x in':>14} | {'gptq':>7} | {'reference':>9} | {'ours/ref':>8} | {'rtn':>7}")
    for out_features, in_features in shapes:
        w = torch.randn(out_features, in_features) * 0.02
        H, H_ref, n_ref = hessians[in_features]
        t_gptq = best_time(lambda _: gptq_quantize(w, H, BITS, GROUP_SIZE, damp=DAMP, block_size=BLOCK_SIZE))
        t_rtn = best_time(lambda _: rtn_quantize(w, BITS, GROUP_SIZE))
        t_ref = (best_time(run_reference_quantize, lambda: reference_quantizer(ref, w, H_ref, n_ref))
                 if ref else None)
        print(f"{out_features:>6} x {in_features:<5} | {t_gptq:7.3f} | {seconds_cell(t_ref)} | "
              f"{ratio(t_gptq, t_ref)} | {t_rtn:7.4f}")


if __name__ == "__main__":
    main()
