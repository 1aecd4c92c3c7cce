"""A small CNN on the 8x8 digits images: conv + batch norm + ReLU, so static PTQ must fuse."""
import numpy as np
from torch import nn

from .base import SMALL_INSTANCES, TASKS, Task, split_arrays


def digits_cnn(n_classes: int = 10, channels: int = 32) -> nn.Sequential:
    c = channels
    return nn.Sequential(
        nn.Conv2d(1, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
        nn.Conv2d(c, 2 * c, 3, padding=1), nn.BatchNorm2d(2 * c), nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * c * 16, 128), nn.ReLU(),
        nn.Linear(128, n_classes),
    )


@TASKS.register("cnn")
def cnn_task(seed: int = 0, **_) -> Task:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None]
    splits = split_arrays(x, bunch.target.astype(np.int64), seed)
    return Task(
        name="cnn",
        description=f"CNN (2x conv+bn+relu, 2 linear) on scikit-learn digits 8x8 images ({len(x)} images)",
        splits=splits,
        n_classes=10,
        build_model=digits_cnn,
        model_key={"task": "cnn", "channels": 32},
    )


SMALL_INSTANCES.register("cnn")(lambda folder: {})
