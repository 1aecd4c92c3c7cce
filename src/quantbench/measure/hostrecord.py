"""The fastest the host's reference loops, and each model's baseline, have run in earlier runs on this
machine since it booted.

Within one run, a round is at full speed if the loops read near the fastest they have run in that
run (measure/hostspeed.py). A run slow from its start to its end has no fast reading to judge
against, and its cells pass as stable at the slow speed: on a 2-vCPU Xeon guest (Dec 2026) whole
runs of a few minutes timed fp32 at batch 1 at 51-53 us, marked stable, where it ran 26 us at full
speed; and in 3 s of readings, separate processes found the cache loop's fastest at 38.6-44.0 us,
or, in 2 of 8, at 58.9-59.4 us, never reaching it. The record keeps, over the
runs of this boot (``/proc/sys/kernel/random/boot_id``), threads, Python, torch and loops, in
``host-speed.json`` in the cache folder, each loop's fastest reading, and the fastest of each of the
last ``RECENT_RUNS`` runs. A run is judged against both (``CellTimer.judge_against_record``): its cells
are unstable when the readings they were judged against were more than ``HostSpeed.slow_above``
slower than the loops' usual speed (the median of the recent runs' fastest), or more than ``GROSS``
slower than their fastest since boot. The usual speed ages, so that a host that has become slower for
good is judged by what it does now: judged against the fastest alone, a quiet host that ran ~1.25x
slower than in the hour before had whole runs flagged at random near a 1.3x line, and no run could
clear it until a reboot. The fastest does not age, so that a host slow for good by more than ``GROSS``
(the Xeon guest above ran ~2x slow for a day) is never taken for its full speed. The same is kept
for the fastest visit median of each baseline (fp32 on a runtime) per model and batch size: a
slowdown the loops do not read shows there. A new boot, another machine or another setup starts a
new record. ``QUANTBENCH_HOST_RECORD=off`` turns it off.
"""
import contextlib
import hashlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

FILE = "host-speed.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SWITCH = "QUANTBENCH_HOST_RECORD"
READINGS = "between-calls"  # which readings set the fastest (HostSpeed.read): records of others are another key
RECENT_RUNS = 5
GROSS = 1.6  # above the 1.53x at which 2 of 8 processes (3 s each) read the cache loop's fastest


@dataclass(frozen=True)
class Slower:
    """A reading against the record: how many times slower than its usual (the median of the recent runs'
    fastest; None before a run was kept) and than its fastest since boot, and what each was."""

    usual: float | None
    fastest: float
    said: str

    def beyond(self, usual_line: float) -> bool:
        return (self.usual or 0.0) > usual_line or self.fastest > GROSS


@dataclass
class HostRecord:
    """Each loop's fastest reading (seconds) in earlier runs under ``key``, and when it was read (None
    before the first run); ``baselines``: baseline key (``baseline_key``) -> [fastest median ms, when];
    ``recent``: the last ``RECENT_RUNS`` runs, oldest first, each {"when", "fastest_s", "baselines": key -> ms}."""

    path: Path
    key: str
    names: tuple[str, ...]
    fastest: tuple[float, ...] | None
    when: tuple[str, ...] | None
    baselines: dict = field(default_factory=dict)
    recent: list = field(default_factory=list)

    @classmethod
    def load(cls, folder: Path | None, loops: tuple, threads: int, boot_id: Path = BOOT_ID) -> "HostRecord | None":
        """The record in ``folder`` for these ``loops`` at ``threads``; None when off or the boot is unknown."""
        if folder is None or os.environ.get(SWITCH, "").lower() in ("off", "0", "no"):
            return None
        try:
            boot = boot_id.read_text().strip()
        except OSError:
            return None
        names = tuple(loop_name(loop) for loop in loops)
        key = "|".join([boot, f"threads={threads}", f"python={platform.python_version()}",
                        f"torch={torch.__version__}", ",".join(names), READINGS])
        path = Path(folder) / FILE
        entry = _entries(path).get(key, {})
        fastest, when = entry.get("fastest_s"), entry.get("when")
        known = isinstance(fastest, list) and isinstance(when, list) and len(fastest) == len(when) == len(names)
        baselines = entry.get("baselines") if isinstance(entry.get("baselines"), dict) else {}
        recent = entry.get("recent") if known and isinstance(entry.get("recent"), list) else []
        recent = [run for run in recent if _run_fits(run, len(names))]
        return cls(path, key, names, tuple(fastest) if known else None, tuple(when) if known else None,
                   {k: v for k, v in baselines.items() if isinstance(v, list) and len(v) == 2}, recent)

    def loop_slowdowns(self, judged_s: tuple[float, ...]) -> list[Slower]:
        """``judged_s`` (the loops' fastest readings that a cell was judged against) against this record,
        loop by loop; empty without a record."""
        if self.fastest is None:
            return []
        found = []
        for i, (judged, fastest) in enumerate(zip(judged_s, self.fastest)):
            usual = _median([run["fastest_s"][i] for run in self.recent])
            if judged > 0 and fastest > 0:
                found.append(_slower(f"{self.names[i]}: ", 1e6 * judged, usual and 1e6 * usual, 1e6 * fastest,
                                     self.when[i], "us"))
        return found

    def baseline_slowdown(self, key: str, fastest_ms: float) -> Slower | None:
        """A baseline's fastest visit (``fastest_ms``) in this run against its record; None without one."""
        if key not in self.baselines or not fastest_ms > 0:
            return None
        ms, when = self.baselines[key]
        usual = _median([run["baselines"][key] for run in self.recent if key in run["baselines"]])
        return _slower("", fastest_ms, usual, ms, when, "ms")

    def save(self, fastest: tuple[float, ...], baselines: dict[str, float]) -> None:
        """This run's ``fastest`` readings and ``baselines`` (key -> fastest visit median, ms) merged in, each
        keeping the faster, with other boots' entries dropped; a record that cannot be written is left as
        it was (it only ever adds a reason to rerun)."""
        if len(fastest) != len(self.names) or not all(0 < f < math.inf for f in fastest):
            return
        now = time.strftime("%Y-%m-%d %H:%M")
        old_fastest, old_when = self.fastest or (math.inf,) * len(fastest), self.when or ("",) * len(fastest)
        merged = [(f, now) if f < o else (o, w) for f, o, w in zip(fastest, old_fastest, old_when)]
        kept = dict(self.baselines)
        for key, ms in baselines.items():
            if key not in kept or ms < kept[key][0]:
                kept[key] = [ms, now]
        recent = [*self.recent, {"when": now, "fastest_s": list(fastest), "baselines": baselines}][-RECENT_RUNS:]
        boot = self.key.split("|")[0]
        entries = {k: v for k, v in _entries(self.path).items() if k.split("|")[0] == boot}
        entries[self.key] = {"fastest_s": [f for f, _ in merged], "when": [w for _, w in merged], "baselines": kept,
                            "recent": recent}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as out:
                json.dump(entries, out, indent=1)
            os.replace(out.name, self.path)
        except OSError:
            with contextlib.suppress(OSError, NameError):
                os.unlink(out.name)


def model_identity(task_name: str, description: str, options: dict, model) -> str:
    """A short hash of what a baseline's latency depends on besides the host: the task, its options
    (shapes, sequence length) and the model's tensors' names, shapes and dtypes (not their values)."""
    tensors = [(name, list(t.shape), str(t.dtype)) for name, t in model.state_dict().items()]
    said = json.dumps([task_name, description, options, tensors], sort_keys=True, default=str)
    return hashlib.sha256(said.encode()).hexdigest()[:16]


def baseline_key(model: str, runtime: str, batch_size: int) -> str:
    return f"{model}|{runtime}|b{batch_size}"


def loop_name(loop) -> str:
    """What a host loop is called in a record key: its ``name`` if it has one, else its function's name."""
    return getattr(loop, "name", None) or getattr(loop, "__name__", type(loop).__name__)


def _slower(name: str, judged: float, usual: float | None, fastest: float, when: str, unit: str) -> Slower:
    """``judged`` against a record's ``usual`` and ``fastest`` (set at ``when``), in ``unit``."""
    usual_said = f"{usual:.4g} {unit} usual (median of recent runs), " if usual else ""
    return Slower(usual and judged / usual, judged / fastest,
                  f"{name}{judged:.4g} {unit} against {usual_said}{fastest:.4g} {unit} fastest ({when})")


def _median(values: list[float]) -> float | None:
    """The middle of ``values``, the faster of the two middle ones for an even count (of two runs, the faster)."""
    return statistics.median_low(values) if values else None


def _run_fits(run, loops: int) -> bool:
    """A kept run as ``save`` writes it, for ``loops`` loops."""
    return (isinstance(run, dict) and isinstance(run.get("fastest_s"), list) and len(run["fastest_s"]) == loops
            and all(_positive(f) for f in run["fastest_s"]) and isinstance(run.get("baselines"), dict)
            and all(_positive(ms) for ms in run["baselines"].values()))


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def _entries(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
