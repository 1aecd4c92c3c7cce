"""How quantbench scales to LLM sizes on this machine: random-weight Llamas built from configs (no hub) at
about 130M, 400M and 1.1B parameters (``tasks/tiny.py`` LLAMA_SIZES), each compared with fp32, bf16, rtn
and gptq by ``quantbench compare --task lm`` in its own process. Prints, per model:

- wall time and peak RSS per phase of the run, and the whole command's peak RSS divided by the model's
  fp32 weight bytes (both as quantbench records it and as sampled from outside every 20 ms);
- quantize seconds per method;
- prefill and decode tokens/s per row, and decode time per token against its bandwidth bound
  (bytes read per generated token / the measured read bandwidth).

Run it alone on the machine (nothing else running: its timings are one run's):
    python benchmarks/lm_scaling.py                 # all three sizes (1.1B: about 25 minutes on 2 cores)
    python benchmarks/lm_scaling.py --sizes 100m    # one size
Models are built once into --models (default /tmp/quantbench-llamas) and reused.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from quantbench.env import capture_env
from quantbench.tasks.tiny import LLAMA_SIZES, save_random_llama


def build(folder: Path, size: str) -> Path:
    """The random Llama of ``size`` in ``folder`` (built in a child process once: its memory is not ours)."""
    path = folder / f"llama-{size}"
    if not (path / "model.safetensors").exists():
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", f"from quantbench.tasks.tiny import save_random_llama; "
                        f"save_random_llama({str(path)!r}, {size!r})"], check=True, capture_output=True)
        print(f"built {path} in {time.perf_counter() - start:.0f} s")
    return path


def sampled_peak(pid: int, stop: threading.Event, out: list) -> None:
    """The process's largest VmRSS seen every 20 ms (an outside check on quantbench's own record)."""
    peak = 0
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                peak = max(peak, next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")))
        except (OSError, StopIteration):
            pass
        time.sleep(0.02)
    out.append(peak)


def run_compare(model: Path, out: Path, args) -> tuple[dict, float, int]:
    """``quantbench compare`` on ``model`` in a child process: its results, wall seconds and sampled peak RSS."""
    command = [sys.executable, "-m", "quantbench", "compare", "--task", "lm", "--model", str(model),
               "--methods", args.methods.replace("gptq", f"gptq:calib_samples={args.calib_samples}"),
               "--seq-len", str(args.seq_len), "--eval-samples", str(args.eval_samples),
               "--batch-sizes", "1", "--prompt-tokens", str(args.prompt_tokens),
               "--decode-tokens", str(args.decode_tokens), "--decode-batch-sizes", args.decode_batch_sizes,
               "--no-memory", "--no-progress", "--out", str(out)]
    start, stop, peak = time.perf_counter(), threading.Event(), []
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sampler = threading.Thread(target=sampled_peak, args=(child.pid, stop, peak))
    sampler.start()
    output = child.communicate()[0]
    stop.set()
    sampler.join()
    if child.returncode != 0:
        sys.exit(f"compare failed on {model}:\n{output[-3000:]}")
    return json.loads((out / "results.json").read_text()), time.perf_counter() - start, peak[0]


def report(size: str, model: Path, results: dict, wall: float, sampled: int) -> None:
    fp32_bytes = (model / "model.safetensors").stat().st_size
    run = results["env"]["run"]
    print(f"\n== llama-{size}: {fp32_bytes / 1e9:.2f} GB of fp32 weights; compare took {wall:.0f} s")
    print(f"peak RSS of the whole command: {run['peak_rss_bytes'] / 1e9:.2f} GB recorded "
          f"= {run['peak_rss_bytes'] / fp32_bytes:.2f}x the fp32 weights (sampled from outside: "
          f"{sampled / 1e9:.2f} GB = {sampled / fp32_bytes:.2f}x)")
    print(f"{'phase':<40}{'seconds':>9}{'peak RSS GB':>13}{'x fp32':>8}")
    for phase in run["phases"]:
        peak = phase["peak_rss_bytes"] or 0
        print(f"{phase['name']:<40}{phase['seconds']:>9.1f}{peak / 1e9:>13.2f}{peak / fp32_bytes:>8.2f}")
    print(f"{'row':<24}{'status':>8}{'prep s':>8}{'batch':>6}{'pp tok/s':>10}{'tg tok/s':>10}"
          f"{'ms/token':>10}{'bound ms':>10}{'% bound':>9}  kernel")
    for row in results["rows"]:
        label = f"{row['method']}"
        if row["status"] != "ok":
            print(f"{label:<24}{row['status']:>8}  {row.get('error', '')[:100]}")
            continue
        for g in row.get("generation") or [{}]:
            if g.get("status") != "measured":
                print(f"{label:<24}{'ok':>8}{row['quantize_seconds']:>8.1f}  generation: {g.get('reason', 'none')}")
                continue
            step, bound = g.get("decode_step_median_ms"), g.get("decode_bound_ms_per_token")
            share = g.get("decode_fraction_of_bound")
            print(f"{label:<24}{'ok':>8}{row['quantize_seconds']:>8.1f}{g['batch_size']:>6}"
                  f"{g['prefill_tokens_per_s']:>10.1f}{g['decode_tokens_per_s']:>10.2f}{_num(step):>10}"
                  f"{_num(bound):>10}{_pct(share):>9}  {row['kernel'][:60]}")


def _num(x) -> str:
    return "-" if x is None else f"{x:.1f}"


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(LLAMA_SIZES), help=f"of {', '.join(LLAMA_SIZES)}")
    parser.add_argument("--methods", default="fp32,bf16,rtn,gptq")
    parser.add_argument("--eval-samples", type=int, default=2, help="perplexity segments")
    parser.add_argument("--calib-samples", type=int, default=8, help="gptq calibration segments")
    parser.add_argument("--seq-len", type=int, default=512, help="segment length (evaluation and calibration)")
    parser.add_argument("--prompt-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=128)
    parser.add_argument("--decode-batch-sizes", default="1,8")
    parser.add_argument("--models", type=Path, default=Path("/tmp/quantbench-llamas"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/quantbench-lm-scaling"))
    args = parser.parse_args()
    env = capture_env(len(os.sched_getaffinity(0)))
    print(f"host: {env['cpu']}, {env['cpu_count']} cores ({', '.join(env['cpu_flags'])}); threads {env['threads']}; "
          f"load average at start {env['load_average']}")
    for size in args.sizes.split(","):
        model = build(args.models, size)
        results, wall, sampled = run_compare(model, args.out / size, args)
        report(size, model, results, wall, sampled)


if __name__ == "__main__":
    main()
