"""How fast the core the timing thread runs on is right now, from a fixed reference loop read
between the rounds of a latency cell.

Shared CPUs change speed under a guest in ways its own counters do not show: on a 2-vCPU cloud
guest (AMD EPYC, Dec 2026) a pure-Python loop switched between two speeds 1.8-2x apart, on each
core independently, in stretches of 0.05-5 s, with no other process, steal or run-queue wait seen
(another tenant on the core's SMT sibling, or its clock). Framework overhead slowed with it (a
30 us batch-1 call by 1.5x), and a cell timed in one stretch or the other made the same row's
median vary by 20-40% between runs. Read between rounds, the loop says which rounds ran at the
host's full speed: the fastest this reference has run in this process.

What it does not see: a slowdown of only the cores that other threads of a parallel call run on
(on that guest, a 2-thread int8 call slowed 1.6x while the main core stayed fast). Reading the
other cores would mean moving the thread there, where the parallel runtime's workers are spinning,
and the reading would measure them instead.
"""
import math
import time


def reference_loop(iterations: int = 1000) -> float:
    """Seconds for a fixed, branchy scalar loop (what interpreter and dispatch overhead does)."""
    start = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i
    return time.perf_counter() - start


class HostSpeed:
    """Readings of ``loop`` and the fastest seen (the host's full speed in this process). A reading
    is the faster of two calls after one that warms the loop's code back into the caches (the first
    after a model call runs ~20% slow); a round is at full speed if its readings are within
    ``slow_above`` of the fastest. ``read_seconds``: what one reading costs."""

    def __init__(self, loop=reference_loop, slow_above: float = 1.3, calibrate_seconds: float = 0.2):
        self.loop, self.slow_above, self.calibrate_seconds = loop, slow_above, calibrate_seconds
        self.fastest = math.inf
        self.read_seconds = 0.0

    def read(self) -> float:
        if math.isinf(self.fastest):
            self._calibrate()
        self.loop()
        reading = min(self.loop(), self.loop())
        self.fastest = min(self.fastest, reading)
        return reading

    def slowdown(self, reading: float) -> float:
        """``reading`` as a multiple of the fastest seen."""
        return reading / self.fastest if 0 < self.fastest < math.inf else 1.0

    def at_full_speed(self, *readings: float) -> bool:
        return all(self.slowdown(r) <= self.slow_above for r in readings)

    def _calibrate(self) -> None:
        """The fastest over a short first stretch, so that the first cell is judged too."""
        start = time.perf_counter()
        calls = 0
        while True:
            self.fastest = min(self.fastest, self.loop())
            calls += 1
            if time.perf_counter() - start > self.calibrate_seconds:
                self.read_seconds = 3 * (time.perf_counter() - start) / calls
                return
