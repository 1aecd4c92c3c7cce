"""How fast the cores a latency cell runs on are right now, from fixed reference loops read between
the rounds of the cell.

Shared CPUs change speed under a guest in ways its own counters do not show: on a 2-vCPU cloud
guest (AMD EPYC, Dec 2026) a pure-Python loop switched between two speeds 1.8-2x apart, on each
core independently, in stretches of 0.05-5 s, with no other process, steal or run-queue wait seen
(another tenant on the core's SMT sibling, or its clock). Framework overhead slowed with it (a
30 us batch-1 call by 1.5x), and a cell timed in one stretch or the other made the same row's
median vary by 20-40% between runs. Read between rounds, the loop says which rounds ran at the
host's full speed: the fastest this reference has run in this process.

A second loop reads the cores of torch's other intra-op threads: a tiny elementwise add split one
chunk per thread (``PoolLoop``). On that guest a 2-thread int8 batch-1 call also slowed 1.2-1.3x
while the timing core's loop read full speed and this loop read slow (Dec 2026, 20 s traces of
~1 ms rounds): with both loops judged, 0.25 s windows of the call's full-speed rounds agreed within
1-1.3% CV, against 5-10% with the first loop alone, at the cost of fewer rounds kept. Calls on a
pool of their own (ONNX Runtime's) are judged by the first loop alone: that pool is not read.

A third loop reads the cores' caches: a sum over a 4 MiB buffer, past a core's L2 (``CacheLoop``).
On a 2-vCPU Xeon guest (Dec 2026; 2 MiB of L2 per core) fp32 batch-1 calls ran 1.5-2x slow for
stretches of 0.2 s to minutes while the other two loops read full speed: a neighbour evicting the
caches. Over a 40 s trace this read tracked the slowdown at 0.95 correlation (0.2 s windows), the
others at 0.04-0.12; with it, 3 default runs gave 5 and 6 rows of 6 within 5% batch-1 CV against 4
and 4 without (alternating runs), though it set aside 64-84% of the rounds there. It costs: a
reading takes ~0.25 ms at 2 threads (~0.09 ms with the other two alone), so rounds, ten readings long
at least, grew from ~1 ms to ~3 ms; and it leaves the caches holding its buffer, so a round's first
model calls read their weights from further out (the A/B's fp32 batch-1 medians agreed, 26.0-27.1 us
with it and 25.9-27.0 without).
"""
import math
import time

import torch

GRAIN = 32768  # elements per chunk below which torch runs an elementwise op on one thread (at::internal::GRAIN_SIZE)


def reference_loop(iterations: int = 1000) -> float:
    """Seconds for a fixed, branchy scalar loop (what interpreter and dispatch overhead does)."""
    start = time.perf_counter()
    total = 0
    for i in range(iterations):
        total += i
    return time.perf_counter() - start


class PoolLoop:
    """Seconds for an elementwise add that torch's intra-op pool splits into one chunk per thread, so
    that every thread's core (and the hand-off between them) is in the reading; sized for the threads
    in force when called."""

    name = "PoolLoop"

    def __init__(self):
        self.buffers: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self) -> float:
        threads = torch.get_num_threads()
        if threads not in self.buffers:
            self.buffers[threads] = torch.zeros(GRAIN * threads), torch.empty(GRAIN * threads)
        a, out = self.buffers[threads]
        start = time.perf_counter()
        torch.add(a, a, out=out)
        return time.perf_counter() - start


class CacheLoop:
    """Seconds for a sum over ``nbytes`` of float32, split over torch's intra-op threads: data that does not
    stay in a core's L2, so a reading slows when something else fills the caches. Its full speed is the
    fastest it read between timed calls (``judged_between_calls``): a model call leaves it slower than it
    reads apart from calls, the more so the larger the model (on a 2-vCPU Xeon guest, Dec 2026, its best
    after each call of a linear layer was 1.03-1.04x its best apart from calls at 2 and 32 MB of weights,
    1.6x at 512 MB, for 300 ms at least; judged against its best apart from calls, every round of a
    100M-parameter Llama's latency cells, and every generation, was set aside). The other loops read
    1.01-1.03x there."""

    judged_between_calls = True

    def __init__(self, nbytes: int = 4 << 20):
        self.nbytes = nbytes
        self.buffer: torch.Tensor | None = None

    @property
    def name(self) -> str:
        return f"CacheLoop({self.nbytes})"

    def __call__(self) -> float:
        if self.buffer is None:
            self.buffer = torch.zeros(self.nbytes // 4)
        start = time.perf_counter()
        self.buffer.sum()
        return time.perf_counter() - start


class HostSpeed:
    """Readings of the ``loops`` and the fastest each has run (the host's full speed in this process).
    A reading is, per loop, the faster of two calls after one that warms its code back into the
    caches (the first after a model call runs ~20% slow); a round is at full speed if its readings
    are within ``slow_above`` of the fastest, loop by loop. ``read_seconds``: what one reading costs.
    The default loops: ``reference_loop`` on the timing thread's core, a ``PoolLoop`` over the other
    threads' cores, and a ``CacheLoop`` through the caches."""

    def __init__(self, loops=None, slow_above: float = 1.3, calibrate_seconds: float = 0.2):
        self.loops = tuple(loops) if loops is not None else (reference_loop, PoolLoop(), CacheLoop())
        self.slow_above, self.calibrate_seconds = slow_above, calibrate_seconds
        self.fastest = (math.inf,) * len(self.loops)
        self.read_seconds = 0.0
        self._first_loop_only: HostSpeed | None = None

    def first_loop_only(self) -> "HostSpeed":
        """This host's speed read by its first loop alone (made once): for calls that run on a thread
        pool of their own (ONNX Runtime's), beside which a ``PoolLoop`` would leave torch's workers
        spinning on the cores they use (measured: an ORT batch-256 call 7.5% slower after one)."""
        if self._first_loop_only is None:
            self._first_loop_only = HostSpeed(self.loops[:1], self.slow_above, self.calibrate_seconds)
        return self._first_loop_only

    def fastest_seen(self) -> tuple[float, ...]:
        """The fastest each loop has run, in this host's readings or in its ``first_loop_only`` view's."""
        first = self._first_loop_only.fastest[0] if self._first_loop_only is not None else math.inf
        return (min(self.fastest[0], first), *self.fastest[1:])

    def read(self, between_calls: bool = True) -> tuple[float, ...]:
        """A reading; one taken apart from the calls that are timed (in waits, before a visit's first round:
        not ``between_calls``) sets the fastest of the loops that are not ``judged_between_calls`` only."""
        if math.isinf(self.fastest[0]) and self.read_seconds == 0.0:
            self._calibrate()
        reading = tuple(_warm_reading(loop) for loop in self.loops)
        self.fastest = tuple(min(f, r) if between_calls or not _between_calls(loop) else f
                             for f, r, loop in zip(self.fastest, reading, self.loops))
        return reading

    def slowdown(self, reading: tuple[float, ...]) -> float:
        """``reading`` as a multiple of the fastest seen, for the loop that ran slowest."""
        return max((r / f for r, f in zip(reading, self.fastest) if 0 < f < math.inf), default=1.0)

    def at_full_speed(self, *readings: tuple[float, ...]) -> bool:
        return all(self.slowdown(r) <= self.slow_above for r in readings)

    def wait_for_full_speed(self, max_seconds: float, in_a_row: int = 3, pause: float = 0.001) -> float:
        """Read until ``in_a_row`` readings find the host at full speed, pausing ``pause`` s after a slow one,
        for at most ``max_seconds``; returns the seconds waited. (On a 2-vCPU guest, Dec 2026, one core ran
        1.5x slow for 1-12 s at a time: a cell visited then has no full-speed round to measure from.)"""
        start = time.perf_counter()
        fast = 0
        while fast < in_a_row and time.perf_counter() - start < max_seconds:
            fast = fast + 1 if self.at_full_speed(self.read(between_calls=False)) else 0
            if not fast:
                time.sleep(pause)
        return time.perf_counter() - start

    def _calibrate(self) -> None:
        """The fastest over a short first stretch, so that the first cell is judged too (but for loops
        ``judged_between_calls``), and what a reading costs."""
        start = time.perf_counter()
        calls = 0
        while True:
            seconds = [loop() for loop in self.loops]  # every loop, so that read_seconds is what a reading costs
            self.fastest = tuple(f if _between_calls(loop) else min(f, s)
                                 for f, s, loop in zip(self.fastest, seconds, self.loops))
            calls += 1
            if time.perf_counter() - start > self.calibrate_seconds:
                self.read_seconds = max(3 * (time.perf_counter() - start) / calls, 1e-9)
                return


def _between_calls(loop) -> bool:
    return getattr(loop, "judged_between_calls", False)


def _warm_reading(loop) -> float:
    loop()
    return min(loop(), loop())
