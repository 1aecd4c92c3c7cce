"""PNG: quality vs size and vs smallest-batch latency, Pareto front marked."""
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
        (axes[0], {r.label: r.size_bytes / 1024 for r in rows}, size_front(rows), "artifact size (KB, log)"),
        (axes[1], {r.label: 1000 * r.latency_at(batch).median_ms for r in rows if r.latency_at(batch)},
         latency_front(rows, batch), f"median latency at batch {batch} (us, log)"),
    ]
    scale = 100 if rows[0].metric == "accuracy" else 1
    quality = {r.label: scale * r.quality for r in rows}
    errors = {r.label: (scale * (r.quality - r.quality_ci[0]), scale * (r.quality_ci[1] - r.quality))
              if r.quality_ci else (0.0, 0.0) for r in rows}
    ylabel = "test accuracy % (95% CI)" if scale == 100 else f"{rows[0].metric} (95% CI)"
    for ax, cost, front, xlabel in panels:
        _panel(ax, cost, quality, errors, front, xlabel, ylabel)
    fig.suptitle(results.task["description"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _panel(ax, cost, accuracy, errors, front, xlabel, ylabel) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    for i, (name, x) in enumerate(sorted(cost.items(), key=lambda kv: kv[1])):
        on_front = name in front
        low, high = errors[name]
        ax.errorbar(x, accuracy[name], yerr=[[low], [high]], fmt="o" if on_front else "x",
                    color="C3" if on_front else "C0", capsize=3)
        ax.annotate(name, (x, accuracy[name]), textcoords="offset points", xytext=(5, 4 - 10 * (i % 3)), fontsize=8)
    xs = [cost[n] for n in front]
    ax.plot(xs, [accuracy[n] for n in front], "--", color="C3", alpha=0.6, label="Pareto front")
    if max(cost.values()) > 20 * min(cost.values()):  # log only where it helps reading
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        xlabel = xlabel.replace(", log", "")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
