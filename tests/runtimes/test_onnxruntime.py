"""ONNX Runtime rows: the same weights as the torch rows, real ORT kernels, sane sizes and latencies."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


from quantbench.pipeline import realize_row
from quantbench.api import compare, deployment_runtimes  # noqa: E402
from quantbench.kernels import onnx_export  # noqa: E402
from quantbench.cli.main import main  # noqa: E402
from quantbench.config import parse_methods  # noqa: E402
from quantbench.errors import UserError  # noqa: E402
from quantbench.methods import Context, Unsupported, apply_method  # noqa: E402
from quantbench.formats.lowbit_file import FORMAT  # noqa: E402
from quantbench.formats.gptq_packing import from_gptq_tensors  # noqa: E402
from quantbench.runtimes import OnnxRuntimeCPU, TorchCPU, onnxruntime_cpu  # noqa: E402
from quantbench.kernels.matmul_nbits import NBitsWeight, block_groups, read_nbits_weights, unpack_lowbit  # noqa: E402
from quantbench.kernels.onnx_export import load_graph  # noqa: E402
from quantbench.spec import CompareSpec  # noqa: E402
from quantbench.tasks import build_task  # noqa: E402
from quantbench.tasks.train import trained_fp32  # noqa: E402


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    """64 -> 256 -> 128 -> 10 on digits: layer K of 64 and 256, so g32 and g128 both make several blocks."""
    task = build_task("tabular", dataset="digits", hidden=(256, 128), seed=0)
    model, _ = trained_fp32(task, 0, tmp_path_factory.mktemp("cache"), progress=False)
    return task, model


def realize(spec: str, task_and_model, tmp_path, accuracy_level=0):
    task, model = task_and_model
    ctx = Context(task, progress=False)
    rt = OnnxRuntimeCPU(accuracy_level=accuracy_level)
    realized = realize_row(parse_methods(spec)[0], model, ctx, rt, tmp_path / "art")
    return realized, rt.load(realized.path, task)


def nbits_weights(path) -> dict[str, NBitsWeight]:
    return read_nbits_weights(load_graph(path), path.parent)


def assert_same_integers(saved: dict[str, NBitsWeight], packed: dict) -> None:
    assert set(saved) == set(packed)
    for name, lw in packed.items():
        codes, zeros, scales = unpack_lowbit(saved[name])
        groups = block_groups(lw.in_features, saved[name].block_size, lw.group_size)
        assert np.array_equal(codes, lw.q.numpy()), name
        if lw.float_zeros:  # integer part in MatMulNBits, the rest as scale x fraction per group after it
            fraction = saved[name].zero_correction.T / lw.scales.float().numpy()
            assert np.allclose(zeros + fraction[:, groups], lw.zeros.numpy()[:, groups], atol=1e-5), name
            assert np.array_equal(saved[name].group_of_column, lw.g_idx.numpy()), name
        else:
            assert np.array_equal(zeros, lw.zeros.numpy()[:, groups]), name
        assert np.array_equal(scales, lw.scales.float().numpy()[:, groups]), name


@pytest.mark.parametrize("spec", ["rtn:group_size=32", "rtn", "gptq:group_size=32", "gptq",
                                  "gptq:act_order=true,group_size=32", "rtn:bits=8,sym=true,group_size=-1",
                                  "hqq", "hqq:group_size=32", "awq:calib_samples=64", "awq:fold=false,calib_samples=64"])
def test_matmul_nbits_runs_quantbench_integers_and_matches_the_dequantized_torch_model(spec, mlp, tmp_path):
    task, model = mlp
    quantized = apply_method(parse_methods(spec)[0], model, Context(task, progress=False))
    realized, run = realize(spec, mlp, tmp_path)
    assert "MatMulNBits" in realized.kernel and realized.details["same_integers_checked"]
    assert_same_integers(nbits_weights(realized.path), quantized.format.layers)
    x = task.splits.x_test
    with torch.no_grad():
        expected = quantized.module(x)
    assert torch.allclose(run(x), expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


@pytest.mark.parametrize("spec", ["rtn", "hqq", "awq:fold=false,calib_samples=64"])
def test_accuracy_level_4_quantizes_activations_and_stays_close(spec, mlp, tmp_path):
    """Also with float zero points (hqq) and a Div by the input scale before MatMulNBits (awq unfolded)."""
    task, model = mlp
    quantized = apply_method(parse_methods(spec)[0], model, Context(task, progress=False))
    realized, run = realize(spec, mlp, tmp_path, accuracy_level=4)
    assert "accuracy_level 4" in realized.kernel
    x = task.splits.x_test
    with torch.no_grad():
        expected = quantized.module(x)
    got = run(x)
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() > 0.97


def test_fp32_export_matches_torch(mlp, tmp_path):
    task, model = mlp
    realized, run = realize("fp32", mlp, tmp_path)
    x = task.splits.x_test
    with torch.no_grad():
        expected = model(x)
    assert torch.allclose(run(x), expected, rtol=1e-5, atol=1e-5)
    assert realized.path.suffix == ".onnx" and "Gemm" in realized.kernel
    assert realized.extra_files == []


@pytest.mark.parametrize("spec,files", [("fp32", ["art.onnx", "optimized.onnx"]),
                                        ("ptq-dynamic", ["fp32.onnx", "art.onnx", "optimized.onnx"]),
                                        ("ptq-static", ["fp32.onnx", "art.onnx", "optimized.onnx"]),
                                        ("rtn:group_size=32", ["fp32.onnx", "art.onnx", "optimized.onnx"])])
def test_a_row_parses_each_onnx_file_once(spec, files, mlp, tmp_path, monkeypatch):
    """quantbench's own onnx.load calls (not ORT's quantizers'): the export it starts from, the file it
    saves and the graph ORT optimized it to, once each (the optimized graph without its tensors, which
    ORT writes beside it); loading the file for the runs parses nothing."""
    parsed, sizes = [], {}
    real = onnx.load

    def counting(f, *args, **kwargs):
        if sys._getframe(1).f_globals["__name__"].startswith("quantbench."):
            parsed.append(Path(f).name)
            sizes[Path(f).name] = Path(f).stat().st_size
        return real(f, *args, **kwargs)

    monkeypatch.setattr(onnx, "load", counting)
    task, model = mlp
    realized = realize_row(parse_methods(spec)[0], model, Context(task, progress=False), OnnxRuntimeCPU(),
                           tmp_path / "art")
    assert sorted(parsed) == sorted(files)
    assert sizes["optimized.onnx"] < sizes["art.onnx"] / 4
    parsed.clear()
    OnnxRuntimeCPU().load(realized.path, task)
    assert parsed == []


@pytest.mark.parametrize("spec,why", [("rtn:bits=3", "3-bit codes have none"),
                                      ("gptq:group_size=24", "not a multiple of 16")])
def test_what_ort_cannot_run_is_unsupported_with_the_reason(spec, why, mlp, tmp_path):
    with pytest.raises(Unsupported, match=why):
        realize(spec, mlp, tmp_path)


@pytest.mark.parametrize("spec", ["ptq-dynamic", "rtn:group_size=32"])
def test_large_models_put_tensors_beside_the_onnx_file_and_count_them(spec, mlp, tmp_path, monkeypatch):
    """Past the 2 GB protobuf limit (lowered here to 0 bytes) tensors go to external data, which the
    session reads and the size counts."""
    from quantbench.kernels import onnx_export

    task, _ = mlp
    (tmp_path / "small").mkdir()
    (tmp_path / "large").mkdir()
    small, run_small = realize(spec, mlp, tmp_path / "small")
    monkeypatch.setattr(onnx_export, "LARGE_BYTES", 0)
    large, run_large = realize(spec, mlp, tmp_path / "large")
    assert small.extra_files == [] and [p.name for p in large.extra_files] == [large.path.name + ".data"]
    assert large.path.stat().st_size < small.path.stat().st_size / 4
    total = large.path.stat().st_size + large.extra_files[0].stat().st_size
    assert 0.9 < total / small.path.stat().st_size < 1.1
    assert any("external data" in note for note in large.notes)
    x = task.splits.x_test[:32]
    assert torch.allclose(run_large(x), run_small(x), atol=1e-5)
    first_size = large.extra_files[0].stat().st_size
    again, _ = realize(spec, mlp, tmp_path / "large")  # the same --out again: tensors replaced, not appended
    assert again.extra_files == large.extra_files and again.extra_files[0].stat().st_size == first_size


def test_an_export_past_the_protobuf_limit_keeps_its_tensors_in_one_file_beside_it(mlp, tmp_path, monkeypatch):
    """torch's exporter writes a model over 2 GB with one file per tensor, named after the tensor
    ("0.weight"), so two large exports in one folder would overwrite each other's; the export is
    re-saved with its tensors in one <file>.data. (The exporter's choice is imitated here.)"""
    export = torch.onnx.export

    def export_per_tensor(*args, **kwargs):
        export(*args, **kwargs)
        path = args[2]
        onnx.save_model(onnx.load(path), path, save_as_external_data=True, all_tensors_to_one_file=False,
                        size_threshold=0)

    monkeypatch.setattr(torch.onnx, "export", export_per_tensor)
    monkeypatch.setattr(onnx_export, "LARGE_BYTES", 0)
    realized, run = realize("fp32", mlp, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art.onnx", "art.onnx.data"]
    assert realized.extra_files == [tmp_path / "art.onnx.data"]
    task, model = mlp
    x = task.splits.x_test[:32]
    with torch.no_grad():
        assert torch.allclose(run(x), model(x), atol=1e-5)


def test_peak_memory_is_measured_in_a_fresh_process(tmp_path):
    """An MLP whose weights (17 MB in fp32) outweigh ONNX Runtime's own few MB: the peak holds the
    file's weights, not much more (measured: 2x the file + 10 MB, the session holding the loaded
    file and its initializers), and int8's is well under fp32's. A probe that missed the model, or
    counted the imports or this process, would fail."""
    task = build_task("tabular", dataset="digits", hidden=(2048, 2048), seed=0)
    torch.manual_seed(0)
    model = task.build_model().eval()  # untrained: memory does not depend on the weights' values
    peak, size = {}, {}
    for spec in ("fp32", "ptq-dynamic"):
        (tmp_path / spec).mkdir()
        realized, _ = realize(spec, (task, model), tmp_path / spec)
        size[spec] = realized.path.stat().st_size
        peak[spec] = OnnxRuntimeCPU().peak_memory(realized.path, task, 8, 1)
        assert size[spec] < peak[spec] < 3 * size[spec] + 30e6, (spec, peak[spec], size[spec])  # ORT's own: ~10 MB
    assert size["fp32"] > 16e6 and peak["ptq-dynamic"] < 0.75 * peak["fp32"]  # measured 0.42; headroom for ORT versions


@pytest.fixture(scope="module")
def both_runtimes(tmp_path_factory):
    """compare --runtime all: every method on torch-cpu and on onnxruntime, artifacts kept."""
    out = tmp_path_factory.mktemp("all")
    spec = CompareSpec(hidden=(256, 128), runtime="all", batch_sizes=(1,), memory=False, progress=False, out=str(out),
                       cache_dir=str(tmp_path_factory.mktemp("cache")),
                       methods="fp32,ptq-dynamic,ptq-static,ptq-static:observer=minmax,ptq-static:observer=percentile,"
                               "qat:epochs=1,rtn,gptq:group_size=32")
    return compare(spec), out / "artifacts"


def test_compare_all_shows_both_runtimes_side_by_side(both_runtimes):
    results, _ = both_runtimes
    rows = {(r.method, r.runtime): r for r in results.rows}
    methods = dict.fromkeys(r.method for r in results.rows)
    assert set(rows) == {(m, rt) for m in methods for rt in ("torch-cpu", "onnxruntime")}
    for (method, runtime), row in rows.items():
        assert row.status == "ok", (method, runtime, row.error)
        assert [lat.batch_size for lat in row.latency] == [1] and row.latency[0].median_ms > 0
        if runtime == "onnxruntime":
            assert row.kernel.startswith("onnxruntime CPU") and row.details["ort_ops_run"]
    fp32 = rows["fp32", "onnxruntime"]
    for method in methods:
        row = rows[method, "onnxruntime"]
        assert row.accuracy >= fp32.accuracy - 0.03 and row.agreement >= 0.95, method


def test_sizes_int8_about_4x_smaller_and_4_bit_smaller_still(both_runtimes):
    results, _ = both_runtimes
    size = {r.method: r.size_bytes for r in results.rows if r.runtime == "onnxruntime"}
    assert 3.0 < size["fp32"] / size["ptq-dynamic"] < 4.5
    assert 3.0 < size["fp32"] / size["ptq-static"] < 4.5
    assert size["rtn"] < 0.75 * size["ptq-dynamic"]


def test_ort_rows_name_what_ort_runs(both_runtimes):
    results, _ = both_runtimes
    kernel = {r.method: r.kernel for r in results.rows if r.runtime == "onnxruntime"}
    assert "DynamicQuantizeMatMul" in kernel["ptq-dynamic"] or "MatMulInteger" in kernel["ptq-dynamic"]
    assert "QGemm" in kernel["ptq-static"] and "QGemm" in kernel["qat:epochs=1"]
    notes = {r.method: " ".join(r.notes) for r in results.rows if r.runtime == "onnxruntime"}
    assert "CalibrationMethod.Entropy" in notes["ptq-static"]
    assert "CalibrationMethod.MinMax" in notes["ptq-static:observer=minmax"]
    assert "CalibrationMethod.Percentile (99.99)" in notes["ptq-static:observer=percentile"]


@pytest.mark.parametrize("method", ["rtn", "gptq:group_size=32"])
def test_matmul_nbits_rows_hold_exactly_the_integers_of_the_torch_rows(method, both_runtimes):
    from safetensors import safe_open

    _, artifacts = both_runtimes
    with safe_open(str(artifacts / f"{method.replace(':', '_')}_torch-cpu.safetensors"), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    assert meta["format"] == FORMAT
    config, layers = json.loads(meta["quantization_config"]), json.loads(meta["layers"])
    packed = {name: from_gptq_tensors({k: tensors[f"{name}.{k}"] for k in ("qweight", "qzeros", "scales", "g_idx")},
                                      config["bits"], config["group_size"], k_in, n_out, config["checkpoint_format"])
              for name, (n_out, k_in) in layers.items()}
    onnx_path = artifacts / f"{method.replace(':', '_')}_onnxruntime.onnx"
    assert_same_integers(nbits_weights(onnx_path), packed)


def test_runtimes_command_lists_each_runtime_and_cuda(capsys):
    assert main(["runtimes"]) == 0
    out = capsys.readouterr().out
    assert "torch-cpu: available" in out and "onnxruntime: available" in out and "onnxruntime 1." in out
    assert "cuda: " in out


def test_missing_onnxruntime_is_reported_and_skipped_by_all(monkeypatch, capsys):
    real = onnxruntime_cpu.importlib.util.find_spec
    monkeypatch.setattr(onnxruntime_cpu.importlib.util, "find_spec", lambda n: None if n == "onnxruntime" else real(n))
    reason = OnnxRuntimeCPU().unavailable_reason()
    assert reason == "onnxruntime not installed: pip install 'quantbench[onnx]'"
    assert [rt.name for rt in deployment_runtimes("all")] == ["torch-cpu"]
    with pytest.raises(UserError, match="not installed"):
        deployment_runtimes("onnxruntime")
    main(["runtimes"])
    assert f"onnxruntime: not available here: {reason}" in capsys.readouterr().out


# --- transformer tasks: dict inputs, one exported output ----------------------------------------


@pytest.fixture(scope="module")
def tiny_bert(tiny_bert_dir):
    """The embedding task on a tiny BERT (its pooler is not part of last_hidden_state)."""
    task = build_task("embedding", model=tiny_bert_dir, eval_samples=32)
    return task, task.pretrained


@pytest.fixture(scope="module")
def tiny_llama(tiny_llama_dir):
    task = build_task("lm", model=tiny_llama_dir, seq_len=32, eval_samples=4)
    return task, task.pretrained


@pytest.fixture(scope="module")
def tiny_gpt2(tiny_gpt2_dir):
    task = build_task("lm", model=tiny_gpt2_dir, seq_len=32, eval_samples=4)
    return task, task.pretrained


TRANSFORMERS = ["tiny_bert", "tiny_llama", "tiny_gpt2"]


def batches_of_other_shapes(task) -> list[dict]:
    """Three sequences (padded to the longest, for text), and the same cut to 7 tokens: neither is
    the shape the model was exported with."""
    batch = task.latency_input(3)
    return [batch, {name: t[:, :7] for name, t in batch.items()}]


def assert_same_output(run, module, task, rtol):
    for batch in batches_of_other_shapes(task):
        with torch.no_grad():
            expected = getattr(module(**batch), task.model_output)
        got = getattr(run(batch), task.model_output)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, rtol=rtol, atol=rtol * expected.abs().max().item())


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_transformer_fp32_export_matches_torch(name, request, tmp_path):
    task, model = request.getfixturevalue(name)
    realized, run = realize("fp32", (task, model), tmp_path)
    assert not model.training  # exporting leaves dropout off in the caller's model
    assert_same_output(run, model, task, rtol=1e-4)
    inputs = [i.name for i in onnx.load(str(realized.path)).graph.input]
    assert inputs == list(task.example_input) and "MatMul" in realized.kernel


@pytest.mark.parametrize("name,absent", [("tiny_bert", ["pooler.dense"]), ("tiny_llama", []), ("tiny_gpt2", [])])
def test_transformer_matmul_nbits_holds_the_torch_integers_and_matches_the_torch_model(name, absent, request,
                                                                                       tmp_path):
    task, model = request.getfixturevalue(name)
    quantized = apply_method(parse_methods("rtn:group_size=32")[0], model, Context(task, progress=False))
    realized, run = realize("rtn:group_size=32", (task, model), tmp_path)
    assert realized.details["nbits_layers_not_in_graph"] == absent
    in_graph = {name: lw for name, lw in quantized.format.layers.items() if name not in absent}
    assert_same_integers(nbits_weights(realized.path), in_graph)
    assert_same_output(run, quantized.module, task, rtol=1e-4)


def test_ort_rows_for_a_causal_lm(tiny_llama_dir, cache_dir):
    """Every method on ONNX Runtime for a Llama (dict inputs, logits out); that ORT's fp32 and MatMulNBits
    outputs are torch's is checked tensor by tensor in the export tests above."""
    spec = CompareSpec(task="lm", model=tiny_llama_dir, seq_len=32, eval_samples=4, runtime="onnxruntime",
                       batch_sizes=(1, 4), progress=False, cache_dir=cache_dir,
                       methods="fp32,ptq-dynamic,ptq-static,rtn:group_size=32,gptq:group_size=32,calib_samples=8,qat")
    ort = {r.method: r for r in compare(spec).rows}
    assert ort.pop("qat").status == "unsupported"
    for method, row in ort.items():
        assert row.status == "ok", (method, row.error)
        assert row.metric == "perplexity" and [lat.batch_size for lat in row.latency] == [1, 4]
        assert 0.5 * row.size_bytes < row.peak_memory_bytes < 3 * row.size_bytes + 50e6, method  # the model's, not imports
    # ORT's int8 quantizers against ORT's fp32 row (random weights: perplexity is about the vocabulary
    # size, so agreement with fp32's next tokens, 4 x 31 of them, is the sharp signal). Measured:
    # perplexity within 0.1%, agreement 0.98 (dynamic) and 0.95 (static QDQ).
    for method, min_agreement in (("ptq-dynamic", 0.9), ("ptq-static", 0.85)):
        assert abs(ort[method].quality / ort["fp32"].quality - 1) < 0.01, method
        assert ort[method].agreement > min_agreement, method
    assert "MatMulNBits" in ort["gptq:group_size=32,calib_samples=8"].kernel
    assert "QLinearMatMul" in ort["ptq-static"].kernel or "MatMulInteger" in ort["ptq-static"].kernel
    assert "calibrated on 128 training samples" in " ".join(ort["ptq-static"].notes)


def test_minilm_on_onnxruntime(cache_dir):
    """The real all-MiniLM-L6-v2: ORT's fp32 embeddings are torch's; 4-bit MatMulNBits stays close."""
    spec = CompareSpec(task="minilm", eval_samples=64, runtime="torch-cpu,onnxruntime", methods="fp32,rtn",
                       batch_sizes=(1,), memory=False, progress=False, cache_dir=cache_dir)
    rows = {(r.method, r.runtime): r for r in compare(spec).rows}
    assert all(r.status == "ok" for r in rows.values()), [r.error for r in rows.values()]
    for runtime in ("torch-cpu", "onnxruntime"):
        fp32 = rows["fp32", runtime]
        assert fp32.metric == "cosine" and fp32.accuracy is None
        assert fp32.quality == pytest.approx(1.0, abs=1e-5) and fp32.agreement == 1.0, runtime
        assert rows["rtn", runtime].size_bytes < 0.7 * fp32.size_bytes, runtime
    rtn = rows["rtn", "onnxruntime"]
    assert rtn.quality == pytest.approx(rows["rtn", "torch-cpu"].quality, abs=0.01) and rtn.quality > 0.9
    assert rtn.details["nbits_layers_not_in_graph"] == ["pooler.dense"]
