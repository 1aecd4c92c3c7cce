import pytest

from quantbench.spec import CompareSpec


@pytest.fixture
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "model-cache")


@pytest.fixture
def small_spec(cache_dir):
    """A fast comparison: a narrow MLP on digits, short timing, no memory probe."""
    return CompareSpec(hidden=(64,), batch_sizes=(1, 8), memory=False, progress=False, cache_dir=cache_dir)
