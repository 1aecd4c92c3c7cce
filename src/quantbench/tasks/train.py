"""Train the FP32 baseline properly (seeded, early stopping on validation) and cache it."""
import copy
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from ..measure.accuracy import wilson_interval
from .base import Splits, Task

TRAIN_RECIPE = {"version": 1, "optimizer": "adam", "lr": 1e-3, "weight_decay": 1e-4,
                "batch_size": 64, "max_epochs": 300, "patience": 20}


@dataclass
class TrainInfo:
    seconds: float
    epochs: int
    source: str  # "trained", "cache (<path>)" or "pretrained"
    val_accuracy: float | None = None


def default_cache_dir() -> Path:
    return Path(os.environ.get("QUANTBENCH_CACHE", Path.home() / ".cache" / "quantbench"))


def trained_fp32(task: Task, seed: int, cache_dir: Path | None = None, progress: bool = True):
    """The task's FP32 model, trained once per (task, data, recipe, seed) and then loaded from cache."""
    if task.pretrained is not None:
        return task.pretrained.eval(), TrainInfo(0.0, 0, "pretrained")
    path = (cache_dir or default_cache_dir()) / f"{task.name.replace(':', '_')}-{_cache_key(task, seed)}.pt"
    torch.manual_seed(seed)
    model = task.build_model()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return _finish(task, model), TrainInfo(0.0, 0, f"cache ({path})")
    start = time.perf_counter()
    epochs, val_acc = fit(model, task.splits, lr=TRAIN_RECIPE["lr"], max_epochs=TRAIN_RECIPE["max_epochs"],
                          patience=TRAIN_RECIPE["patience"], seed=seed, desc="train fp32", progress=progress)
    seconds = time.perf_counter() - start
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")  # parallel jobs may train the same model
    torch.save(model.state_dict(), partial)
    os.replace(partial, path)
    return _finish(task, model), TrainInfo(seconds, epochs, "trained", val_accuracy=val_acc)


def _finish(task: Task, model: nn.Module) -> nn.Module:
    model = model.eval()
    after = getattr(task, "after_training", None)
    model = model if after is None else after(model).eval()
    note = majority_note(task.reference(model), task.splits.y_train, task.splits.y_test, task.n_classes)
    task.notes += [note] if note else []
    return model


def majority_note(pred: torch.Tensor, y_train: torch.Tensor, y_test: torch.Tensor, n_classes: int) -> str | None:
    """A note when the model's test accuracy is not clearly above always answering the training set's
    most frequent class (the lower end of its 95% interval is not above that rate): then quality
    differences between methods say little."""
    correct, n = int((pred == y_test).sum()), len(y_test)
    low, high = wilson_interval(correct, n)
    majority = float((y_test == torch.bincount(y_train).argmax()).float().mean())
    if low > majority:
        return None
    return (f"the fp32 model does not beat always answering the most frequent class (test accuracy "
            f"{correct / n:.3f} [{low:.3f}-{high:.3f}], majority rate {majority:.3f}, {n_classes} classes): "
            "differences between methods say little here; fewer classes (bin the target) or better features may help")


def fit(model: nn.Module, splits: Splits, lr: float, max_epochs: int, patience: int, seed: int,
        desc: str, progress: bool = True, before_epoch: Callable[[nn.Module, int], None] | None = None):
    """Adam on cross-entropy; keeps the weights of the best validation loss. Returns (epochs, val acc)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=TRAIN_RECIPE["weight_decay"])
    gen = torch.Generator().manual_seed(seed)
    best = (float("inf"), None, 0.0)
    stale, epoch = 0, 0
    bar = tqdm(range(max_epochs), desc=desc, disable=not progress, leave=False, unit="epoch")
    for epoch in bar:
        if before_epoch:
            before_epoch(model, epoch)
        _train_epoch(model, opt, splits, gen)
        val_loss, val_acc = evaluate(model, splits.x_val, splits.y_val)
        bar.set_postfix(val_loss=f"{val_loss:.3f}", val_acc=f"{val_acc:.3f}")
        if val_loss < best[0] - 1e-4:
            best, stale = (val_loss, copy.deepcopy(model.state_dict()), val_acc), 0
        else:
            stale += 1
            if stale >= patience:
                break
    bar.close()
    if best[1] is not None:
        model.load_state_dict(best[1])
    return epoch + 1, best[2]


def _train_epoch(model, opt, splits: Splits, gen) -> None:
    model.train()
    order = torch.randperm(len(splits.x_train), generator=gen)
    for idx in order.split(TRAIN_RECIPE["batch_size"]):
        opt.zero_grad()
        nn.functional.cross_entropy(model(splits.x_train[idx]), splits.y_train[idx]).backward()
        opt.step()


@torch.no_grad()
def evaluate(model, x, y) -> tuple[float, float]:
    model.eval()
    logits = model(x)
    return nn.functional.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def _cache_key(task: Task, seed: int) -> str:
    blob = json.dumps({"model": task.model_key, "data": task.splits.fingerprint(), "seed": seed,
                       "recipe": TRAIN_RECIPE, "torch": torch.__version__.split("+")[0]}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
