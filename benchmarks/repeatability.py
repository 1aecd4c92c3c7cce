"""Are quantbench's latency conclusions repeatable, and do they survive a busy machine?

1. Runs the default comparison three times on the (idle) machine and prints each cell's coefficient
   of variation of the median across the runs.
2. Runs the default comparison and ``--hidden 2048,2048`` quiet, then with a CPU hog pinned to one
   core (a child process started and stopped here, by its PID, bounded in time), and prints per row
   and batch: the paired time ratio to fp32 quiet vs loaded, whether each cell was marked unstable,
   and whether the loaded run states a ratio that differs from the quiet one by more than 25%.

Run it alone on the machine: `python benchmarks/repeatability.py` (about 5 minutes on 2 cores).
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from contextlib import contextmanager

from quantbench.api import compare
from quantbench.env import capture_env
from quantbench.measure.noise import unstable_kinds
from quantbench.spec import CompareSpec

HOG = "import os, time\nos.sched_setaffinity(0, {{{core}}})\nend = time.time() + {seconds}\nwhile time.time() < end: pass"


def run(hidden: tuple[int, ...]) -> dict:
    """(row label, batch) -> its latency cell, from one default comparison; prints what the run took, how
    long its visits waited for the host's full speed, and whether the baseline was timed again."""
    start = time.perf_counter()
    results = compare(CompareSpec(hidden=hidden, progress=False, memory=False))
    cells = {(r.label, l.batch_size): l for r in results.rows if r.status == "ok" for l in r.latency}
    waited = sum((lat.noise or {}).get("host_wait_seconds", 0.0) for lat in cells.values())
    again = [r.label for r in results.rows if "latency_timed_again" in r.details]
    print(f"  run {hidden}: {time.perf_counter() - start:.0f} s, visits waited {waited:.1f} s for the host's full "
          f"speed, timed again at the end: {', '.join(again) or 'none'}; {unstable_by_reason(cells.values())}",
          flush=True)
    return cells


def unstable_by_reason(cells) -> str:
    """How many of ``cells`` are unstable, and how many for each kind of reason (a cell may have several)."""
    cells = list(cells)
    unstable = [lat for lat in cells if lat.stable is False]
    counts = Counter(kind for lat in unstable for kind in unstable_kinds(lat.unstable_reason))
    kinds = ", ".join(f"{kind} {n}" for kind, n in counts.items())
    return f"unstable {len(unstable)} of {len(cells)} cells" + (f" ({kinds})" if kinds else "")


@contextmanager
def cpu_hog(core: int, seconds: float):
    """A busy loop on ``core`` for at most ``seconds``, killed by its PID when the block ends."""
    hog = subprocess.Popen([sys.executable, "-c", HOG.format(core=core, seconds=seconds)])
    try:
        time.sleep(0.5)
        yield hog.pid
    finally:
        hog.kill()
        hog.wait()


def repeatability(runs: int) -> None:
    cells = [run((512, 512)) for _ in range(runs)]
    print(f"\n1. default comparison, {runs} idle runs: median per cell and its CV across runs; the CV of the "
          "paired ratio to fp32; the mean share of rounds set aside while the host ran below full speed; how many runs "
          "marked the cell unstable, and the CV of the medians of those that did not")
    print(f"{'row':<16}{'batch':>6}{'medians (ms)':>34}{'CV':>8}{'ratio CV':>10}{'set aside':>11}{'unstable':>10}"
          f"{'stable CV':>11}")
    for key in cells[0]:
        seen = [c[key] for c in cells if key in c]
        ratios = [lat.ratio_to_baseline for lat in seen if lat.ratio_to_baseline]
        aside = statistics.fmean((lat.noise or {}).get("host_slow_fraction", float("nan")) for lat in seen)
        unstable = sum(lat.stable is False for lat in seen)
        print(f"{key[0]:<16}{key[1]:>6}{' '.join(f'{lat.median_ms:.4g}' for lat in seen):>34}"
              f"{100 * cv([lat.median_ms for lat in seen]):>7.1f}%{100 * cv(ratios):>9.1f}%{100 * aside:>10.0f}%"
              f"{unstable:>10}{100 * cv([lat.median_ms for lat in seen if lat.stable]):>10.1f}%")


def cv(values: list[float]) -> float:
    """Coefficient of variation (nan for fewer than two values)."""
    return statistics.stdev(values) / statistics.fmean(values) if len(values) > 1 else float("nan")


def stated(lat) -> float | None:
    """The ratio a conclusion would state (report/speed.py's rule), or None."""
    if lat.stable is not True or lat.ratio_to_baseline is None or not lat.ratio_ci:
        return None
    lo, hi = lat.ratio_ci
    return None if lo <= 1 <= hi else lat.ratio_to_baseline


def under_load(hidden: tuple[int, ...], seconds: float) -> int:
    quiet = run(hidden)
    with cpu_hog(core=max(os.sched_getaffinity(0)), seconds=seconds) as pid:
        loaded = run(hidden)
    print(f"\n2. hidden {hidden}: time ratio to fp32 (paired), quiet vs with a CPU hog (pid {pid}) on one core")
    print(f"{'row':<16}{'batch':>6}{'quiet':>9}{'loaded':>9}{'loaded unstable':>17}{'wrong claim':>13}")
    wrong = 0
    for key, lat in loaded.items():
        if key[0] == "fp32" or key not in quiet:
            continue
        q, l = quiet[key].ratio_to_baseline, lat.ratio_to_baseline
        claim_q, claim_l = stated(quiet[key]), stated(lat)
        bad = claim_l is not None and claim_q is not None and abs(claim_l / claim_q - 1) > 0.25
        wrong += bad
        print(f"{key[0]:<16}{key[1]:>6}{q or float('nan'):>9.3f}{l or float('nan'):>9.3f}"
              f"{str(lat.stable is False):>17}{'YES' if bad else 'no':>13}")
    return wrong


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--hog-seconds", type=float, default=300.0, help="upper bound on the hog's life")
    parser.add_argument("--idle-only", action="store_true", help="only part 1: the idle runs' CVs")
    args = parser.parse_args()
    env = capture_env(len(os.sched_getaffinity(0)))
    print(f"host: {env['cpu']} ({', '.join(env['cpu_flags'])}), {env['threads']} threads, "
          f"torch {env['versions']['torch']}, load average at start {env.get('load_average')}")
    repeatability(args.runs)
    if args.idle_only:
        return
    wrong = sum(under_load(hidden, args.hog_seconds) for hidden in ((512, 512), (2048, 2048)))
    print(f"\nloaded-run ratios stated that differ from the quiet run's by more than 25%: {wrong}")


if __name__ == "__main__":
    main()
