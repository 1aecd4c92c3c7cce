"""The fastest the host's reference loops have run in earlier runs on this machine since it booted.

Within one run, a round is at full speed if the loops read near the fastest they have run in that
run (measure/hostspeed.py). A run slow from its start to its end has no fast reading to judge
against, and its cells pass as stable at the slow speed: on a 2-vCPU Xeon guest (Dec 2026) whole
runs of a few minutes timed fp32 at batch 1 at 51-53 us, marked stable, where it ran 26 us at full
speed; and in 3 s of readings, separate processes found the cache loop's fastest at 38.6-44.0 us,
or, in 2 of 8, at 58.9-59.4 us, never reaching it. The record keeps each loop's fastest over the
runs of this boot (``/proc/sys/kernel/random/boot_id``), threads, Python, torch and loops, in
``host-speed.json`` in the cache folder; a run whose cells were judged against readings more than
``HostSpeed.slow_above`` slower marks them unstable (``CellTimer.judge_against_record``). A new boot,
another machine or another setup starts a new record. ``QUANTBENCH_HOST_RECORD=off`` turns it off.
"""
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

FILE = "host-speed.json"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
SWITCH = "QUANTBENCH_HOST_RECORD"


@dataclass
class HostRecord:
    """Each loop's fastest reading (seconds) in earlier runs under ``key``, and when it was read; None
    before the first run."""

    path: Path
    key: str
    names: tuple[str, ...]
    fastest: tuple[float, ...] | None
    when: tuple[str, ...] | None

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
        return cls(path, key, names, tuple(fastest) if known else None, tuple(when) if known else None)

    def slowdown(self, judged_s: tuple[float, ...]) -> tuple[float, int] | None:
        """How many times slower than this record ``judged_s`` (the first loops' fastest readings that a cell
        was judged against) is, for the loop that is most so, and that loop's index; None without a record."""
        if self.fastest is None:
            return None
        ratios = [(j / f, i) for i, (j, f) in enumerate(zip(judged_s, self.fastest)) if f > 0 and j > 0]
        return max(ratios, default=None)

    def save(self, fastest: tuple[float, ...]) -> None:
        """This run's ``fastest`` readings merged in, loop by loop, with other boots' entries dropped; a
        record that cannot be written is left as it was (it only ever adds a reason to rerun)."""
        if len(fastest) != len(self.names) or not all(0 < f < math.inf for f in fastest):
            return
        now = time.strftime("%Y-%m-%d %H:%M")
        old_fastest, old_when = self.fastest or (math.inf,) * len(fastest), self.when or ("",) * len(fastest)
        merged = [(f, now) if f < o else (o, w) for f, o, w in zip(fastest, old_fastest, old_when)]
        boot = self.key.split("|")[0]
        entries = {k: v for k, v in _entries(self.path).items() if k.split("|")[0] == boot}
        entries[self.key] = {"fastest_s": [f for f, _ in merged], "when": [w for _, w in merged]}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, delete=False, suffix=".tmp") as out:
                json.dump(entries, out, indent=1)
            os.replace(out.name, self.path)
        except OSError:
            return


def loop_name(loop) -> str:
    """What a host loop is called in a record key: its ``name`` if it has one, else its function's name."""
    return getattr(loop, "name", None) or getattr(loop, "__name__", type(loop).__name__)


def _entries(path: Path) -> dict:
    try:
        entries = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}
