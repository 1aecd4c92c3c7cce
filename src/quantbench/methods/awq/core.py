"""AWQ (Lin et al., "AWQ: Activation-aware Weight Quantization for LLM Compression and
Acceleration", MLSys 2024) for one linear layer, as pure tensor math.

Per-input-channel scales s = act_mean_abs ** alpha (the paper's Eq. 5) are searched over alpha,
then optionally each (row, group) range of the scaled weight W * s is clipped (the reference's
"auto clip"). Both searches minimize the layer's own output error (the paper's Eq. 4, per layer),
computed exactly from its input Hessian H = (2 / n) sum x x^T: err(Wq) = tr((W - Wq) H (W - Wq)^T),
proportional to ||W X - Wq X||^2, so the calibration inputs are never materialized.

The result keeps s unfolded: the codes hold W * s and the layer computes them @ (x / s)
(``LowBitWeight.input_scale``). s and the group scales are fp16-representable, so an fp16
artifact reloads bit-identically. Depends on torch only.
"""

from __future__ import annotations

import torch

from ...formats.lowbit import LowBitWeight, check_bits
from ..lowbit.grid import group_index, group_starts, max_code, quantize_codes, rtn_quantize

_FP16 = torch.finfo(torch.float16)
_SMALLEST_FP16 = 2.0**-24  # the smallest fp16 subnormal: a scale must not round to 0


def output_error(w: torch.Tensor, wq: torch.Tensor, H: torch.Tensor) -> float:
    """tr((w - wq) H (w - wq)^T): the layer-output error of the effective weight wq."""
    d = (w.float() - wq.float()).to(H.device)
    return float(((d @ H.float()) * d).sum(dtype=torch.float64))


def to_fp16_values(t: torch.Tensor) -> torch.Tensor:
    """float32 tensor of the fp16 values nearest to t, kept finite and non-zero (t > 0)."""
    return t.float().clamp(_SMALLEST_FP16, _FP16.max).half().float()


SILENT_FLOOR = 0.1
"""Channels whose calibration mean |x| is below this fraction of the median channel's are scaled as if
at it: calibration cannot weigh a channel it saw (almost) silent, and a tiny s would multiply whatever
that channel carries at run time by 1 / s (seen: digits pixels constant in training, x100 at test time,
which then saturate ONNX Runtime's int8 activation blocks). A departure from the reference (1e-4)."""


def candidate_scales(act_mean_abs: torch.Tensor, alpha: float) -> torch.Tensor:
    """s = act_mean_abs ** alpha (mean |x| floored at SILENT_FLOOR x its median, s >= 1e-4), normalized
    by sqrt(max * min), fp16-rounded."""
    mean_abs = act_mean_abs.float()
    mean_abs = mean_abs.clamp(min=SILENT_FLOOR * float(mean_abs.median()))
    s = mean_abs.pow(alpha).clamp(min=1e-4)
    return to_fp16_values(s / (s.max() * s.min()).sqrt())


def search_scales(w, H, act_mean_abs, bits, group_size, sym, n_grid=20):
    """Grid search over alpha in {0, 1/n_grid, ..., (n_grid-1)/n_grid} (0 gives s = 1, i.e. RTN).

    Returns (s, alpha, best error / alpha=0 error), each candidate being RTN of W * s, divided by s.
    """
    errors, scales = [], []
    for i in range(n_grid):
        s = candidate_scales(act_mean_abs, i / n_grid)
        wq = rtn_quantize(w * s[None, :], bits, group_size, sym).dequantize_codes() / s[None, :]
        errors.append(output_error(w, wq, H))
        scales.append(s)
    best = min(range(n_grid), key=errors.__getitem__)
    return scales[best], best / n_grid, errors[best] / max(errors[0], 1e-30)


def quantize_range(w, lo, hi, bits, sym):
    """Codes, scale, zero of w [out, k] on min-max grids with explicit ranges lo, hi [out].

    The range is widened to include 0 (symmetric: [-m, m], m = max(-lo, hi), zero at the
    midpoint); an empty range becomes [-1, 1]; the scale is rounded to an fp16 value first.
    Values outside the range are clamped to the end codes.
    """
    maxq = max_code(bits)
    lo, hi = lo.clamp(max=0.0), hi.clamp(min=0.0)
    if sym:
        hi = torch.maximum(hi, -lo)
        lo = -hi
    empty = hi == lo
    lo, hi = torch.where(empty, -1.0, lo), torch.where(empty, 1.0, hi)
    scale = to_fp16_values((hi - lo) / maxq)
    zero = torch.full_like(scale, float((maxq + 1) // 2)) if sym else torch.round(-lo / scale).clamp(0, maxq)
    return quantize_codes(w, scale[:, None], zero[:, None], bits), scale, zero


def dequantize_range(w, lo, hi, bits, sym):
    """w [out, k] quantized on the grids of quantize_range and dequantized (float32)."""
    q, scale, zero = quantize_range(w, lo, hi, bits, sym)
    return scale[:, None] * (q.float() - zero[:, None])


def search_clip(ws, Hs, bits, group_size, sym, n_clip=20):
    """Per-(row, group) shrink ratio r in linspace(1, 0.5, n_clip) of the range of the scaled
    weight ws [out, in], minimizing that group's output error (ws_g - Q_g) Hs_gg (ws_g - Q_g)^T
    with Hs the Hessian of the scaled weight's inputs. Returns ratios float32 [out, n_groups]."""
    width = ws.shape[1] if group_size == -1 else group_size
    starts = group_starts(ws.shape[1], group_size)
    ratios = torch.ones(ws.shape[0], len(starts), device=ws.device)
    for g, start in enumerate(starts):
        block, Hg = ws[:, start : start + width], Hs[start : start + width, start : start + width]
        lo, hi = block.amin(dim=1), block.amax(dim=1)
        best = torch.full((ws.shape[0],), float("inf"), device=ws.device)
        for r in torch.linspace(1.0, 0.5, n_clip).tolist():
            d = block - dequantize_range(block, r * lo, r * hi, bits, sym)
            err = ((d @ Hg) * d).sum(dim=1)
            better = err < best
            best = torch.where(better, err, best)
            ratios[better, g] = r
    return ratios


def quantize_with_ratios(ws, ratios, bits, group_size, sym, input_scale) -> LowBitWeight:
    """The LowBitWeight of the scaled weight ws with each (row, group) range shrunk by its ratio."""
    width = ws.shape[1] if group_size == -1 else group_size
    codes = torch.empty(ws.shape, dtype=torch.uint8, device=ws.device)
    scales, zeros = torch.empty_like(ratios), torch.empty_like(ratios)
    for g, start in enumerate(group_starts(ws.shape[1], group_size)):
        block, r = ws[:, start : start + width], ratios[:, g]
        codes[:, start : start + width], scales[:, g], zeros[:, g] = quantize_range(
            block, r * block.amin(dim=1), r * block.amax(dim=1), bits, sym
        )
    g_idx = group_index(ws.shape[1], group_size, device=ws.device)
    return LowBitWeight(codes, scales, zeros, g_idx, bits, group_size, input_scale=input_scale)


def awq_quantize(
    w: torch.Tensor,
    H: torch.Tensor,
    act_mean_abs: torch.Tensor,
    bits: int,
    group_size: int = 128,
    sym: bool = False,
    clip: bool = True,
    n_grid: int = 20,
    n_clip: int = 20,
) -> tuple[LowBitWeight, dict]:
    """AWQ of w [out, in] given its input Hessian H [in, in] and mean |x| per input channel [in].

    Returns the LowBitWeight of W * s with ``input_scale=s`` and info {"alpha", "clip_ratio_mean",
    "error_vs_rtn"} (output error of the result / that of ``rtn_quantize`` on the same grid).
    """
    check_bits(bits)
    if H.shape != (w.shape[1], w.shape[1]) or act_mean_abs.shape != (w.shape[1],):
        raise ValueError(f"H must be [in, in] and act_mean_abs [in] for w {tuple(w.shape)}")
    with torch.no_grad():
        w, H, act_mean_abs = w.detach().float(), H.detach().float().to(w.device), act_mean_abs.to(w.device)
        s, alpha, _ = search_scales(w, H, act_mean_abs, bits, group_size, sym, n_grid)
        ws, Hs = w * s[None, :], H / s[:, None] / s[None, :]
        n_groups = len(group_starts(w.shape[1], group_size))
        ratios = (search_clip(ws, Hs, bits, group_size, sym, n_clip) if clip
                  else torch.ones(w.shape[0], n_groups, device=w.device))
        lw = quantize_with_ratios(ws, ratios, bits, group_size, sym, input_scale=s)
        err_rtn = output_error(w, rtn_quantize(w, bits, group_size, sym).dequantize(), H)
        info = {"alpha": alpha, "clip_ratio_mean": float(ratios.mean()),
                "error_vs_rtn": output_error(w, lw.dequantize(), H) / max(err_rtn, 1e-30)}
    return lw, info
