import pytest

from quantbench.tasks import build_task
from quantbench.tasks.train import trained_fp32


@pytest.fixture(scope="session")
def mlp(tmp_path_factory):
    """The digits MLP 64 -> 256 -> 256 -> 10, trained once for every methods test."""
    task = build_task("tabular", dataset="digits", hidden=(256, 256), seed=0)
    model, _ = trained_fp32(task, 0, tmp_path_factory.mktemp("cache"), progress=False)
    return task, model
