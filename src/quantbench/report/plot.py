"""PNG: accuracy vs size and vs batch-1 latency, Pareto front marked."""
from pathlib import Path

from ..results import Results
from .pareto import latency_front, ok_rows, size_front


def plot_tradeoffs(results: Results, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ok_rows(results.rows)
    if not rows:
        return None
    batch = min(l.batch_size for r in rows for l in r.latency)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        (axes[0], {r.method: r.size_bytes / 1024 for r in rows}, size_front(rows), "artifact size (KB, log)"),
        (axes[1], {r.method: r.latency_at(batch).median_ms for r in rows if r.latency_at(batch)},
         latency_front(rows, batch), f"median latency at batch {batch} (ms, log)"),
    ]
    accuracy = {r.method: 100 * r.accuracy for r in rows}
    errors = {r.method: (100 * (r.accuracy - r.accuracy_ci[0]), 100 * (r.accuracy_ci[1] - r.accuracy)) for r in rows}
    for ax, cost, front, xlabel in panels:
        _panel(ax, cost, accuracy, errors, front, xlabel)
    fig.suptitle(results.task["description"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _panel(ax, cost, accuracy, errors, front, xlabel) -> None:
    for name, x in cost.items():
        on_front = name in front
        low, high = errors[name]
        ax.errorbar(x, accuracy[name], yerr=[[low], [high]], fmt="o" if on_front else "x",
                    color="C3" if on_front else "C0", capsize=3)
        ax.annotate(name, (x, accuracy[name]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    xs = [cost[n] for n in front]
    ax.plot(xs, [accuracy[n] for n in front], "--", color="C3", alpha=0.6, label="Pareto front")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy % (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
