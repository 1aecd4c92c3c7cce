import pytest

from quantbench.report.format import human_bytes, human_ms
from quantbench.report.pareto import pareto_front


def test_pareto_front_drops_dominated_points():
    points = {"fp32": (400, 0.97), "int8": (100, 0.97), "bad": (120, 0.90), "int4": (50, 0.93)}
    assert pareto_front(points) == ["int4", "int8"]


def test_sizes_never_print_as_zero_megabytes():
    assert human_bytes(2_500) == "2.44 KB"
    assert human_bytes(3 * 2**20) == "3 MB"
    assert human_bytes(512) == "512 B"
    assert human_ms(0.031) == "31 us"


def test_busy_machine_is_flagged():
    from quantbench.report.table import busy_machine_warning

    assert busy_machine_warning({"load_average": [1.9, 1, 1], "cpu_count": 2})
    assert busy_machine_warning({"load_average": [0.2, 1, 1], "cpu_count": 2}) is None


def test_conclusions_compare_runtimes_when_their_fp32_speeds_differ():
    from quantbench.measure.latency import Latency
    from quantbench.report.pareto import conclusions
    from quantbench.results import Row

    def row(method, runtime, ms, ratio=None):
        paired = {"ratio_to_baseline": ratio, "ratio_ci": [0.95 * ratio, 1.05 * ratio]} if ratio else {}
        return Row(method, {}, "t", runtime, quality=0.9, agreement=1.0, size_bytes=100,
                   latency=[Latency(1, ms, ms, ms, 10, 1000 / ms, stable=True, **paired)])

    rows = [row("fp32", "torch-cpu", 0.6), row("rtn", "torch-cpu", 0.08, ratio=0.08 / 0.6),
            row("fp32", "onnxruntime", 0.12), row("rtn", "onnxruntime", 0.03, ratio=0.25)]
    lines = conclusions(rows, [1])
    assert "rtn: 1.0x smaller, 7.50x faster [7.14-7.89] than fp32 at batch 1" in " ".join(lines)
    assert lines[-1] == ("Across runtimes at batch 1: fp32 on onnxruntime is 5.00x faster than on torch-cpu, so "
                         "speed-ups are per runtime; the fastest row, rtn@onnxruntime, is 4.00x faster than the "
                         "fastest fp32 (fp32@onnxruntime).")
    assert not any(line.startswith("Across") for line in conclusions(rows[:2], [1]))
    rows[1].details["fp32_kernel_only"] = True  # every quantized layer fell back to the fp32 kernel
    assert "rtn: 1.0x smaller, runs the fp32 kernel" in " ".join(conclusions(rows[:2], [1]))
    rows[2].latency[0].stable = False  # an unstable fp32 cell: no across-runtime ratio either
    assert not any(line.startswith("Across") for line in conclusions(rows, [1]))


def test_latency_cells_print_one_unit():
    from quantbench.measure.latency import Latency
    from quantbench.report.format import latency_cell

    assert latency_cell(Latency(1, 0.0281, 0.0274, 0.0312, 10, 1.0)) == "28 [27-31] us"
    assert latency_cell(Latency(1, 1.69, 1.62, 1.874, 10, 1.0)) == "1.69 [1.62-1.87] ms"
    assert latency_cell(Latency(1, 0.99, 0.98, 1.2, 10, 1.0)) == "990 [980-1200] us"
    assert latency_cell(Latency(1, 3160, 3100, 3300, 10, 1.0)) == "3160 [3100-3300] ms"
    assert latency_cell(None) == "-"
    assert latency_cell(Latency(1, 0.0281, 0.0274, 0.0312, 10, 1.0, stable=False)) == "28 [27-31] us (!)"


def test_throughput_is_marked_as_its_cell_is():
    from quantbench.measure.latency import Latency
    from quantbench.report.format import throughput_cell

    assert throughput_cell(Latency(256, 0.75, 0.7, 0.8, 10, 341260.4, stable=True)) == "341,260"
    assert throughput_cell(Latency(256, 0.75, 0.7, 0.8, 10, 341260.4, stable=False)) == "341,260 (!)"
    assert throughput_cell(None) == "-"


def test_plot_marks_each_runtime_and_the_front(tmp_path, monkeypatch):
    import matplotlib.image

    from quantbench.measure.latency import Latency
    from quantbench.report.plot import plot_tradeoffs
    from quantbench.results import Results, Row

    def row(method, runtime, ms, size, stable=True):
        return Row(method, {}, "t", runtime, quality=0.9, quality_ci=[0.88, 0.92], agreement=1.0, size_bytes=size,
                   latency=[Latency(1, ms, ms, ms, 10, 1000 / ms, stable=stable)])

    rows = [row("fp32", "torch-cpu", 0.6, 4 << 20), row("rtn", "torch-cpu", 0.08, 1 << 20),
            row("fp32", "onnxruntime", 0.12, 4 << 20), row("rtn", "onnxruntime", 0.03, 1 << 20),
            row("gptq", "onnxruntime", 0.02, 1 << 20, stable=False)]
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figure to inspect it
    path = plot_tradeoffs(Results({}, {"description": "test"}, rows), tmp_path / "plot.png")
    assert matplotlib.image.imread(path).shape[1] > 1000
    size_axis, latency_axis = figures[0].axes
    assert "MB" in size_axis.get_xlabel()
    for ax, more in ((size_axis, []), (latency_axis, ["(!): unstable, not on the front"])):
        texts = [t.get_text() for t in ax.get_legend().get_texts()]
        assert texts[0] == "Pareto front (circled)" and sorted(texts[1:]) == sorted(["onnxruntime", "torch-cpu", *more])
    front = next(line for line in latency_axis.get_lines() if line.get_linestyle() == "--")
    assert list(front.get_xdata()) == [30.0]  # rtn@onnxruntime alone: fastest stable at equal quality
    names = [t.get_text() for t in latency_axis.texts]
    assert "gptq (!)" in names and "rtn" in names  # the faster unstable gptq: marked, off the front
    assert "gptq" in [t.get_text() for t in size_axis.texts]


def test_the_latency_front_is_drawn_from_stable_cells_only_and_names_the_rows_left_out():
    from quantbench.measure.latency import Latency
    from quantbench.report.pareto import latency_front_line
    from quantbench.results import Row

    def row(method, ms, stable):
        return Row(method, {}, "t", "torch-cpu", quality=0.9, agreement=1.0, size_bytes=100,
                   latency=[Latency(1, ms, ms, ms, 10, 1000 / ms, stable=stable)])

    rows = [row("fp32", 0.6, True), row("rtn", 0.3, True), row("gptq", 0.1, False)]
    assert latency_front_line(rows, 1, "accuracy") == ("Pareto front, accuracy vs latency at batch 1, stable cells "
                                                       "only (left out, not stable: gptq): rtn.")
    assert latency_front_line(rows[1:], 8, "accuracy") == "Pareto front, accuracy vs latency at batch 8: -."
    rows[1].latency[0].stable = False
    rows[0].latency[0].stable = None
    assert latency_front_line(rows, 1, "accuracy") == ("Pareto front, accuracy vs latency at batch 1: not stated: no "
                                                       "stable latency cell; rerun on an idle machine.")


CROWDED_METHODS = ["fp32", "ptq-dynamic", "ptq-static", "rtn", "gptq", "awq", "smoothquant", "hqq"]


@pytest.mark.parametrize("methods, runtimes", [
    (CROWDED_METHODS[:5], ("torch-cpu", "onnxruntime")),
    (CROWDED_METHODS, ("torch-cpu", "onnxruntime", "cuda")),  # 21 labels next to one spot: past the nearest shifts
])
def test_plot_labels_of_rows_with_equal_quality_do_not_overlap(tmp_path, monkeypatch, methods, runtimes):
    from quantbench.measure.latency import Latency
    from quantbench.report.plot import plot_tradeoffs
    from quantbench.results import Results, Row

    rows = [Row(method, {}, "t", runtime, quality=0.972 + 1e-5 * i, quality_ci=[0.95, 0.985], agreement=1.0,
                size_bytes=(4 << 20) if method == "fp32" else (1 << 20) + 100 * i,
                latency=[Latency(1, (0.2 if method == "fp32" else 0.05) + 0.0001 * i, 0.05, 0.05, 10, 1.0)])
            for i, (method, runtime) in enumerate((m, r) for m in methods for r in runtimes)]
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_tradeoffs(Results({}, {"description": "test"}, rows), tmp_path / "plot.png")
    renderer = figures[0].canvas.get_renderer()
    for ax in figures[0].axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == len(rows)
        overlapping = [(a, b) for i, a in enumerate(ax.texts) for b in ax.texts[i + 1:]
                       if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))]
        assert not overlapping, [(a.get_text(), b.get_text()) for a, b in overlapping]


def test_plot_label_with_every_shift_taken_goes_where_it_overlaps_least(monkeypatch):
    import matplotlib.pyplot as plt

    from quantbench.report import plot

    monkeypatch.setattr(plot, "_LABEL_SHIFTS", (4, -8))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    plot._label_points(ax, [("a-long-label", 0.5, 0.5, "k"), ("b", 0.5, 0.5, "k"), ("c-long-label", 0.5, 0.5, "k")])
    plt.close(fig)
    # both shifts are taken; at -8 the long "c-long-label" covers only the short "b", at 4 it would cover
    # the long "a-long-label"
    assert [t.xyann[1] for t in ax.texts] == [4, -8, -8]


def test_plot_accepts_an_interval_that_excludes_the_estimate(tmp_path, monkeypatch):
    """The bar spans the interval plus the estimate (the side the estimate lies beyond is clamped at it)."""
    import matplotlib.pyplot as plt

    from quantbench.measure.latency import Latency
    from quantbench.report.plot import plot_tradeoffs
    from quantbench.results import Results, Row

    # a percentile-bootstrap perplexity CI can lie wholly above (or below) the point estimate
    rows = [Row("fp32", {}, "t", "torch-cpu", quality=12.0, quality_ci=[12.1, 12.6], agreement=1.0, size_bytes=4 << 20,
                latency=[Latency(1, 0.2, 0.2, 0.2, 10, 1.0)], metric="perplexity", higher_is_better=False),
            Row("rtn", {}, "t", "torch-cpu", quality=12.5, quality_ci=[11.9, 12.4], agreement=1.0, size_bytes=1 << 20,
                latency=[Latency(1, 0.1, 0.1, 0.1, 10, 1.0)], metric="perplexity", higher_is_better=False)]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_tradeoffs(Results({}, {"description": "test"}, rows), tmp_path / "plot.png")
    for ax in figures[0].axes:
        bars = {tuple(round(v, 6) for v in sorted((seg[0][1], seg[1][1])))
                for collection in ax.collections for seg in collection.get_segments()}
        assert bars == {(12.0, 12.6), (11.9, 12.5)}


def test_plot_without_latency_says_not_measured(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from quantbench.report.plot import plot_tradeoffs
    from quantbench.results import Results, Row

    rows = [Row(m, {}, "t", "torch-cpu", quality=0.9, quality_ci=[0.88, 0.92], agreement=1.0, size_bytes=size)
            for m, size in (("fp32", 4 << 20), ("rtn", 1 << 20))]
    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    plot_tradeoffs(Results({}, {"description": "test"}, rows), tmp_path / "plot.png")
    size_axis, latency_axis = figures[0].axes
    assert [t.get_text() for t in latency_axis.texts] == ["not measured"]
    assert latency_axis.get_xlabel() == "median latency"
    assert list(latency_axis.get_xticks()) == [] and list(latency_axis.get_yticks()) == []
    assert len(size_axis.get_xticks()) > 0  # the measured panel keeps its scale
