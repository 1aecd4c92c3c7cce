"""Speed of the GPTQ layer math on CPU (2 threads) against the IST-DASLab/gptq reference.

For each layer shape (out x in), 32k calibration tokens of random correlated inputs, 4-bit,
group size 128: time to accumulate the Hessian (one per input size), time of gptq_quantize,
and time of rtn_quantize. The reference numbers were measured once on this machine with the
reference code (GPTQ.add_batch / GPTQ.fasterquant); they are constants here.

Run: PYTHONPATH=src python benchmarks/gptq_layer_speed.py
"""

from __future__ import annotations

import os
import time

import torch

from quantbench.methods.lowbit import accumulate_hessian, gptq_quantize, rtn_quantize

SHAPES = [(768, 768), (3072, 768), (768, 3072)]
N_TOKENS = 32 * 1024
CHUNK_TOKENS = 4096
BITS = 4
GROUP_SIZE = 128
REFERENCE_QUANTIZE_S = {(768, 768): 0.18, (3072, 768): 0.26, (768, 3072): 1.2}
REFERENCE_HESSIAN_S = {768: 0.26, 3072: 4.7}


def correlated_chunks(in_features: int, seed: int = 0):
    """Yield [CHUNK_TOKENS, in] float32 chunks: Z @ A with heavy-tailed column scales."""
    gen = torch.Generator().manual_seed(seed)
    mixing = torch.randn(in_features, in_features, generator=gen) / in_features**0.5
    column_scale = torch.rand(in_features, generator=gen) ** 4 * 8 + 0.1
    for _ in range(N_TOKENS // CHUNK_TOKENS):
        z = torch.randn(CHUNK_TOKENS, in_features, generator=gen)
        yield (z @ mixing) * column_scale


def time_hessian(in_features: int) -> tuple[torch.Tensor, float]:
    """(H, seconds spent in accumulate_hessian only; input generation excluded)."""
    H, n_seen, seconds = None, 0, 0.0
    for x in correlated_chunks(in_features):
        start = time.perf_counter()
        H, n_seen = accumulate_hessian(H, n_seen, x)
        seconds += time.perf_counter() - start
    return H, seconds


def best_time(fn, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    hessians = {}
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, {N_TOKENS} tokens, "
          f"{BITS}-bit g{GROUP_SIZE}; times in seconds (best of 3 for quantize/RTN)")
    print(f"1-minute load average at start: {os.getloadavg()[0]:.2f}. Run it alone: another CPU-heavy")
    print("process on a 2-core machine makes these timings 10-50x slower (OpenMP oversubscription).")
    print()
    print(f"{'Hessian in':>10} | {'ours':>7} | {'reference':>9} | {'ours/ref':>8}")
    for in_features in sorted({s[1] for s in SHAPES}):
        H, seconds = time_hessian(in_features)
        hessians[in_features] = H
        ref = REFERENCE_HESSIAN_S[in_features]
        print(f"{in_features:>10} | {seconds:7.3f} | {ref:9.2f} | {seconds / ref:8.2f}")
    print()
    print(f"{'layer out x in':>14} | {'gptq':>7} | {'reference':>9} | {'ours/ref':>8} | {'rtn':>7}")
    for out_features, in_features in SHAPES:
        w = torch.randn(out_features, in_features) * 0.02
        H = hessians[in_features]
        t_gptq = best_time(lambda: gptq_quantize(w, H, BITS, GROUP_SIZE))
        t_rtn = best_time(lambda: rtn_quantize(w, BITS, GROUP_SIZE))
        ref = REFERENCE_QUANTIZE_S[(out_features, in_features)]
        print(f"{out_features:>6} x {in_features:<5} | {t_gptq:7.3f} | {ref:9.2f} | "
              f"{t_gptq / ref:8.2f} | {t_rtn:7.4f}")


if __name__ == "__main__":
    main()
