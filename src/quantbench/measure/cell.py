"""One latency cell, as every row gets it: timed alone or paired with its baseline, watched by a
noise sampler, judged stable or not, and set against its physical bound."""
from dataclasses import dataclass, field
from typing import Callable

from .bounds import HostBounds, bound_ms
from .hostspeed import HostSpeed
from .latency import Latency, measure_latency, measure_paired
from .noise import Limits, ProcSampler, instability
from .runner import Runner


@dataclass
class CellTimer:
    """What the cells of one run share: threads, the host's measured bounds, the noise sampler and
    limits, the host's speed (a reference loop read between rounds, measure/hostspeed.py), and the
    shortest time a cell is timed (long enough for the CPU counters, which tick every 10 ms, to say
    what else ran)."""

    threads: int
    bounds: dict[str, HostBounds] = field(default_factory=dict)  # device -> what was measured there
    sampler: Callable[[], object] = ProcSampler
    limits: Limits = field(default_factory=Limits)
    speed: HostSpeed | None = field(default_factory=HostSpeed)  # None: every round counts
    min_seconds: float = 0.25
    max_seconds: float = 2.0

    def time(self, run: Runner, batch, batch_size: int, baseline: tuple[Runner, object] | None = None) -> Latency:
        """The cell of ``run`` on ``batch``; with a ``baseline`` (its runner and batch), paired with it."""
        sampler = self.sampler()
        sampler.start()
        if baseline is None:
            lat = measure_latency(run, batch, batch_size, min_seconds=self.min_seconds, max_seconds=self.max_seconds,
                                  host=self.speed)
        else:
            lat = measure_paired(run, batch, *baseline, batch_size, min_seconds=self.min_seconds,
                                 max_seconds=self.max_seconds, host=self.speed)
        noise = sampler.stop()
        reason = instability(noise, lat.spread, self.threads, self.limits, host=lat.noise)
        lat.noise, lat.stable, lat.unstable_reason = noise.to_dict() | (lat.noise or {}), reason is None, reason
        return lat

    def host(self, device: str = "cpu") -> HostBounds:
        """``device``'s measured bandwidth and GEMM peaks (each measured once, when first asked)."""
        return self.bounds.setdefault(device, HostBounds(device))

    def set_bound(self, lat: Latency, weight_bytes: int, macs: int, dtype: str, device: str = "cpu") -> None:
        """``lat``'s bound on ``device``: reading ``weight_bytes`` once, or ``macs`` multiply-adds in ``dtype``."""
        host = self.host(device)
        bound = bound_ms(weight_bytes, macs, host.bandwidth_gbs(weight_bytes), host.peak_gops(dtype))
        lat.bound_ms, lat.bound_by = bound.ms, bound.by
        lat.fraction_of_bound = bound.ms / lat.median_ms if lat.median_ms > 0 else None
