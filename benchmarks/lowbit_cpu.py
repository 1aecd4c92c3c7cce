"""torch-cpu low-bit rows (rtn 4-bit g128 in the int4 tinygemm kernel, rtn 8-bit per row in the int8
weight-only kernel) vs fp32, vs a bare call of the same kernel (quantbench's overhead), and vs the
memory-bandwidth bound of reading the weights (the bytes the loaded modules hold: packed codes,
scales and zeros, the fp32 head), and vs the peer, torchao's weight-only configs on the same fp32
model (when torchao is installed; formats that cannot run on a CPU say why), at batch 1, for a few layer sizes.

    python benchmarks/lowbit_cpu.py [--threads 2] [--sizes 2048,4096,8192]

The model is Linear(K, K) -> Linear(K, 16): quantbench keeps the small head in fp32, as it does for
every model. All numbers come from this one run; compare the ratios, not absolute times across runs.
"""
import argparse
import copy
import tempfile
from pathlib import Path

import torch
from torch import nn

from quantbench.pipeline import realize_row
from quantbench.config import parse_methods
from quantbench.measure.bounds import MAX_BUFFER, read_bandwidth_gbs
from quantbench.measure.hostspeed import HostSpeed
from quantbench.measure.latency import measure_latency
from quantbench.measure.size import weight_bytes
from quantbench.methods import Context
from quantbench.runtimes import TorchCPU
from quantbench.runtimes.torch_cpu import lowbit_runner
from quantbench.kernels.weight_only import weight_only_module
from quantbench.tasks.base import Splits, Task
from quantbench.tasks.skeleton import build_skeleton

ROWS = (("int4 tinygemm g128", "rtn:bits=4,group_size=128"), ("int8 weight-only per row", "rtn:bits=8,group_size=-1"))
HEAD = 16

HOST = HostSpeed()  # as in a comparison: rounds timed while the host ran below full speed are set aside


def linear_task(k: int) -> Task:
    x = torch.randn(64, k)
    y = torch.zeros(64, dtype=torch.long)
    splits = Splits(x, y, x, y, x, x, y)
    return Task("bench", f"linear {k}->{k}->{HEAD}", splits, HEAD,
                lambda: nn.Sequential(nn.Linear(k, k), nn.Linear(k, HEAD)))


def time_size(k: int, folder: Path, bandwidth_gbs: float) -> list[dict]:
    """Every row as torch-cpu runs it (artifact saved, loaded, frozen TorchScript), fp32 included; the
    bare kernel module frozen the same way, so the ratio between them is quantbench's overhead alone."""
    task = linear_task(k)
    model = task.build_model().eval()
    x = task.splits.x_test[:1]
    runtime = TorchCPU()
    ctx = Context(task, progress=False)
    rows = []
    for label, spec in (("fp32", "fp32"), *ROWS):
        config = parse_methods(spec)[0]
        realized = realize_row(config, model, ctx, runtime, folder / f"{k}-{label.split()[0]}")
        run = runtime.load(realized.path, task)
        row = {"row": label, "kernel": realized.kernel}
        with torch.inference_mode():
            row["ms"] = measure_latency(run, x, 1, max_seconds=3.0, host=HOST).median_ms
            if label != "fp32":
                quantized, _ = ctx.quantize(config, model)
                bare = weight_only_module(quantized.format.layers["0"], model[0].bias, torch.device("cpu"))
                frozen = torch.jit.freeze(torch.jit.trace(nn.Sequential(bare, model[1]).eval(), x))
                row["bare_ms"] = measure_latency(frozen, x, 1, max_seconds=3.0, host=HOST).median_ms
        loaded = model if label == "fp32" else eager_module(realized.path, task)
        row["bound_ms"] = weight_bytes(loaded) / bandwidth_gbs / 1e6
        rows.append(row)
    return rows + torchao_rows(model, x, bandwidth_gbs)


def torchao_rows(model: nn.Module, x: torch.Tensor, bandwidth_gbs: float) -> list[dict]:
    """The peer: torchao's weight-only configs applied to the same fp32 model's first layer, on the CPU
    (int8 per row; int4 group 128, each packing format torchao has), or why one cannot run here."""
    try:
        from quantbench.quiet import quiet_torchao
        with quiet_torchao():
            from torchao.quantization import Int4WeightOnlyConfig, Int8WeightOnlyConfig, quantize_
            from torchao.quantization.quantize_.workflows import Int4PackingFormat
    except ImportError as e:
        return [{"row": "torchao (peer)", "skipped": f"torchao not installed ({e})"}]
    configs = {"torchao Int8WeightOnly": (Int8WeightOnlyConfig(), torch.float32)}  # int4: bf16 models only
    configs |= {f"torchao Int4WeightOnly {fmt.value}": (Int4WeightOnlyConfig(group_size=128, int4_packing_format=fmt),
                                                        torch.bfloat16) for fmt in Int4PackingFormat}
    rows = []
    for label, (config, dtype) in configs.items():
        peer = copy.deepcopy(model).to(dtype)
        try:
            with quiet_torchao(), torch.inference_mode():
                quantize_(peer, config, filter_fn=lambda module, fqn: fqn == "0")
                ms = measure_latency(peer, x.to(dtype), 1, max_seconds=3.0, host=HOST).median_ms
        except Exception as e:  # noqa: BLE001  (report why the peer cannot run, go on)
            rows.append({"row": label, "skipped": f"{type(e).__name__}: {str(e).splitlines()[0][:90]}"})
            continue
        rows.append({"row": label, "ms": ms, "bound_ms": weight_bytes(peer) / bandwidth_gbs / 1e6})
    return rows


def eager_module(path: Path, task: Task) -> nn.Module:
    """The row's model as torch-cpu loads it, before freezing (a frozen module holds no parameters to count)."""
    return lowbit_runner(path, build_skeleton(task.build_model), None).module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="2048,4096,8192")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bandwidth = read_bandwidth_gbs(MAX_BUFFER)
    print(f"{args.threads} threads; read bandwidth (torch.sum over 512 MiB) {bandwidth:.1f} GB/s; batch 1")
    print(f"{'K':>6} {'row':38} {'median ms':>10} {'vs fp32':>8} {'vs bare kernel':>15} {'bound ms':>9} {'bound/time':>11}")
    with tempfile.TemporaryDirectory() as folder:
        for k in (int(s) for s in args.sizes.split(",")):
            rows = time_size(k, Path(folder), bandwidth)
            fp32 = rows[0]["ms"]
            for r in rows:
                if "skipped" in r:
                    print(f"{k:>6} {r['row']:38} cannot run here: {r['skipped']}")
                    continue
                bare = f"{r['ms'] / r['bare_ms']:.2f}x" if "bare_ms" in r else "-"
                print(f"{k:>6} {r['row']:38} {r['ms']:>10.3f} {fp32 / r['ms']:>7.2f}x {bare:>15} "
                      f"{r['bound_ms']:>9.3f} {r['bound_ms'] / r['ms']:>10.2f}")
    print("'vs fp32' > 1: faster than fp32; 'vs bare kernel': quantbench's artifact time / the kernel module called "
          "directly (1 = no overhead); 'bound/time' near 1: the kernel reads its weights at the measured bandwidth. "
          "Weights that fit in the caches can beat the bound.")


if __name__ == "__main__":
    main()
