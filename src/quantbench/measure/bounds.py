"""How fast a cell could physically be: the host's read bandwidth and peak GEMM throughput, measured
once per run with the run's threads, and the bound of a cell: max(bytes of weights read per call /
bandwidth, multiply-adds of its weight layers x 2 / peak of the dtype its kernel computes in)."""
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .noise import Limits, ProcSampler, instability

GEMM_SIZE = 1024
MIN_BUFFER, MAX_BUFFER = 1 << 20, 1 << 29  # bandwidth buffers from 1 MiB (cache) to 512 MiB (memory)
# Each probe's shortest length, as a latency cell's: the CPU counters that judge it tick every 10 ms,
# and a 20 ms probe read one stray tick as half a busy core.
WATCH_SECONDS = 0.25
PROBE_WAIT_SECONDS = 5.0  # at most, for the host's loops to read full speed before a probe (as a cell's visit)


@dataclass
class Bound:
    ms: float
    by: str  # "memory" or "compute"


def bound_ms(weight_bytes: int, macs: int, bandwidth_gbs: float, peak_gops: float) -> Bound:
    """The larger of reading the weights once at ``bandwidth_gbs`` and doing ``macs`` multiply-adds
    (2 operations each) at ``peak_gops``."""
    memory = weight_bytes / bandwidth_gbs / 1e6
    compute = 2 * macs / peak_gops / 1e6
    return Bound(memory, "memory") if memory >= compute else Bound(compute, "compute")


@dataclass
class HostBounds:
    """Bandwidth per working-set size and GEMM peak per dtype on ``device``, each measured the first
    time a cell needs it and kept for the rest of the run (``measured`` is what results record).
    Each probe is watched by ``sampler`` and judged as a cell is (``limits``, ``threads``): a probe
    that ran while other processes used the cores is kept with the reason in ``contended``, since it
    understates the host and so overstates every bound from it. With the run's ``speed`` (``HostSpeed``,
    on the CPU), a probe first waits, as a visit does, for the host's loops to read full speed, and one
    for which they did not is kept so too: a slow stretch that no counter shows slows a probe as it
    slows a cell."""

    device: str = "cpu"
    bandwidth: dict[int, float] = field(default_factory=dict)  # buffer bytes -> GB/s
    peak: dict[str, float] = field(default_factory=dict)  # dtype -> GOP/s
    sampler: Callable[[], object] = ProcSampler
    threads: int = 1
    limits: Limits = field(default_factory=Limits)
    contended: dict[str, str] = field(default_factory=dict)  # probe -> why it cannot be trusted
    speed: object = None  # the run's HostSpeed; None: probes neither wait for nor are judged by it

    def bandwidth_gbs(self, nbytes: int) -> float:
        """Read bandwidth over a buffer the size of ``nbytes`` (rounded up to a power of two, within
        1 MiB - 512 MiB): weights that fit a cache are read at the cache's pace, larger ones at memory's."""
        size = min(max(1 << max(int(nbytes) - 1, 1).bit_length(), MIN_BUFFER), MAX_BUFFER)
        if size not in self.bandwidth:
            self.bandwidth[size] = self._watched(f"bandwidth {size} B", lambda: read_bandwidth_gbs(size, self.device))
        return self.bandwidth[size]

    def peak_gops(self, dtype: str) -> float:
        """Peak of ``dtype``'s GEMM; infinite (no compute bound) for a dtype without a probe (float8)."""
        if dtype not in GEMM_OPERANDS:
            return math.inf
        if dtype not in self.peak:
            self.peak[dtype] = self._watched(f"{dtype} GEMM", lambda: gemm_peak_gops(dtype, self.device))
        return self.peak[dtype]

    def _watched(self, probe: str, measure: Callable[[], float]) -> float:
        """``measure()`` (a probe lasting ``WATCH_SECONDS`` at least), judged by the sampler and the host's loops."""
        slow = self._wait_for_full_speed()
        sampler = self.sampler()
        sampler.start()
        value = measure()
        reason = instability(sampler.stop(), 1.0, self.threads, self.limits) if self.device == "cpu" else None
        if reason or slow:
            self.contended[probe] = "; ".join(filter(None, [reason, slow]))
        return value

    def _wait_for_full_speed(self) -> str | None:
        """Wait up to ``PROBE_WAIT_SECONDS`` for the loops of ``speed`` to read full speed three readings in a
        row; why not, if they did not. (Not judged by one more reading: right after a wait that ended so, one
        in a few read the loops 1.5-2.6x their fastest on a quiet Xeon guest, Dec 2026.)"""
        if self.speed is None or self.speed.wait_for_full_speed(PROBE_WAIT_SECONDS) < PROBE_WAIT_SECONDS:
            return None
        return (f"the host's reference loops did not read full speed (within {self.speed.slow_above}x their fastest "
                f"in this run) three times in a row in the {PROBE_WAIT_SECONDS:.1f} s before it")

    def measured(self) -> dict:
        return {"device": self.device, "method": f"torch.sum read bandwidth; best of repeated {GEMM_SIZE}^3 GEMMs",
                "bandwidth_gbs": {str(k): v for k, v in sorted(self.bandwidth.items())},
                "peak_gops": dict(self.peak), "contended": dict(self.contended)}


def read_bandwidth_gbs(nbytes: int, device: str = "cpu", seconds: float = WATCH_SECONDS) -> float:
    """GB/s that ``torch.sum`` reads from a buffer of ``nbytes`` (the best of calls that take
    ``seconds`` together)."""
    x = torch.ones(nbytes // 4, device=device)
    once = _best_seconds(lambda: x.sum(), device, repeats=3)
    best = _best_seconds(lambda: x.sum(), device, repeats=max(3, math.ceil(seconds / max(once, 1e-7))))
    return nbytes / best / 1e9


GEMM_OPERANDS = {
    "float32": (torch.float32, torch.matmul),
    "bfloat16": (torch.bfloat16, torch.matmul),
    "float16": (torch.float16, torch.matmul),
    "int8": (torch.int8, torch._int_mm),
}


def gemm_peak_gops(dtype: str, device: str = "cpu", seconds: float = WATCH_SECONDS) -> float:
    """Operations per second (2 per multiply-add) of the best of square GEMMs in ``dtype`` that take
    ``seconds`` together (4 at least)."""
    if dtype not in GEMM_OPERANDS:
        raise ValueError(f"no GEMM peak for {dtype!r}: one of {', '.join(GEMM_OPERANDS)}")
    torch_dtype, matmul = GEMM_OPERANDS[dtype]
    a, b = (torch.randint(-8, 8, (GEMM_SIZE, GEMM_SIZE), device=device).to(torch_dtype) for _ in range(2))
    once = _best_seconds(lambda: matmul(a, b), device, repeats=1)
    best = _best_seconds(lambda: matmul(a, b), device, repeats=max(4, math.ceil(seconds / max(once, 1e-7))))
    return 2 * GEMM_SIZE ** 3 / best / 1e9


def _best_seconds(fn, device: str, repeats: int) -> float:
    fn()
    best = math.inf
    for _ in range(repeats):
        sync_device(device)
        start = time.perf_counter()
        fn()
        sync_device(device)
        best = min(best, time.perf_counter() - start)
    return best


def sync_device(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def count_macs(module: nn.Module, batch) -> int:
    """Multiply-adds of the weight layers (linear, convolution, GPT-2's Conv1D) in one call of
    ``module`` on ``batch``, counted from the shapes each layer sees (attention's own products of
    activations are not weight work and are left out)."""
    total = 0

    def count(layer, inputs, output):
        nonlocal total
        total += _layer_macs(layer, output)

    hooks = [m.register_forward_hook(count) for m in module.modules() if _is_weight_layer(m)]
    try:
        with torch.inference_mode():
            module(**batch) if isinstance(batch, dict) else module(batch)
    finally:
        for h in hooks:
            h.remove()
    return total


def _is_weight_layer(m: nn.Module) -> bool:
    return isinstance(m, (nn.Linear, nn.modules.conv._ConvNd)) or type(m).__name__ == "Conv1D"


def _layer_macs(layer: nn.Module, output: torch.Tensor) -> int:
    """Output elements x the weights each one takes (a conv's output channels are dimension 1)."""
    out = output[0] if isinstance(output, tuple) else output
    w = layer.weight
    if isinstance(layer, nn.modules.conv._ConvNd):
        return out.numel() * (w.numel() // w.shape[0])
    per_output = w.shape[0] if type(layer).__name__ == "Conv1D" else w.shape[1]  # Conv1D stores (in, out)
    return out.numel() * per_output
