"""Stored runs -> comparison groups: one group per (task, machine), one line per method,
seeds pooled. Reads stores only; measures nothing."""
import dataclasses
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..measure.latency import Latency
from ..results import Row
from ..sweep.api import store_path
from ..sweep.inputs import option_applies
from ..sweep.runs import short_text, spec_defaults
from ..sweep.store import Store

# Spec fields that do not make another task: the runtime is a line within the task, like a method.
NOT_TASK = ("task", "methods", "seed", "out", "progress", "cache_dir", "threads", "runtime")


@dataclass
class Entry:
    """One stored run."""
    run_id: str
    run_key: str
    status: str
    error: str | None
    task: str  # a label: task name plus what distinguishes it from the other tasks
    hardware: str
    method: str
    seed: int | None
    row: Row | None
    env: dict[str, Any] | None
    spec: dict[str, Any]
    finished_at: str | None
    job_id: str | None
    store: str
    runtime: str = ""  # where the run executed (the default runtime for a store that predates the field)
    line: str = ""  # the comparison line: Row.label, the method plus '@runtime' off the default runtime

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.row is not None


@dataclass
class MethodLine:
    """One method (on one runtime) in one group, pooled over seeds."""
    method: str  # the line's label
    entries: list[Entry]

    @property
    def runtime(self) -> str:
        return self.entries[0].runtime

    @property
    def rows(self) -> list[Row]:
        return [e.row for e in self.entries if e.ok]

    @property
    def failed(self) -> list[Entry]:
        return [e for e in self.entries if not e.ok]

    def quality(self) -> tuple[float, float, float] | None:
        """(mean, low, high): low-high is the range over seeds, or the 95% CI of a single run."""
        values = [r.quality for r in self.rows if r.quality is not None]
        if not values:
            return None
        if len(values) == 1 and self.rows[0].quality_ci:
            return values[0], *self.rows[0].quality_ci
        return statistics.fmean(values), min(values), max(values)

    def latency_ms(self, batch_size: int) -> float | None:
        values = [lat.median_ms for r in self.rows if (lat := r.latency_at(batch_size))]
        return statistics.median(values) if values else None

    def unstable_runs(self, batch_size: int) -> int:
        """Runs whose cell at ``batch_size`` was marked unstable."""
        return sum(1 for r in self.rows if (lat := r.latency_at(batch_size)) and lat.stable is False)

    def mean(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.rows if getattr(r, attr) is not None]
        return statistics.fmean(values) if values else None

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.rows if getattr(r, attr) is not None]
        return statistics.median(values) if values else None

    def first(self, attr: str) -> Any:
        return next((getattr(r, attr) for r in self.rows if getattr(r, attr) is not None), None)


@dataclass
class Group:
    task: str
    hardware: str
    lines: list[MethodLine]

    @property
    def entries(self) -> list[Entry]:
        return [e for line in self.lines for e in line.entries]

    @property
    def failed(self) -> list[Entry]:
        return [e for line in self.lines for e in line.failed]

    @property
    def batch_sizes(self) -> list[int]:
        return sorted({lat.batch_size for e in self.entries if e.ok for lat in e.row.latency})

    @property
    def metric(self) -> str:
        return next((e.row.metric for e in self.entries if e.ok), "accuracy")


def load_entries(stores: list[Path]) -> list[Entry]:
    entries, seen = [], set()
    for given in stores:
        path = store_path(given) if given.is_dir() else given
        if not path.is_file():
            raise UserError(f"no store at {path} (give a sweep folder or its store.sqlite)")
        with Store(path) as store:
            for record in store.records():
                identity = (record["run_key"], record["hardware"], record["finished_at"])
                if identity not in seen:
                    seen.add(identity)
                    entries.append(_entry(record, str(path)))
    _label(entries)
    return entries


def group_entries(entries: list[Entry]) -> list[Group]:
    groups: dict[tuple[str, str], dict[str, list[Entry]]] = {}
    for e in entries:
        groups.setdefault((e.task, e.hardware), {}).setdefault(e.line, []).append(e)
    return [Group(task, hw, [MethodLine(m, es) for m, es in methods.items()])
            for (task, hw), methods in sorted(groups.items())]


def machines(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """hardware label -> the environment recorded there (the latest run's)."""
    found: dict[str, dict[str, Any]] = {}
    for e in sorted(entries, key=lambda e: e.finished_at or ""):
        if e.env:
            found[e.hardware] = e.env
    return found


def _entry(record: dict[str, Any], store: str) -> Entry:
    row = _row(record["row"]) if record.get("row") else None
    return Entry(run_id=record["run_id"], run_key=record["run_key"], status=record["status"], error=record["error"],
                 task=record.get("task") or "", hardware=record.get("hardware") or "unknown machine",
                 method=record.get("method") or "", seed=record.get("seed"), row=row, env=record.get("env"),
                 spec=record.get("spec") or {}, finished_at=record.get("finished_at"), job_id=record.get("job_id"),
                 store=store)


def _row(data: dict[str, Any]) -> Row:
    names = {f.name for f in dataclasses.fields(Row)}
    latency = [Latency(**lat) for lat in data.get("latency", [])]
    return Row(**{**{k: v for k, v in data.items() if k in names}, "latency": latency})


def _label(entries: list[Entry]) -> None:
    """Task: its name plus the spec fields that differ between tasks and apply to it ('tabular dataset=wine',
    but a plugin task shows no dataset);
    line: the row's label. A field a store predates counts as its default, as in run keys."""
    defaults = spec_defaults()
    specs = [{**defaults, **e.spec} for e in entries]
    keys = list(dict.fromkeys(k for s in specs for k in s))
    varying = [k for k in keys if len({repr(s.get(k)) for s in specs}) > 1]
    for e, spec in zip(entries, specs):
        details = [f"{k}={short_text(spec.get(k))}" for k in varying
                   if k not in NOT_TASK and option_applies(str(spec.get("task")), k)]
        e.task = " ".join([str(spec.get("task")), *details])
        e.runtime = str(spec.get("runtime"))
        e.line = _row_label(e.method, e.runtime)


def _row_label(method: str, runtime: str) -> str:
    """Row.label, the one naming rule, also for a failed run that stored no row."""
    return Row(method=method, config={}, task="", runtime=runtime).label
