"""HQQ weight quantization as pure tensor math: Badri & Shaji 2023, "Half-Quadratic Quantization of
Large Machine Learning Models" (calibration-free).

Each group of input columns of a row keeps its min-max scale and gets a float zero point that
minimizes a sparsity-promoting lp (p < 1) norm of the weight error, by half-quadratic splitting:
alternately shrink the error W - W_r (generalized soft-thresholding) and solve for the zero in
closed form. The result is a ``LowBitWeight`` with float zeros: W ≈ scales * (q - zeros).
"""
from __future__ import annotations

import torch

from ...formats.lowbit import LowBitWeight, check_bits
from ..lowbit.grid import float_codes, group_index, max_code


def hqq_quantize(w: torch.Tensor, bits: int, group_size: int = 64, iters: int = 20, lp_norm: float = 0.7,
                 beta: float = 10.0, kappa: float = 1.01) -> tuple[LowBitWeight, dict]:
    """Quantize w [out, in] with HQQ; returns the weight and {"iterations", "error_before", "error_after"}.

    Groups are ``group_size`` consecutive input columns (-1: a whole row); when in_features is not a
    multiple of group_size the last group is smaller (as in ``rtn_quantize``). Up to ``iters`` zero
    updates run, stopping early once the mean |W - W_r| stops improving; each group keeps the best
    zero it saw. Scales and zeros are fp16-representable, and the codes are computed from them.
    The errors are mean |W - W_r| of the min-max float-zero start and of the returned weight.
    """
    check_bits(bits)
    w = w.detach().float()
    out_features, in_features = w.shape
    g_idx = group_index(in_features, group_size, device=w.device)  # also checks group_size
    width = min(in_features, in_features if group_size == -1 else group_size)
    full = in_features - in_features % width
    parts = [(w[:, :full].reshape(out_features, full // width, width))]
    if full < in_features:
        parts.append(w[:, full:].reshape(out_features, 1, in_features - full))
    done = [_quantize_groups(blocks, max_code(bits), iters, lp_norm, beta, kappa) for blocks in parts]
    codes = torch.cat([c.reshape(out_features, -1) for c, _, _, _ in done], dim=1).to(torch.uint8)
    scales = torch.cat([s.squeeze(-1) for _, s, _, _ in done], dim=1)
    zeros = torch.cat([z.squeeze(-1) for _, _, z, _ in done], dim=1)
    result = LowBitWeight(codes, scales, zeros, g_idx, bits, group_size)
    start_sum = sum(float(error.sum()) * blocks.shape[-1] for blocks, (_, _, _, (_, error)) in zip(parts, done))
    return result, {"iterations": max(n for _, _, _, (n, _) in done), "error_before": start_sum / w.numel(),
                    "error_after": float((w - result.dequantize()).abs().mean())}


def _quantize_groups(blocks: torch.Tensor, maxq: int, iters: int, p: float, beta: float, kappa: float):
    """HQQ on groups of equal width, blocks [out, n_groups, width]: (codes, scale, zero, (updates, start
    error per group [out, n_groups, 1]))."""
    scale, zero = init_scale_zero(blocks, maxq)
    zero, iterations, start_error = optimize_zero(blocks, scale, zero, maxq, iters, p, beta, kappa)
    zero = zero.half().float()
    return quantize_float_zero(blocks, scale, zero, maxq), scale, zero, (iterations, start_error)


def init_scale_zero(blocks: torch.Tensor, maxq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Min-max scale (fp16-exact) and float zero -min / scale of each group, [out, n_groups, 1].

    The range is not widened to include 0 (the zero need not be an integer code). The scale is at
    least 2**-14 (fp16's smallest normal) and max|w| / 2**15, so an all-equal group divides by no
    zero and its zero stays inside fp16's range."""
    lo, hi = blocks.amin(-1, keepdim=True), blocks.amax(-1, keepdim=True)
    floor = torch.maximum(lo.abs(), hi.abs()).div(2**15).clamp(min=2**-14)
    scale = torch.maximum((hi - lo) / maxq, floor).half().float()
    return scale, -lo / scale


def quantize_float_zero(blocks: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int) -> torch.Tensor:
    """Float codes clamp(round(w / scale + zero), 0, maxq): the zero is added before rounding, as it
    is a float (``float_codes`` adds it after, for integer zeros; here it gets w / scale + zero)."""
    return float_codes(blocks / scale + zero, 1.0, 0.0, maxq)


def shrink_lp(x: torch.Tensor, beta: float, p: float) -> torch.Tensor:
    """Generalized soft-thresholding, the proximal step of the lp norm: sign(x) relu(|x| - |x|^(p-1) / beta)."""
    magnitude = x.abs()
    return torch.sign(x) * torch.relu(magnitude - magnitude.clamp(min=1e-8).pow(p - 1) / beta)


def optimize_zero(blocks: torch.Tensor, scale: torch.Tensor, zero: torch.Tensor, maxq: int, iters: int,
                  p: float, beta: float, kappa: float) -> tuple[torch.Tensor, int, float]:
    """Half-quadratic zero-point updates; returns (best zero per group, updates made, start error per group)."""
    best_zero, best_error = zero, torch.full_like(zero, float("inf"))
    last_error, error_before = float("inf"), None
    for step in range(iters + 1):
        codes = quantize_float_zero(blocks, scale, zero, maxq)
        residual = blocks - scale * (codes - zero)
        error = residual.abs().mean(-1, keepdim=True)
        better = error < best_error
        best_zero, best_error = torch.where(better, zero, best_zero), torch.where(better, error, best_error)
        total = float(error.mean())
        error_before = error if error_before is None else error_before
        if step == iters or total >= last_error:
            break
        last_error = total
        sparse_error = shrink_lp(residual, beta, p)
        zero = (codes - (blocks - sparse_error) / scale).mean(-1, keepdim=True)
        beta *= kappa
    return best_zero, step, error_before
