"""Classification quality with its uncertainty, and agreement with the FP32 predictions."""
import math

import torch

from .runner import Runner


EVAL_BATCH = 256
"""Rows per call when a classifier is evaluated (dynamic int8 quantizes activations per call)."""


def predict(run: Runner, x: torch.Tensor, batch: int = EVAL_BATCH) -> torch.Tensor:
    return torch.cat([run(chunk).argmax(-1) for chunk in x.split(batch)])


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (well behaved near 0 and 1)."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def agreement(pred: torch.Tensor, reference: torch.Tensor) -> float:
    """Fraction of samples where the prediction equals the FP32 model's."""
    return (pred == reference).float().mean().item()
