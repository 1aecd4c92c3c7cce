"""A user's own model and data from a Python file: ``--task path/to/file.py:build``.

``build()`` returns a :class:`UserTask`; see examples/custom_task.py.
"""
import importlib.util
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ..errors import UserError
from .base import Task, split_arrays
from .csv_table import class_labels, not_finite_in_float32


@dataclass
class UserTask:
    """build_model makes a fresh model; x, y are the whole labelled table (quantbench
    splits it); pass ``trained`` to skip training and quantize your own weights."""

    build_model: Callable[[], nn.Module]
    x: Any
    y: Any
    trained: nn.Module | None = None
    description: str = ""


def is_user_task(name: str) -> bool:
    return ".py" in name


def load_user_task(spec: str, seed: int = 0, **_) -> Task:
    path, _, func = spec.partition(":")
    user = _call_builder(Path(path), func or "build")
    x = _features(user.x, spec)
    labels = np.asarray(user.y)
    if labels.ndim != 1 or len(x) != len(labels):
        raise UserError(f"{spec}: y must be one label per row of x ({len(x)} rows), got shape {labels.shape}")
    classes, y = class_labels(labels.tolist(), f"y of {spec}")
    _check_model(user, x[:2], len(classes), spec, Path(path))
    return Task(
        name=f"{Path(path).stem}:{func or 'build'}",
        description=user.description or f"user task {spec} ({len(x)} rows)",
        splits=split_arrays(x, y, seed),
        n_classes=len(classes),
        build_model=user.build_model,
        model_key={"task": spec, "file_mtime": Path(path).stat().st_mtime},
        pretrained=user.trained,
    )


def _features(values, spec: str) -> np.ndarray:
    """x as float32, the dtype the model computes in: numbers only, every one finite after the cast."""
    try:
        x = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserError(f"x of {spec} must hold numbers ({e}); encode text as numbers in build()") from None
    if x.ndim < 2:
        raise UserError(f"x of {spec} must have one row per sample, shape (rows, features...), got shape {x.shape}")
    bad = not_finite_in_float32(x)
    if bad.any():
        raise UserError(f"x of {spec} has {int(bad.sum())} values that are NaN, infinite or beyond float32's range "
                        f"(first at index {tuple(int(i) for i in np.argwhere(bad)[0])}); fill or drop them in build()")
    return x.astype(np.float32)


def _check_model(user: UserTask, rows: np.ndarray, n_classes: int, spec: str, path: Path) -> None:
    """The model (``trained``, or a fresh one from ``build_model``) is a module that takes two rows of x
    and returns one logit per class for each, before anything is trained."""
    where = f"{spec}: the trained model" if user.trained is not None else f"{spec}: build_model()"
    try:
        model = user.trained if user.trained is not None else user.build_model()
    except Exception as e:
        raise UserError(f"{where} raised {_described(e, path)}") from None
    if not isinstance(model, nn.Module):
        must = "must be" if user.trained is not None else "must return"
        raise UserError(f"{where} {must} a torch.nn.Module, got {type(model).__name__}")
    try:
        with torch.no_grad():
            out = model.eval()(torch.as_tensor(rows))
    except Exception as e:
        raise UserError(f"{where} cannot take x (rows of shape {tuple(rows.shape[1:])}): "
                        f"{_described(e, path)}") from None
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 2 or shape[0] != len(rows) or shape[1] < n_classes:
        raise UserError(f"{where} returns {type(out).__name__} of shape {shape} for {len(rows)} rows; "
                        f"a classifier of y's {n_classes} classes returns logits of shape ({len(rows)}, {n_classes})")


def _described(error: Exception, path: Path) -> str:
    """'Type: message', and the line of the user's file it came from, when it did."""
    lines = [f.lineno for f in traceback.extract_tb(error.__traceback__) if Path(f.filename).resolve() == path.resolve()]
    return f"{type(error).__name__}: {error}" + (f" (line {lines[-1]} of {path.name})" if lines else "")


def _call_builder(path: Path, func: str) -> UserTask:
    if not path.is_file():
        raise UserError(f"task file not found: {path}")
    name = f"quantbench_user_{path.stem}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:
        raise UserError(f"{path} failed to import: {_described(e, path)}") from None
    if not callable(getattr(module, func, None)):
        raise UserError(f"{path} has no function '{func}()'")
    try:
        result = getattr(module, func)()
    except Exception as e:
        raise UserError(f"{path}:{func}() raised {_described(e, path)}") from None
    if not isinstance(result, UserTask):
        raise UserError(f"{path}:{func}() must return quantbench.UserTask, got {type(result).__name__}")
    return result
