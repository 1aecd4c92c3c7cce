import pytest

from quantbench import CompareSpec, compare

METHODS = "fp32,rtn:group_size=32,gptq:group_size=32,act_order=true,calib_samples=8,rtn:sym=true,group_size=32,rtn"
"""Asymmetric rtn and act-order gptq (gptq_v2 files), a symmetric grid (a v1 file) and rtn at group size 128,
which does not divide the tiny Llama's in_features of 64 (partial groups)."""


@pytest.fixture(scope="session")
def exported_llama(tiny_llama_dir, tmp_path_factory):
    """(results, artifacts folder, export folder) of a tiny Llama compared with ``--export``."""
    out = tmp_path_factory.mktemp("llama-run")
    results = compare(CompareSpec(task="lm", model=tiny_llama_dir, methods=METHODS, seq_len=32, eval_samples=4,
                                  batch_sizes=(1,), memory=False, progress=False, out=str(out),
                                  export=str(out / "export")))
    return results, out / "artifacts", out / "export"
