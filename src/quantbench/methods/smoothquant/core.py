"""SmoothQuant's per-channel smoothing factors (Xiao et al., ICML 2023, eq. 4); pure math.

``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)``: ``x / s`` and ``W * s`` leave ``x @ W.T`` exact
while moving part of the activation outliers' range into the weights. ``alpha = 1`` puts all
of it on the weights (``s = max|X_j|``), ``alpha = 0`` all on the activations
(``s = 1 / max|W_j|``). Channels with a zero activation or weight maximum get ``s = 1``.
"""

from __future__ import annotations

import torch

MIN_SCALE, MAX_SCALE = 1e-5, 1e5  # keeps s, x / s and W * s finite; any s > 0 stays exact


def smoothing_factors(act_absmax: torch.Tensor, weight_absmax: torch.Tensor, alpha: float = 0.5) -> torch.Tensor:
    """s [in] (float32) from per-input-channel absmax of activations [in] and weights [in]."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    a, w = act_absmax.detach().double(), weight_absmax.detach().double().to(act_absmax.device)
    if a.dim() != 1 or a.shape != w.shape:
        raise ValueError(f"expected two [in] vectors, got {tuple(a.shape)} and {tuple(w.shape)}")
    if bool((a < 0).any() | (w < 0).any() | a.isnan().any() | w.isnan().any()):
        raise ValueError("absmax values must be non-negative numbers")
    s = a.pow(alpha) / w.pow(1.0 - alpha)
    s = torch.where((a > 0) & (w > 0), s, torch.ones_like(s))
    return s.clamp(MIN_SCALE, MAX_SCALE).float()


def weight_input_absmax(w: torch.Tensor) -> torch.Tensor:
    """max |W[:, j]| over output rows: [in] (float32) for a weight [out, in]."""
    return w.detach().abs().amax(dim=0).float()
