"""MLP classifier on a table: scikit-learn's built-in datasets or a user CSV."""
from functools import partial

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import SMALL_INSTANCES, TASKS, Task, split_arrays
from .csv_table import load_csv

BUILTIN = ("digits", "wine", "breast_cancer")


def mlp(n_in: int, hidden: tuple[int, ...], n_out: int) -> nn.Sequential:
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    return nn.Sequential(*layers, nn.Linear(width, n_out))


def load_builtin(name: str) -> tuple[np.ndarray, np.ndarray, str]:
    import sklearn.datasets as ds

    if name not in BUILTIN:
        from ..registry import closest

        raise UserError(f"unknown dataset '{name}'{closest(name, BUILTIN)}; built-in: {', '.join(BUILTIN)}")
    bunch = getattr(ds, f"load_{name}")()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64), f"scikit-learn {name}"


CLIP_STD = 5.0


def standardize(splits) -> None:
    """Scale features with train statistics only (no test leakage). Constant columns keep
    scale 1 (as scikit-learn's StandardScaler does) and values are clipped to +-5 std, so a
    value never seen in training cannot dominate the model or a dynamic int8 range. Computed in float64:
    float32 sums of values near its range (1e36 x 1000 rows) overflow to inf."""
    mean, std = splits.x_train.double().mean(0), splits.x_train.double().std(0)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    for name in ("x_train", "x_val", "x_calib", "x_test"):
        scaled = (getattr(splits, name).double() - mean) / std
        setattr(splits, name, scaled.clamp(-CLIP_STD, CLIP_STD).float())


@TASKS.register("tabular")
def tabular_task(dataset: str = "digits", data: str | None = None, target: str | None = None,
                 hidden: tuple[int, ...] = (512, 512), seed: int = 0, **_) -> Task:
    notes: list[str] = []
    if data:
        x, y, source, notes = load_csv(data, target)
    else:
        x, y, source = load_builtin(dataset)
    splits = split_arrays(x, y, seed)
    standardize(splits)
    n_in, n_classes = x.shape[1], int(y.max()) + 1
    return Task(
        name="tabular",
        description=f"MLP {n_in}->{'->'.join(map(str, hidden))}->{n_classes} on {source} ({len(x)} rows)",
        splits=splits,
        n_classes=n_classes,
        build_model=lambda: mlp(n_in, tuple(hidden), n_classes),
        model_key={"task": "tabular", "hidden": list(hidden), "source": source},
        notes=notes,
    )


OUTLIER_CHANNELS, OUTLIER_FACTOR = 8, 40.0


@TASKS.register("outliers")
def outliers_task(dataset: str = "digits", data: str | None = None, target: str | None = None,
                  hidden: tuple[int, ...] = (512, 512), seed: int = 0, **_) -> Task:
    """The tabular MLP with activation outliers like those of large language models: after training, a
    few hidden channels of the first layer are scaled up and the next layer's columns down by the same
    factor. The function is unchanged (ReLU commutes with a positive scale), but those channels' inputs
    to the second layer are OUTLIER_FACTOR times larger than the rest, which per-tensor int8
    activations handle badly and SmoothQuant is built for."""
    if len(hidden) < 2:
        raise UserError("the outliers task needs at least two hidden layers (--hidden 512,512)")
    task = tabular_task(dataset, data, target, hidden, seed)
    task.name = "outliers"
    task.description += f"; {OUTLIER_CHANNELS} hidden channels x{OUTLIER_FACTOR:g} into layer 2 (function unchanged)"
    task.after_training = partial(inject_outliers, seed=seed)
    return task


def inject_outliers(model: nn.Sequential, seed: int = 0, channels: int = OUTLIER_CHANNELS,
                    factor: float = OUTLIER_FACTOR) -> nn.Sequential:
    """Scale ``channels`` output rows (and biases) of the first Linear by ``factor`` and the matching
    input columns of the second Linear by 1 / factor, in place: the same function, with outliers."""
    first, second = [m for m in model if isinstance(m, nn.Linear)][:2]
    chosen = torch.randperm(first.out_features, generator=torch.Generator().manual_seed(seed))[:channels]
    with torch.no_grad():
        first.weight[chosen] *= factor
        first.bias[chosen] *= factor
        second.weight[:, chosen] /= factor
    return model


SMALL_INSTANCES.register("tabular")(lambda folder: {"hidden": (32, 32)})
SMALL_INSTANCES.register("outliers")(lambda folder: {"hidden": (32, 32)})
