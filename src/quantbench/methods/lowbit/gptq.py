"""GPTQ (Frantar et al., ICLR 2023) as pure tensor math: a Hessian accumulator and the solver.

Follows the IST-DASLab/gptq reference (``GPTQ.add_batch`` / ``GPTQ.fasterquant``): dead inputs,
relative damping, upper Cholesky factor of H^-1, lazy block updates, dynamic or static groups,
act-order. Differences from the reference, all deliberate:

- a failed Cholesky is retried with 10x the damping (as GPTQModel does) and recorded in
  ``GPTQInfo``; if it still fails, ``GPTQCholeskyError`` is raised (no silent RTN fallback);
- dynamic group grids are computed from the fully error-updated weights of the group. The
  reference reads stale weights when a group starts inside a block, which makes its result
  depend on the block size; here the block size is shrunk to the group size when neither
  divides the other, so the block size never changes the codes.

Depends on torch only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .grid import LowBitWeight, float_codes, group_starts, max_code, scale_zero_minmax

_DAMP_GROWTH = 10.0
_MAX_DAMP_RETRIES = 4


@dataclass(frozen=True)
class GPTQInfo:
    """What the solver had to do: final relative damping, dead inputs, Cholesky retries."""

    damp_used: float
    dead_columns: int
    cholesky_retries: int


class GPTQCholeskyError(RuntimeError):
    """The damped Hessian stayed non positive-definite after every damping retry."""


def accumulate_hessian(
    H: torch.Tensor | None, n_seen: int, x: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Running average H = (2 / n) * sum x x^T over all rows seen so far; returns (H, n).

    ``x`` is [..., in_features] (leading dims are flattened into rows); accumulation is float32
    with one addmm per call (no in-place change to the H passed in). ``H`` may be None at first.
    """
    rows = x.detach().reshape(-1, x.shape[-1]).float()
    n_total = n_seen + rows.shape[0]
    if n_total == 0:
        raise ValueError("accumulate_hessian needs at least one input row")
    if H is None:
        H = torch.zeros(rows.shape[1], rows.shape[1], dtype=torch.float32, device=rows.device)
    return torch.addmm(H, rows.T, rows, beta=n_seen / n_total, alpha=2.0 / n_total), n_total


def gptq_quantize(
    w: torch.Tensor,
    H: torch.Tensor,
    bits: int,
    group_size: int = -1,
    sym: bool = False,
    act_order: bool = False,
    static_groups: bool = False,
    damp: float = 0.01,
    block_size: int = 128,
) -> tuple[LowBitWeight, GPTQInfo]:
    """Quantize w [out, in] with GPTQ given the input Hessian H [in, in]; w and H are not modified.

    Returns the codes/grids as a ``LowBitWeight`` (g_idx gives the group of each original input
    column) and a ``GPTQInfo``. With act_order and dynamic groups the groups follow the
    permuted column order, so g_idx is not monotonic; with static groups g_idx = k // group_size.
    """
    _check_args(w, H, bits, group_size, damp, block_size)
    with torch.no_grad():
        W = w.detach().to(torch.float32, copy=True)
        H = H.detach().to(device=W.device, dtype=torch.float32, copy=True)
        dead = torch.diagonal(H) == 0
        H[dead, dead] = 1.0
        W[:, dead] = 0.0
        dynamic = group_size != -1 and not static_groups
        scales, zeros = _fixed_grids(W, bits, group_size, sym, dynamic)
        perm = torch.argsort(torch.diagonal(H), descending=True, stable=True) if act_order else None
        if perm is not None:
            W, H = W[:, perm], H[perm][:, perm]
        Hinv, damp_used, retries = _upper_cholesky_of_inverse(H, damp)
        column_group = _column_groups(W.shape[1], group_size, static_groups, perm, W.device)
        block_size = _exact_block_size(block_size, group_size) if dynamic else block_size
        codes, scales, zeros = _quantize_columns(
            W, Hinv, scales, zeros, column_group, bits, sym, group_size if dynamic else -1, block_size
        )
        g_idx = column_group.to(torch.int32)
        if perm is not None:
            inverse = torch.argsort(perm)
            codes, g_idx = codes[:, inverse], g_idx[inverse]
    info = GPTQInfo(damp_used=damp_used, dead_columns=int(dead.sum()), cholesky_retries=retries)
    return LowBitWeight(codes.to(torch.uint8), scales, zeros, g_idx, bits, group_size), info


def _quantize_columns(W, Hinv, scales, zeros, column_group, bits, sym, dynamic_group_size, block_size):
    """The GPTQ column loop over W (already permuted): float codes [out, in] and the grids.

    Column i is rounded, its error divided by Hinv[i, i] is spread over the columns right of it
    inside the block, and each finished block's errors are propagated to the rest at once.
    ``dynamic_group_size`` > 0 recomputes the grid at each group start from the current weights
    (the caller guarantees a group starting inside a block ends inside it). Works on W^T so that
    each input column is one contiguous row.
    """
    maxq = max_code(bits)
    Wt = W.T.contiguous()
    n_columns = Wt.shape[0]
    codes = torch.empty_like(Wt)
    groups = column_group.tolist()
    for i1 in range(0, n_columns, block_size):
        i2 = min(i1 + block_size, n_columns)
        W1 = Wt[i1:i2].clone()
        Err1 = torch.empty_like(W1)
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(i2 - i1):
            j, g = i1 + i, groups[i1 + i]
            if dynamic_group_size > 0 and j % dynamic_group_size == 0:
                current = W1[i : i + dynamic_group_size] if i > 0 else Wt[j : j + dynamic_group_size]
                scales[:, g], zeros[:, g] = scale_zero_minmax(current.T, bits, sym)
            scale, zero = scales[:, g], zeros[:, g]
            w = W1[i]
            q = float_codes(w, scale, zero, maxq)
            err = (w - scale * (q - zero)) / Hinv1[i, i]
            W1[i:].addr_(Hinv1[i, i:], err, alpha=-1.0)
            codes[j] = q
            Err1[i] = err
        Wt[i2:].addmm_(Hinv[i1:i2, i2:].T, Err1, alpha=-1.0)
    return codes.T, scales, zeros


def _fixed_grids(W, bits, group_size, sym, dynamic):
    """float32 (scales, zeros) [out, n_groups] computed from the original weights.

    Per-row and static groups are final here; for dynamic groups they are placeholders that the
    column loop fills in.
    """
    starts = group_starts(W.shape[1], group_size)
    width = W.shape[1] if group_size == -1 else group_size
    scales = torch.ones(W.shape[0], len(starts), dtype=torch.float32, device=W.device)
    zeros = torch.zeros_like(scales)
    if not dynamic:
        for g, start in enumerate(starts):
            scales[:, g], zeros[:, g] = scale_zero_minmax(W[:, start : start + width], bits, sym)
    return scales, zeros


def _column_groups(n_columns, group_size, static_groups, perm, device):
    """int64 [in]: the group of each column in processing order.

    Dynamic groups follow the processing order (j // group_size); static groups belong to the
    original column (perm[j] // group_size); per-row is a single group 0.
    """
    if group_size == -1:
        return torch.zeros(n_columns, dtype=torch.int64, device=device)
    order = perm if static_groups and perm is not None else torch.arange(n_columns, device=device)
    return order // group_size


def _exact_block_size(block_size, group_size):
    """A block size at which every dynamic group's grid sees fully updated weights."""
    if block_size % group_size == 0 or group_size % block_size == 0:
        return block_size
    return group_size


def _upper_cholesky_of_inverse(H, damp):
    """Upper Cholesky factor U of (H + d * mean(diag H) * I)^-1, with d raised on failure.

    Returns (U, d, retries). Raises GPTQCholeskyError when every retry fails.
    """
    mean_diag = torch.diagonal(H).mean()
    diagonal = torch.arange(H.shape[0], device=H.device)
    for retry in range(_MAX_DAMP_RETRIES + 1):
        d = damp * _DAMP_GROWTH**retry
        damped = H.clone()
        damped[diagonal, diagonal] += d * mean_diag
        L, info = torch.linalg.cholesky_ex(damped)
        if info.item() != 0:
            continue
        U, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(L), upper=True)
        if info.item() == 0 and bool(torch.isfinite(torch.diagonal(U)).all()):
            return U, d, retry
    raise GPTQCholeskyError(
        f"the damped Hessian is not positive-definite even with damp={d:g} "
        f"(started at {damp:g}, {_MAX_DAMP_RETRIES} retries x{_DAMP_GROWTH:g}); "
        "the calibration Hessian is likely corrupt (negative eigenvalues, overflow)"
    )


def _check_args(w, H, bits, group_size, damp, block_size):
    if not isinstance(bits, int) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in 1..8, got {bits!r}")
    if w.dim() != 2:
        raise ValueError(f"w must be [out_features, in_features], got shape {tuple(w.shape)}")
    if H.shape != (w.shape[1], w.shape[1]):
        n = w.shape[1]
        raise ValueError(f"H must be [{n}, {n}] for w {tuple(w.shape)}, got {tuple(H.shape)}")
    if not bool(torch.isfinite(H).all()):
        raise ValueError("H contains NaN or inf")
    if group_size != -1 and group_size < 1:
        raise ValueError(f"group_size must be -1 (per row) or >= 1, got {group_size}")
    if not damp > 0:
        raise ValueError(f"damp must be > 0, got {damp}")
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
