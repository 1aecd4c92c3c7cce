"""The result record (a stable, documented schema; see docs/results-schema.md)."""
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .measure.latency import Latency

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "unsupported")
BASELINE = "fp32"  # the method every other row on its runtime is compared with


@dataclass
class Row:
    method: str
    config: dict[str, Any]
    task: str
    runtime: str
    status: str = "ok"
    error: str | None = None
    kernel: str | None = None
    simulated: bool = False
    metric: str = "accuracy"
    quality: float | None = None
    quality_ci: list[float] | None = None
    higher_is_better: bool = True
    accuracy: float | None = None
    accuracy_ci: list[float] | None = None
    n_samples: int | None = None
    agreement: float | None = None
    size_bytes: int | None = None
    n_params: int | None = None
    bits_per_param: float | None = None
    latency: list[Latency] = field(default_factory=list)
    generation: list[dict[str, Any]] = field(default_factory=list)  # prefill/decode speed (measure/generation.py)
    peak_memory_bytes: int | None = None
    quantize_seconds: float | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_baseline(self) -> bool:
        return self.method == BASELINE

    @property
    def label(self) -> str:
        """How reports name the row: the method, plus '@runtime' off the default runtime."""
        return self.method if self.runtime == "torch-cpu" else f"{self.method}@{self.runtime}"

    def oriented_quality(self) -> float:
        """Quality where larger is always better (perplexity is negated)."""
        return self.quality if self.higher_is_better else -self.quality

    def latency_at(self, batch_size: int) -> Latency | None:
        return next((l for l in self.latency if l.batch_size == batch_size), None)

    def generation_at(self, batch_size: int) -> dict[str, Any] | None:
        """The measured prefill/decode entry at ``batch_size``, if there is one."""
        return next((g for g in self.generation if g.get("status") == "measured" and g["batch_size"] == batch_size),
                    None)


@dataclass
class Results:
    env: dict[str, Any]
    task: dict[str, Any]
    rows: list[Row]
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_frame(self):
        """A pandas DataFrame with one line per row and batch size: the columns of results.csv (a row
        without latency is one line), plus each row's ``label``, ``config`` and ``notes``."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Results.to_frame() needs pandas: pip install 'quantbench[pandas]'") from None
        from .report.files import CSV_COLUMNS, csv_lines

        lines = [{**line, "label": row.label} for row in self.rows for line in csv_lines(row)]
        return pandas.DataFrame(lines, columns=["label", *CSV_COLUMNS, "config", "notes"])

    def save_json(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Results":
        rows = [Row(**{**r, "latency": [Latency(**l) for l in r.get("latency", [])]}) for r in data["rows"]]
        return cls(env=data["env"], task=data["task"], rows=rows, schema_version=data.get("schema_version", 1))

    @classmethod
    def load_json(cls, path: Path) -> "Results":
        return cls.from_dict(json.loads(Path(path).read_text()))
