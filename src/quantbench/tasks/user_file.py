"""A user's own model and data from a Python file: ``--task path/to/file.py:build``.

``build()`` returns a :class:`UserTask`; see examples/custom_task.py.
"""
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch import nn

from ..errors import UserError
from .base import Task, split_arrays


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
    x, y = np.asarray(user.x, dtype=np.float32), np.asarray(user.y)
    if len(x) != len(y):
        raise UserError(f"{spec}: x has {len(x)} rows but y has {len(y)}")
    classes, y = np.unique(y, return_inverse=True)
    return Task(
        name=f"{Path(path).stem}:{func or 'build'}",
        description=user.description or f"user task {spec} ({len(x)} rows)",
        splits=split_arrays(x, y.astype(np.int64), seed),
        n_classes=len(classes),
        build_model=user.build_model,
        model_key={"task": spec, "file_mtime": Path(path).stat().st_mtime},
        pretrained=user.trained,
    )


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
        raise UserError(f"{path} failed to import: {type(e).__name__}: {e}") from None
    if not callable(getattr(module, func, None)):
        raise UserError(f"{path} has no function '{func}()'")
    result = getattr(module, func)()
    if not isinstance(result, UserTask):
        raise UserError(f"{path}:{func}() must return quantbench.UserTask, got {type(result).__name__}")
    return result
