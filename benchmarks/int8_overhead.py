"""quantbench's int8 latency vs a bare call of the same fbgemm kernel (wrapper overhead), vs the
memory-bandwidth bound of reading the weights, and vs the peer, torchao's int8 dynamic config on
the CPU (when installed), at batch 1, for a few layer sizes.

    python benchmarks/int8_overhead.py [--threads 2] [--sizes 1024,2048,4096]

All numbers come from this one run; compare the ratios, not absolute times across runs.
"""
import argparse
import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from quantbench.config import parse_methods
from quantbench.measure.bounds import MAX_BUFFER, read_bandwidth_gbs
from quantbench.measure.hostspeed import HostSpeed
from quantbench.measure.latency import measure_latency
from quantbench.methods import Context, apply_method
from quantbench.quiet import quiet_torch_quantization
from quantbench.runtimes import TorchCPU
from quantbench.quiet import quiet_torchao
from quantbench.tasks.base import Splits, Task

HOST = HostSpeed()  # as in a comparison: rounds timed while the host ran below full speed are set aside


def single_linear_task(k: int, n: int) -> Task:
    x = torch.randn(64, k)
    y = torch.zeros(64, dtype=torch.long)
    splits = Splits(x, y, x, y, x, x, y)
    return Task("bench", f"linear {k}->{n}", splits, n, lambda: nn.Sequential(nn.Linear(k, n)))


def measure_size(k: int, n: int, runtime: TorchCPU, folder: Path, bandwidth: float) -> dict:
    task = single_linear_task(k, n)
    model = task.build_model().eval()
    x = task.splits.x_test[:1]
    quantized = apply_method(parse_methods("ptq-dynamic")[0], model, Context(task, progress=False))
    q = quantized.module
    path = runtime.save(quantized, task, folder / f"dyn{k}x{n}")
    through_quantbench = runtime.load(path, task)
    packed = q[0]._packed_params._packed_params
    with quiet_torch_quantization():
        bare = lambda inp: torch.ops.quantized.linear_dynamic(inp, packed, True)  # noqa: E731
        fp32 = lambda inp: nn.functional.linear(inp, model[0].weight, model[0].bias)  # noqa: E731
        with torch.inference_mode():
            times = {name: measure_latency(fn, x, 1, max_seconds=3.0, host=HOST).median_ms
                     for name, fn in [("fp32", fp32), ("quantbench", through_quantbench), ("bare", bare)]}
    int8_bytes = k * n + 4 * n * 2  # int8 weights + per-channel fp32 scales and zero points
    return {**times, "torchao": torchao_dynamic_ms(model, x), "bound_int8": int8_bytes / bandwidth * 1e3,
            "bound_fp32": 4 * k * n / bandwidth * 1e3}


def torchao_dynamic_ms(model: nn.Module, x: torch.Tensor) -> float | None:
    """The peer: torchao's int8 dynamic activation x int8 weight config on a copy of the same model
    (its CPU path), batch-1 median; None when torchao is not installed."""
    try:
        with quiet_torchao():
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError:
        return None
    peer = copy.deepcopy(model)
    with quiet_torchao(), torch.inference_mode():
        quantize_(peer, Int8DynamicActivationInt8WeightConfig())
        return measure_latency(peer, x, 1, max_seconds=3.0, host=HOST).median_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="1024,4096,8192", help="square layer sizes (in = out)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runtime = TorchCPU()
    bandwidth = read_bandwidth_gbs(MAX_BUFFER) * 1e9
    print(f"{runtime.kernel('int8 dynamic linear')}, {args.threads} threads, read bandwidth "
          f"{bandwidth / 1e9:.1f} GB/s (torch.sum over 512 MiB), batch 1, medians\n")
    header = f"{'layer':>11} {'fp32':>9} {'bare int8':>10} {'quantbench':>11} {'overhead':>9} " \
             f"{'int8 bound':>11} {'qb/bound':>9} {'fp32/bound':>11} {'speed-up':>9} {'torchao':>9} {'torchao/qb':>11}"
    print(header)
    with tempfile.TemporaryDirectory() as folder:
        for size in map(int, args.sizes.split(",")):
            r = measure_size(size, size, runtime, Path(folder), bandwidth)
            print(f"{size:>5}x{size:<5} {r['fp32']:>7.3f}ms {r['bare']:>8.3f}ms {r['quantbench']:>9.3f}ms "
                  f"{r['quantbench'] / r['bare']:>8.2f}x {r['bound_int8']:>9.3f}ms {r['quantbench'] / r['bound_int8']:>8.2f}x "
                  f"{r['fp32'] / r['bound_fp32']:>10.2f}x {r['fp32'] / r['quantbench']:>8.2f}x "
                  + (f"{r['torchao']:>7.3f}ms {r['torchao'] / r['quantbench']:>10.2f}x" if r["torchao"] else
                     f"{'-':>9} {'-':>11}"))
    print("\noverhead = quantbench (frozen TorchScript artifact) / bare torch.ops.quantized.linear_dynamic;"
          "\nqb/bound = quantbench / time to read the int8 weights once at the measured bandwidth"
          " (bandwidth = what torch.sum reads per second\n  with the same threads; below 1.0 the kernel read faster than that: caches, or better prefetching"
          " than torch.sum, so the bound is approximate);"
          "\nspeed-up = fp32 / quantbench int8; torchao = the peer, torchao's Int8DynamicActivationInt8WeightConfig"
          "\n  on the same layer (its CPU path; '-': torchao not installed); torchao/qb above 1: quantbench faster.")


if __name__ == "__main__":
    main()
