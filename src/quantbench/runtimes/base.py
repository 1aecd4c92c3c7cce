"""Where a model executes. A runtime saves a model as a deployable artifact and loads it
back as a callable; every number in a row is measured on what ``load`` returns."""
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

Runner = Callable[[torch.Tensor], torch.Tensor]


class Runtime(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when this runtime can run here, else why not."""

    def save(self, module: nn.Module, example: torch.Tensor, path: Path) -> Path:
        """Write the artifact (one file) and return its path."""

    def load(self, path: Path) -> Runner:
        """The artifact, loaded from disk, ready to run."""
