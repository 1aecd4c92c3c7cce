"""Peak memory of loading a torch-cpu weight-only artifact and running one batch, in a fresh process (the
runtime's own memory probe): bounded by the artifact's size plus the activations, and below the fp32 row's.

What a load may hold, per byte of the artifact (``ARTIFACT_MULTIPLES``): the file's tensors (1), the codes
unpacked to uint8 (2 for 4-bit codes, two of which share a byte on disk; 1 for 8-bit), the kernel's operand
(1: packed int4, or int8 codes), and for act-order the codes in the permuted column order (2); plus the row
blocks unpacked and packed at a time (``block_bytes``). Anything beyond that is a temporary of a whole layer,
as the load path once built (int64 unpacking, int32 codes for the packing, a transformers import):
4096-wide, 197 MB against fp32's 78 MB.
"""
import numpy as np
import pytest
import torch
from torch import nn

from quantbench.config import parse_methods
from quantbench.formats import DenseFormat
from quantbench.methods import Context, Quantized, apply_method
from quantbench.runtimes import TorchCPU
from quantbench.tasks.base import Task, split_arrays

pytestmark = pytest.mark.skipif(not hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu"),
                                reason="this torch has no CPU int4 weight-only kernel")

IN, OUT, WIDE, SMALL, BATCH = 64, 10, 2048, 64, 1
ARTIFACT_MULTIPLES = {"rtn": 1 + 2 + 1, "rtn:bits=8,group_size=-1": 1 + 1 + 1, "gptq:act_order=true": 1 + 2 + 1 + 2}
# Peaks of identical probes spread this much (the 8-bit row: 17.5-21.1 MB in three runs, AMD EPYC, Dec 2026; a
# fresh-clone suite failed by 0.3 MB on act-order); a whole layer's temporaries at WIDE are 16-34 MB.
RSS_NOISE = 4_000_000


def mlp_task(width: int) -> Task:
    """An MLP IN -> width -> width -> OUT on random inputs (memory does not depend on training)."""
    def build():
        return nn.Sequential(nn.Linear(IN, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, OUT))

    x = np.random.default_rng(0).standard_normal((100, IN)).astype(np.float32)
    return Task(f"mlp{width}", "mlp", split_arrays(x, (np.arange(100) % 2).astype(np.int64), 0), 2, build)


def activation_bytes(width: int) -> int:
    """Every layer's input and output of one batch in fp32, plus the bf16 copies the kernels take."""
    return BATCH * (IN + 2 * width + OUT) * (4 + 2) * 2


def block_bytes(width: int, rows: int = 64) -> int:
    """The temporaries of one row block of a width-wide layer: unpacked in int64 (twice: the words and the values;
    ``lowbit_file._READ_ROWS`` rows) and packed from int32 (``weight_only._CPU_PACK_ROWS`` rows)."""
    return rows * width * (2 * 8 + 4)


def peak_and_size(task: Task, method: str | None, tmp_path) -> tuple[int, int]:
    """(peak RSS growth to load + run one batch, artifact bytes) of ``method`` (None: fp32) on torch-cpu."""
    runtime, model = TorchCPU(), task.build_model().eval()
    quantized = (Quantized(model, DenseFormat()) if method is None else
                 apply_method(parse_methods(method)[0], model, Context(task, progress=False)))
    path = runtime.save(quantized, task, tmp_path / f"{task.name}-{method}")
    peak = runtime.peak_memory(path, task, BATCH, threads=1)
    if peak is None:
        pytest.skip("no resettable resident high-water mark here (Linux's /proc/self/clear_refs)")
    return peak, path.stat().st_size


@pytest.fixture(scope="module")
def wide_task():
    torch.manual_seed(0)
    return mlp_task(WIDE)


@pytest.fixture(scope="module")
def load_overhead(tmp_path_factory):
    """What loading any low-bit artifact costs besides its tensors (allocator and thread pool first use):
    the peak of a 64-wide MLP's int4 artifact."""
    return peak_and_size(mlp_task(SMALL), "rtn", tmp_path_factory.mktemp("small"))[0]


@pytest.mark.parametrize("method", list(ARTIFACT_MULTIPLES))
def test_weight_only_load_peak_is_bounded_by_the_artifact_and_activations(method, wide_task, load_overhead, tmp_path):
    peak, size = peak_and_size(wide_task, method, tmp_path)
    bound = load_overhead + ARTIFACT_MULTIPLES[method] * size + block_bytes(WIDE) + activation_bytes(WIDE) + RSS_NOISE
    assert peak <= bound, f"{method}: peak {peak / 1e6:.1f} MB > {bound / 1e6:.1f} MB (artifact {size / 1e6:.1f} MB)"


def test_int4_load_peaks_below_the_fp32_row(wide_task, tmp_path):
    int4, _ = peak_and_size(wide_task, "rtn", tmp_path)
    fp32, _ = peak_and_size(wide_task, None, tmp_path)
    assert int4 < fp32, f"int4 {int4 / 1e6:.1f} MB, fp32 {fp32 / 1e6:.1f} MB"
