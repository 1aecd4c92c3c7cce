"""PNG: quality vs size and vs smallest-batch latency, Pareto front marked, one marker per runtime."""
from pathlib import Path

from ..results import Results, Row
from .pareto import latency_front, ok_rows, size_front

RUNTIME_STYLE = {"torch-cpu": ("o", "C0"), "onnxruntime": ("s", "C1"), "cuda": ("^", "C2")}
FRONT_COLOR = "C3"


def plot_tradeoffs(results: Results, path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ok_rows(results.rows)
    if not rows:
        return None
    batch = min(l.batch_size for r in rows for l in r.latency)
    size_unit, size_scale = ("MB", 2**20) if max(r.size_bytes for r in rows) >= 2**20 else ("KB", 2**10)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    panels = [
        (axes[0], {r.label: r.size_bytes / size_scale for r in rows}, size_front(rows),
         f"artifact size ({size_unit}, log)"),
        (axes[1], {r.label: 1000 * r.latency_at(batch).median_ms for r in rows if r.latency_at(batch)},
         latency_front(rows, batch), f"median latency at batch {batch} (us, log)"),
    ]
    for ax, cost, front, xlabel in panels:
        _panel(ax, rows, cost, front, xlabel)
    fig.suptitle(results.task["description"], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _quality(row: Row) -> tuple[float, float, float]:
    """(value, error below, error above) on the plotted scale (accuracy in %)."""
    scale = 100 if row.metric == "accuracy" else 1
    low, high = row.quality_ci or (row.quality, row.quality)
    return scale * row.quality, scale * (row.quality - low), scale * (high - row.quality)


def _panel(ax, rows: list[Row], cost: dict[str, float], front: list[str], xlabel: str) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    several_runtimes = len({r.runtime for r in rows}) > 1
    plotted = sorted((r for r in rows if r.label in cost), key=lambda r: cost[r.label])
    seen = set()
    for i, row in enumerate(plotted):
        x, (y, low, high) = cost[row.label], _quality(row)
        marker, color = RUNTIME_STYLE.get(row.runtime, ("D", "C4"))
        label = row.runtime if several_runtimes and row.runtime not in seen else None
        seen.add(row.runtime)
        ax.errorbar(x, y, yerr=[[low], [high]], fmt=marker, color=color, capsize=3, markersize=5, label=label)
        if row.label in front:
            ax.plot(x, y, marker="o", markersize=11, markerfacecolor="none", markeredgecolor=FRONT_COLOR)
        name = row.method if several_runtimes else row.label
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, 5 - 11 * (i % 3)), fontsize=7)
    ax.plot([cost[n] for n in front], [_quality(r)[0] for n in front for r in rows if r.label == n], "--",
            color=FRONT_COLOR, alpha=0.6, label="Pareto front (circled)")
    if max(cost.values()) > 20 * min(cost.values()):  # log only where it helps reading
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        xlabel = xlabel.replace(", log", "")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    metric = rows[0].metric
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy % (95% CI)" if metric == "accuracy" else f"{metric} (95% CI)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
