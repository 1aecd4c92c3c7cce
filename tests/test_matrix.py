"""Every registered method x every registered runtime available here x a small instance of every
registered task: each cell is an ``ok`` row or an ``unsupported`` row that says why, never a failed one.
Adding a method, runtime or task to its registry adds its cells here; no test is edited."""
import math

import pytest

from quantbench.config import METHODS, make_config
from quantbench.methods import Context
from quantbench.pipeline import measure_method
from quantbench.runtimes import RUNTIMES
from quantbench.spec import CompareSpec
from quantbench.tasks import TASKS, build_task
from quantbench.tasks.base import SMALL_INSTANCES
from quantbench.tasks.train import trained_fp32

SPEC = CompareSpec(batch_sizes=(1,), memory=False, progress=False)


def test_every_task_has_a_small_instance():
    assert set(SMALL_INSTANCES.names()) == set(TASKS.names())


@pytest.fixture(scope="session")
def small_tasks(tmp_path_factory):
    """Task name -> (task, fp32 model, reference), each built once, on first use."""
    built = {}

    def get(name):
        if name not in built:
            folder = tmp_path_factory.mktemp(f"task-{name}")
            task = build_task(name, **SMALL_INSTANCES.get(name)(folder))
            fp32, _ = trained_fp32(task, 0, folder / "cache", progress=False)
            built[name] = (task, fp32, task.reference(fp32))
        return built[name]

    return get


@pytest.mark.parametrize("runtime_name", RUNTIMES.names())
@pytest.mark.parametrize("method", METHODS.names())
@pytest.mark.parametrize("task_name", TASKS.names())
def test_cell_is_ok_or_says_why_not(task_name, method, runtime_name, small_tasks, tmp_path):
    runtime = RUNTIMES.get(runtime_name)()
    if runtime.unavailable_reason():
        pytest.skip(f"{runtime_name}: {runtime.unavailable_reason()}")
    task, fp32, reference = small_tasks(task_name)
    row = measure_method(make_config(method, {}), fp32, Context(task, progress=False), runtime, reference, SPEC,
                         tmp_path)
    assert row.status in ("ok", "unsupported"), f"{row.status}: {row.error}\n{row.details.get('traceback', '')}"
    if row.status == "unsupported":
        assert row.error and len(row.error) > 20
        return
    assert row.kernel and row.size_bytes > 0 and math.isfinite(row.quality)
    assert row.latency and row.latency[0].median_ms > 0
