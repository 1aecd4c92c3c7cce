"""Your own model and data: ``quantbench compare --task examples/custom_task.py:build``.

``build()`` returns a quantbench.UserTask: a function that makes a fresh model, the whole
labelled data (quantbench splits it into train/val/calibration/test with the --seed), and
optionally ``trained=`` your already-trained model to skip training.
"""
import numpy as np
from sklearn.datasets import load_wine
from torch import nn

from quantbench import UserTask


class WineNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(13, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU())
        self.head = nn.Linear(256, 3)

    def forward(self, x):
        return self.head(self.body(x))


def build() -> UserTask:
    data = load_wine()
    x = (data.data - data.data.mean(0)) / data.data.std(0)
    return UserTask(build_model=WineNet, x=x.astype(np.float32), y=data.target,
                    description="WineNet (13->256->256->3) on scikit-learn wine, from examples/custom_task.py")
