"""What is measured: a model, its data splits and a metric."""
import hashlib
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from ..measure.accuracy import EVAL_BATCH, agreement, predict, wilson_interval
from ..registry import Registry


@dataclass
class Splits:
    """Train (fit), val (early stopping), calib (subset of train for PTQ), test (reported)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_calib: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for t in (self.x_train, self.y_train, self.x_val, self.y_val):
            digest.update(t.numpy().tobytes())
        return digest.hexdigest()[:16]


CLASSIFICATION_METHODS = "fp32,ptq-dynamic,ptq-static,qat,rtn,gptq"
PRETRAINED_METHODS = ("fp32,bf16,ptq-dynamic,rtn:bits=8,group_size=-1,gptq:bits=8,group_size=-1,"
                      "rtn,gptq,rtn:bits=3,gptq:bits=3")
"""8-bit rows use one grid per row: the layout int8 weight-only kernels take (torch CPU, cuBLAS)."""


@dataclass
class Quality:
    """What a task measured about one model: its headline metric and agreement with fp32."""

    metric: str
    value: float
    ci: list[float] | None
    higher_is_better: bool
    n_samples: int
    agreement: float | None
    accuracy: float | None = None
    extra: dict = field(default_factory=dict)


class TaskBase:
    """The interface the pipeline uses; tasks differ in data and metric, not in plumbing.
    ``traceable``: inputs are one tensor, so models can be frozen TorchScript."""

    name: str
    description: str
    build_model: Callable[[], nn.Module]
    notes: list[str]
    traceable: bool = True
    pretrained: nn.Module | None = None
    default_methods: str = CLASSIFICATION_METHODS

    @property
    def example_input(self):
        raise NotImplementedError

    def calibration_inputs(self, n_samples: int, batch_size: int = 32) -> list:
        raise NotImplementedError

    def latency_input(self, batch_size: int):
        raise NotImplementedError

    def reference(self, model: nn.Module):
        """The fp32 model's outputs that agreement is measured against."""
        raise NotImplementedError

    def evaluate(self, run, reference) -> Quality:
        raise NotImplementedError


@dataclass
class Task(TaskBase):
    """Classification on a table or images: accuracy with a Wilson interval."""

    name: str
    description: str
    splits: Splits
    n_classes: int
    build_model: Callable[[], nn.Module]
    model_key: dict = field(default_factory=dict)
    pretrained: nn.Module | None = None
    notes: list[str] = field(default_factory=list)
    after_training: Callable[[nn.Module], nn.Module] | None = None
    """Applied to the trained (or cached) model before anything is measured: e.g. a function-preserving
    change that gives it the activation outliers of large models (the ``outliers`` task)."""

    @property
    def example_input(self) -> torch.Tensor:
        return self.splits.x_test[:1]

    def calibration_inputs(self, n_samples: int, batch_size: int = 32) -> list[torch.Tensor]:
        return list(self.splits.x_calib[:n_samples].split(batch_size))

    def latency_input(self, batch_size: int) -> torch.Tensor:
        """A batch of real test inputs (the test set repeated if it is smaller)."""
        return repeat_to(self.splits.x_test, batch_size).contiguous()

    def reference(self, model: nn.Module) -> torch.Tensor:
        with torch.no_grad():
            return predict(model, self.splits.x_test)

    def evaluate(self, run, reference: torch.Tensor) -> Quality:
        pred = predict(run, self.splits.x_test)
        correct, n = int((pred == self.splits.y_test).sum()), len(self.splits.y_test)
        return Quality("accuracy", correct / n, list(wilson_interval(correct, n)), True, n,
                       agreement(pred, reference), accuracy=correct / n, extra={"eval_batch_size": EVAL_BATCH})


@dataclass(kw_only=True)
class PretrainedTask(TaskBase):
    """A task around a pretrained Hugging Face model: no training, inputs are dicts of tensors.
    ``model_output``: the field of the model's output that ``evaluate`` reads (the one output an
    ONNX export of the model needs)."""

    name: str
    description: str
    build_model: Callable[[], nn.Module]
    pretrained: nn.Module
    notes: list[str] = field(default_factory=list)
    default_methods: str = PRETRAINED_METHODS
    traceable = False
    model_output: ClassVar[str]


def batch_rows(batch) -> int:
    """Samples in a batch: a tensor's first dimension, or that of a dict's tensors."""
    return len(next(iter(batch.values())) if isinstance(batch, dict) else batch)


def repeat_to(items, size: int):
    """The first ``size`` items of ``items`` repeated (a tensor along dim 0, or a list)."""
    reps = -(-size // len(items))
    if isinstance(items, torch.Tensor):
        return items.repeat(reps, *([1] * (items.dim() - 1)))[:size]
    return (items * reps)[:size]


TASKS: Registry[Callable[..., Task]] = Registry("task")
SMALL_INSTANCES: Registry[Callable[[Path], dict]] = Registry("small task instance")
"""For each task in TASKS, registered next to it: the options of a small instance that builds offline in
seconds (the argument is a folder for the files it needs, e.g. a tiny model). The methods x runtimes x
tasks test matrix runs every one of them."""


def split_arrays(x: np.ndarray, y: np.ndarray, seed: int, test_frac=0.2, val_frac=0.15, calib_max=256) -> Splits:
    """Stratified train/val/test split; calib is a slice of train, never of test."""
    from sklearn.model_selection import train_test_split

    if len(x) < 20:
        raise UserError(f"dataset has {len(x)} rows; need at least 20 to train, validate and test")
    strat = y if np.bincount(y).min() >= 3 else None
    x_rest, x_test, y_rest, y_test = train_test_split(x, y, test_size=test_frac, random_state=seed, stratify=strat)
    strat = y_rest if strat is not None else None
    x_train, x_val, y_train, y_val = train_test_split(
        x_rest, y_rest, test_size=val_frac / (1 - test_frac), random_state=seed, stratify=strat
    )
    t = lambda a, dt=torch.float32: torch.as_tensor(np.ascontiguousarray(a), dtype=dt)  # noqa: E731
    return Splits(
        x_train=t(x_train), y_train=t(y_train, torch.long), x_val=t(x_val), y_val=t(y_val, torch.long),
        x_calib=t(x_train[:calib_max]), x_test=t(x_test), y_test=t(y_test, torch.long),
    )
