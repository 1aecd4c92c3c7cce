import pytest

from quantbench.spec import CompareSpec
from quantbench.tasks.tiny import save_tiny_model


@pytest.fixture(autouse=True)
def no_host_record(monkeypatch):
    """Runs in tests are not judged against the host's speed in earlier runs, which a test suite's own
    load would fail (tests/measure/test_host_record.py turns it on)."""
    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "off")


@pytest.fixture
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "model-cache")


@pytest.fixture
def small_spec(cache_dir):
    """A fast comparison: a narrow MLP on digits, short timing, no memory probe."""
    return CompareSpec(hidden=(64,), batch_sizes=(1, 8), memory=False, progress=False, cache_dir=cache_dir)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-layer Llama, hidden size 64."""
    pytest.importorskip("transformers")
    return save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer GPT-2 (Conv1D layers, weights stored [in, out]; all-zero biases), hidden size 64."""
    pytest.importorskip("transformers")
    return save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), "gpt2")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer BERT encoder (with its pooler), hidden size 64."""
    pytest.importorskip("transformers")
    return save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), "bert")
