"""The fastest the host's reference loops, and each model's baseline, have run in earlier runs on this
machine since it booted.

Within one run, a round is at full speed if the loops read near the fastest they have run in that
run (measure/hostspeed.py). A run slow from its start to its end has no fast reading to judge
against, and its cells pass as stable at the slow speed: on a 2-vCPU Xeon guest (Dec 2026) whole
runs of a few minutes timed fp32 at batch 1 at 51-53 us, marked stable, where it ran 26 us at full
speed; and in 3 s of readings, separate processes found the cache loop's fastest at 38.6-44.0 us,
or, in 2 of 8, at 58.9-59.4 us, never reaching it. The record keeps each loop's fastest over the
runs of this boot (``/proc/sys/kernel/random/boot_id``), threads, Python, torch and loops, in
``host-speed.json`` in the cache folder; a run whose cells were judged against readings more than
``HostSpeed.slow_above`` slower marks them unstable (``CellTimer.judge_against_record``). It also keeps
the fastest visit median of each baseline (fp32 on a runtime) per model and batch size: a slowdown
the loops do not read shows there, and a run whose baseline never came within ``HostSpeed.slow_above``
of it marks that batch size's cells unstable. A new boot, another machine or another setup starts a
new record. ``QUANTBENCH_HOST_RECORD=off`` turns it off.
"""
import contextlib
import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

FILE = "host-speed.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SWITCH = "QUANTBENCH_HOST_RECORD"


@dataclass
class HostRecord:
    """Each loop's fastest reading (seconds) in earlier runs under ``key``, and when it was read (None
    before the first run); ``baselines``: baseline key (``baseline_key``) -> [fastest median ms, when]."""

    path: Path
    key: str
    names: tuple[str, ...]
    fastest: tuple[float, ...] | None
    when: tuple[str, ...] | None
    baselines: dict = field(default_factory=dict)

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
                        f"torch={torch.__version__}", ",".join(names)])
        path = Path(folder) / FILE
        entry = _entries(path).get(key, {})
        fastest, when = entry.get("fastest_s"), entry.get("when")
        known = isinstance(fastest, list) and isinstance(when, list) and len(fastest) == len(when) == len(names)
        baselines = entry.get("baselines") if isinstance(entry.get("baselines"), dict) else {}
        return cls(path, key, names, tuple(fastest) if known else None, tuple(when) if known else None,
                   {k: v for k, v in baselines.items() if isinstance(v, list) and len(v) == 2})

    def slowdown(self, judged_s: tuple[float, ...]) -> tuple[float, int] | None:
        """How many times slower than this record ``judged_s`` (the first loops' fastest readings that a cell
        was judged against) is, for the loop that is most so, and that loop's index; None without a record."""
        if self.fastest is None:
            return None
        ratios = [(j / f, i) for i, (j, f) in enumerate(zip(judged_s, self.fastest)) if f > 0 and j > 0]
        return max(ratios, default=None)

    def baseline_slowdown(self, key: str, fastest_ms: float) -> tuple[float, float, str] | None:
        """How many times slower than in earlier runs a baseline's fastest visit (``fastest_ms``) in this run
        is, with the record's ms and when it was timed; None without a record of it."""
        if key not in self.baselines or not fastest_ms > 0:
            return None
        ms, when = self.baselines[key]
        return fastest_ms / ms, ms, when

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
        boot = self.key.split("|")[0]
        entries = {k: v for k, v in _entries(self.path).items() if k.split("|")[0] == boot}
        entries[self.key] = {"fastest_s": [f for f, _ in merged], "when": [w for _, w in merged], "baselines": kept}
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


def _entries(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
