"""Wall time and peak resident memory of this process, per phase of a run and for the whole run.

The peak is Linux's resident high-water mark (``VmHWM`` in /proc/self/status), read at the end of
each phase and reset (``/proc/self/clear_refs``) at its start, so a phase's peak is its own; every
reading also feeds the whole run's peak, which is therefore the true maximum since the process began
(an outside observer's ``ru_maxrss`` sees only the peak since the last reset). Where the mark cannot
be reset, phases record times only and the whole run's peak is the unreset mark."""
import contextlib
import ctypes
import time
from dataclasses import dataclass, field

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"


def resident_high_water() -> int | None:
    """This process's resident high-water mark in bytes (None where /proc has none)."""
    try:
        with open(_STATUS) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_high_water() -> bool:
    """Reset the resident high-water mark to the current RSS; False where it cannot be."""
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def trim_heap() -> None:
    """Give the C heap's free pages back to the system (glibc's ``malloc_trim``; nothing elsewhere): blocks
    that a finished phase freed below glibc's mmap threshold otherwise stay resident and count in the
    next phase's peak."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


@dataclass
class Phases:
    """``with phases.phase("name"): ...`` records the phase's seconds and its peak RSS; ``peak_bytes``
    is the whole run's (every phase and the time between them)."""

    records: list[dict] = field(default_factory=list)
    peak_bytes: int | None = None
    resettable: bool = True

    def _read(self) -> int | None:
        hwm = resident_high_water()
        if hwm is not None:
            self.peak_bytes = max(self.peak_bytes or 0, hwm)
        return hwm

    def _reset(self) -> None:
        self.resettable = self.resettable and reset_high_water()

    @contextlib.contextmanager
    def phase(self, name: str):
        self._read()  # the time since the last phase counts in the whole run's peak
        trim_heap()
        self._reset()
        start = time.perf_counter()
        record = {"name": name, "seconds": None, "peak_rss_bytes": None}
        self.records.append(record)
        try:
            yield record
        finally:
            record["seconds"] = time.perf_counter() - start
            record["peak_rss_bytes"] = self._read() if self.resettable else None
            self._reset()

    def summary(self) -> dict:
        """What results.json records: the whole run's peak and each phase."""
        self._read()  # never reset (no clear_refs): the mark is then the whole run's peak anyway
        return {"peak_rss_bytes": self.peak_bytes, "phases": self.records}
