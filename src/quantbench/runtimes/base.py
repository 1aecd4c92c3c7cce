"""Where a model executes. A runtime says whether it can run a quantized model's format
(``supports``), writes it as a deployable artifact on disk (``realize``) and loads that artifact
back as a callable (``load``); every number in a row is measured on what ``load`` returns."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

from ..measure.runner import Runner  # noqa: F401  (the runner protocol that load() returns)
from ..registry import Registry

@dataclass
class Realized:
    """An artifact on disk and what it took to make it. ``extra_files``: files beside ``path`` that
    hold its tensors (ONNX external data); they count in its size. ``compute_dtype``: what its kernels
    multiply in (float32, bfloat16, float16, int8, float8), whose measured peak bounds the row's compute.
    ``quantize_seconds`` is the quantization's, set by ``pipeline.realize_row`` (writing the artifact
    is not quantizing)."""

    path: Path
    kernel: str
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    extra_files: list[Path] = field(default_factory=list)
    quantize_seconds: float = 0.0
    compute_dtype: str = "float32"


class Runtime(Protocol):
    name: str

    def unavailable_reason(self) -> str | None:
        """None when this runtime can run here, else why not."""

    def describe(self) -> str:
        """What executes in this runtime here (versions, engines, kernels); asked only when available."""

    def supports(self, quantized) -> str | None:
        """None when this runtime can run ``quantized`` (a methods.Quantized), else why not: decided from its
        format alone, never from the method that made it."""

    def realize(self, quantized, task, stem: Path) -> Realized:
        """Write ``quantized`` as this runtime's artifact at ``stem`` (its suffix chosen here) and name the
        kernel that runs it."""

    def load(self, path: Path, task) -> Runner:
        """The artifact, loaded from disk, ready to run."""

    def peak_memory(self, path: Path, task, batch_size: int, threads: int) -> int | None:
        """Peak memory to load the artifact and run a batch, or None when not measured."""


RUNTIMES: Registry[Callable[[], Runtime]] = Registry("runtime")
