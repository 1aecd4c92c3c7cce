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
