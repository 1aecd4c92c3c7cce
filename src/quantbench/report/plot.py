"""Quality vs size and vs smallest-batch latency, Pareto front circled, one marker per runtime:
one figure, saved as a comparison's PNG and inlined as SVG in a sweep's report.html."""
import io
from dataclasses import dataclass
from pathlib import Path

from ..results import Results, Row
from .format import UNSTABLE_MARK
from .pareto import ok_rows, pareto_front
from .speed import stable_at

RUNTIME_STYLE = {"torch-cpu": ("o", "C0"), "onnxruntime": ("s", "C1"), "cuda": ("^", "C2")}
FRONT_COLOR = "C3"


@dataclass
class Point:
    """One row, or one line of a sweep pooled over seeds, as the figure shows it."""
    label: str  # unique within the figure (Row.label)
    method: str  # written next to the point when the legend names the runtimes
    runtime: str
    quality: tuple[float, float, float]  # value, low, high, in the metric's units
    size_bytes: float | None
    latency_ms: float | None  # median at the figure's batch size
    latency_stable: bool = True  # False: that cell (a line's: any run's) was not stable; marked, off the front


@dataclass
class Tradeoffs:
    """What one figure shows."""
    title: str
    metric: str
    higher_is_better: bool
    batch_size: int | None  # whose latency is plotted
    points: list[Point]
    interval: str = "95% CI"  # what the error bars span


def plot_tradeoffs(results: Results, path: Path) -> Path | None:
    rows = ok_rows(results.rows)
    if not rows:
        return None
    figure = tradeoff_figure(_row_tradeoffs(results.task["description"], rows))
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
    return path


def tradeoff_figure(tradeoffs: Tradeoffs):
    """The two panels side by side; the caller saves and closes the figure."""
    fig, (size_axis, latency_axis) = pyplot().subplots(1, 2, figsize=(11, 4.2))
    _panel(size_axis, tradeoffs, *_size_costs(tradeoffs.points))
    _panel(latency_axis, tradeoffs, *_latency_costs(tradeoffs.points, tradeoffs.batch_size),
           unstable={p.label for p in tradeoffs.points if not p.latency_stable})
    fig.suptitle(tradeoffs.title, fontsize=9)
    fig.tight_layout()
    return fig


def figure_svg(figure) -> str:
    """``figure`` as an inline <svg> element (text kept as text: small and searchable); closes it."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg")
    pyplot().close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _row_tradeoffs(title: str, rows: list[Row]) -> Tradeoffs:
    batch = min((lat.batch_size for r in rows for lat in r.latency), default=None)
    points = [Point(r.label, r.method, r.runtime, (r.quality, *(r.quality_ci or (r.quality, r.quality))),
                    r.size_bytes, r.latency_at(batch).median_ms if r.latency_at(batch) else None,
                    latency_stable=stable_at(r, batch)) for r in rows]
    return Tradeoffs(title, rows[0].metric, rows[0].higher_is_better, batch, points)


def _size_costs(points: list[Point]) -> tuple[dict[str, float], str]:
    sizes = {p.label: p.size_bytes for p in points if p.size_bytes}
    unit, scale = ("MB", 2**20) if max(sizes.values(), default=0) >= 2**20 else ("KB", 2**10)
    return {label: size / scale for label, size in sizes.items()}, f"artifact size ({unit}, log)"


def _latency_costs(points: list[Point], batch_size: int | None) -> tuple[dict[str, float], str]:
    times = {p.label: p.latency_ms for p in points if p.latency_ms}
    unit, scale = ("ms", 1) if max(times.values(), default=0) >= 1 else ("us", 1000)
    at = "" if batch_size is None else f" at batch {batch_size}"
    return {label: ms * scale for label, ms in times.items()}, f"median latency{at} ({unit}, log)"


def _panel(ax, tradeoffs: Tradeoffs, cost: dict[str, float], xlabel: str, unstable: set[str] = frozenset()) -> None:
    """Quality against ``cost``; the points in ``unstable`` are drawn, named with the unstable mark, and left
    off the front (a front from unstable latencies would be a speed conclusion from numbers not to trust)."""
    if not cost:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel(xlabel.split(" (")[0])  # no unit: there is no scale to read
        ax.set_xticks([])
        ax.set_yticks([])
        return
    points = sorted((p for p in tradeoffs.points if p.label in cost), key=lambda p: cost[p.label])
    shown = {p.label: (cost[p.label], _plotted_quality(tradeoffs, p)) for p in points}
    front = pareto_front({label: (x, y[0] if tradeoffs.higher_is_better else -y[0]) for label, (x, y) in shown.items()
                          if label not in unstable})
    several_runtimes = len({p.runtime for p in tradeoffs.points}) > 1
    _draw_points(ax, points, shown, front, several_runtimes)
    ax.plot([shown[n][0] for n in front], [shown[n][1][0] for n in front], "--", color=FRONT_COLOR, alpha=0.6,
            label="Pareto front (circled)")
    if unstable & shown.keys():
        ax.plot([], [], " ", label=f"{UNSTABLE_MARK}: unstable, not on the front")
    _set_axes(ax, tradeoffs, cost, xlabel)
    names = {p.label: (p.method if several_runtimes else p.label) + (f" {UNSTABLE_MARK}" * (p.label in unstable))
             for p in points}
    _label_points(ax, [(names[p.label], shown[p.label][0], shown[p.label][1][0],
                        _style(p)[1] if several_runtimes else "black") for p in points])


def _plotted_quality(tradeoffs: Tradeoffs, point: Point) -> tuple[float, float, float]:
    """(value, error below, error above) on the plotted scale (accuracy in %)."""
    scale = 100 if tradeoffs.metric == "accuracy" else 1
    value, low, high = point.quality
    # A percentile-bootstrap interval need not contain the point estimate; errorbar refuses negative lengths.
    return scale * value, scale * max(0.0, value - low), scale * max(0.0, high - value)


def _draw_points(ax, points: list[Point], shown, front: list[str], several_runtimes: bool) -> None:
    seen = set()
    for p in points:
        x, (y, below, above) = shown[p.label]
        marker, color = _style(p)
        legend = p.runtime if several_runtimes and p.runtime not in seen else None
        seen.add(p.runtime)
        ax.errorbar(x, y, yerr=[[below], [above]], fmt=marker, color=color, capsize=3, markersize=5, label=legend)
        if p.label in front:
            ax.plot(x, y, marker="o", markersize=11, markerfacecolor="none", markeredgecolor=FRONT_COLOR)


_LABEL_SHIFTS = tuple(4 + 10 * (k // 2) if k % 2 == 0 else -8 - 10 * (k // 2) for k in range(80))
"""Vertical offsets (points) tried in turn for a label, nearest first: 4 up, 8 down, 14 up, 18 down, ...
in steps of 10 (a label is 8.4 high) up to about 400 points either way, well past any panel."""


def _style(point: Point) -> tuple[str, str]:
    """Marker and colour of the point's runtime."""
    return RUNTIME_STYLE.get(point.runtime, ("D", "C4"))


def _label_points(ax, labels: list[tuple[str, float, float, str]], fontsize: float = 7) -> None:
    """Write each name (in its colour) right of its point (x, y), shifted up or down until its box
    overlaps no label already written (rows with equal quality would otherwise print on top of each other);
    where every shift is taken, at the shift whose box overlaps the written ones least."""
    ax.autoscale_view()
    to_points = 72 / ax.figure.dpi
    placed: list[tuple[float, float, float, float]] = []
    for name, x, y, color in labels:
        px, py = (v * to_points for v in ax.transData.transform((x, y)))
        width, height = 0.62 * fontsize * len(name), 1.2 * fontsize
        boxes = [(px + 6, py + dy, px + 6 + width, py + dy + height) for dy in _LABEL_SHIFTS]
        choice = next((i for i, box in enumerate(boxes) if not any(_overlap_area(box, o) for o in placed)), None)
        if choice is None:  # every shift taken: the one overlapping the written labels least
            crowding = [sum(_overlap_area(box, other) for other in placed) for box in boxes]
            choice = crowding.index(min(crowding))
        placed.append(boxes[choice])
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(6, _LABEL_SHIFTS[choice]), fontsize=fontsize,
                    color=color)


def _overlap_area(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Area shared by two boxes (x0, y0, x1, y1); 0 where they only touch or lie apart."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def _set_axes(ax, tradeoffs: Tradeoffs, cost: dict[str, float], xlabel: str) -> None:
    from matplotlib.ticker import FuncFormatter, NullFormatter

    if max(cost.values()) > 20 * min(cost.values()):  # log only where it helps reading
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
    else:
        xlabel = xlabel.replace(", log", "")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    metric = "test accuracy %" if tradeoffs.metric == "accuracy" else tradeoffs.metric
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} ({tradeoffs.interval})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
