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
