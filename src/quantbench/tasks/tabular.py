"""MLP classifier on a table: scikit-learn's built-in datasets or a user CSV."""
import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import TASKS, Task, split_arrays
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
    value never seen in training cannot dominate the model or a dynamic int8 range."""
    mean, std = splits.x_train.mean(0), splits.x_train.std(0)
    std = torch.where(std < 1e-6, torch.ones_like(std), std)
    for name in ("x_train", "x_val", "x_calib", "x_test"):
        setattr(splits, name, ((getattr(splits, name) - mean) / std).clamp(-CLIP_STD, CLIP_STD))


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
