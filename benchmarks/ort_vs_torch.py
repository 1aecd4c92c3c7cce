"""ONNX Runtime vs torch on CPU, through quantbench's own artifacts and timing (save, load, time):
torch fp32, torch fbgemm int8 dynamic, torch's CPU weight-only kernels (int4 tinygemm on RTN g128
codes, int8 weight-only on per-row RTN 8-bit codes), ORT fp32, ORT int8 dynamic, ORT MatMulNBits
4-bit (the same RTN g128 integers as the torch int4 row) at accuracy_level 0 and 4, on an MLP
64 -> W -> W -> 10 (W = 2048 by default) at batch 1 and 32.

    python benchmarks/ort_vs_torch.py [--threads 2] [--width 2048] [--batches 1,32]

The weights are random (speed does not depend on training). All numbers come from this one run;
compare the ratios, not absolute times across runs.
"""
import argparse
import tempfile
from pathlib import Path

import torch

from quantbench.pipeline import realize_row
from quantbench.config import parse_methods
from quantbench.measure.hostspeed import HostSpeed
from quantbench.measure.latency import measure_latency
from quantbench.methods import Context
from quantbench.runtimes import OnnxRuntimeCPU, TorchCPU
from quantbench.tasks.base import Splits, Task
from quantbench.tasks.tabular import mlp

ROWS = [("torch fp32", TorchCPU, {}, "fp32"),
        ("torch fbgemm int8 dynamic", TorchCPU, {}, "ptq-dynamic"),
        ("torch int4 tinygemm g128", TorchCPU, {}, "rtn:group_size=128"),
        ("torch int8 weight-only per-row", TorchCPU, {}, "rtn:bits=8,group_size=-1"),
        ("ORT fp32", OnnxRuntimeCPU, {}, "fp32"),
        ("ORT int8 dynamic", OnnxRuntimeCPU, {}, "ptq-dynamic"),
        ("ORT MatMulNBits int4 g128, acc.level 0", OnnxRuntimeCPU, {"accuracy_level": 0}, "rtn:group_size=128"),
        ("ORT MatMulNBits int4 g128, acc.level 4", OnnxRuntimeCPU, {"accuracy_level": 4}, "rtn:group_size=128")]

HOST = HostSpeed()  # as in a comparison: rounds timed while the host ran below full speed are set aside


def random_mlp_task(width: int) -> Task:
    torch.manual_seed(0)
    x = torch.randn(256, 64)
    y = torch.randint(0, 10, (256,))
    splits = Splits(x, y, x, y, x, x, y)
    return Task("bench", f"MLP 64->{width}->{width}->10", splits, 10, lambda: mlp(64, (width, width), 10))


def time_rows(task: Task, batches: list[int], folder: Path) -> dict[str, list[float]]:
    model = task.build_model().eval()
    ctx = Context(task, progress=False)
    medians = {}
    for label, runtime_cls, options, method in ROWS:
        runtime = runtime_cls(**options)
        realized = realize_row(parse_methods(method)[0], model, ctx, runtime, folder / label.replace(" ", "_"))
        run = runtime.load(realized.path, task)
        host = HOST.first_loop_only() if getattr(run, "own_threads", False) else HOST  # as a comparison judges it
        medians[label] = [measure_latency(run, task.latency_input(b), b, max_seconds=3.0, host=host).median_ms
                          for b in batches]
        print(f"  {label}: {realized.kernel}")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--batches", default="1,32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    task = random_mlp_task(args.width)
    print(f"{task.description}, {args.threads} threads, quantbench artifacts loaded back from disk; kernels:")
    with tempfile.TemporaryDirectory() as folder:
        medians = time_rows(task, batches, Path(folder))
    base = medians["ORT fp32"]
    print("\n" + f"{'':40}" + "".join(f"{f'batch {b} median':>18}{'vs ORT fp32':>13}" for b in batches))
    for label, times in medians.items():
        print(f"{label:40}" + "".join(f"{t:>16.3f}ms{b / t:>12.2f}x" for t, b in zip(times, base, strict=True)))
    verdict = "faster" if medians["ORT int8 dynamic"][0] < base[0] else "NOT faster"
    print(f"\nORT int8 dynamic is {verdict} than ORT fp32 at batch {batches[0]} "
          f"({base[0] / medians['ORT int8 dynamic'][0]:.2f}x); 'vs ORT fp32' > 1 means faster than ORT fp32.")


if __name__ == "__main__":
    main()
