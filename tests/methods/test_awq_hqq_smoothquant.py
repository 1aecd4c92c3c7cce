"""awq, hqq and smoothquant as quantbench methods: what each changes, measured on real models."""
import pytest
import torch

from quantbench.config import parse_methods
from quantbench.formats.lowbit_file import load_lowbit
from quantbench.methods import Context, apply_method
from quantbench.pipeline import realize_row
from quantbench.runtimes import OnnxRuntimeCPU, TorchCPU
from quantbench.tasks import build_task
from quantbench.tasks.tabular import inject_outliers
from quantbench.tasks.train import trained_fp32


@pytest.fixture(scope="module")
def outliers(tmp_path_factory):
    task = build_task("outliers", seed=0)
    model, _ = trained_fp32(task, 0, tmp_path_factory.mktemp("cache"), progress=False)
    return task, model


def quantize(spec, task, model):
    return apply_method(parse_methods(spec)[0], model, Context(task, progress=False))


def relative_error(out: torch.Tensor, ref: torch.Tensor) -> float:
    return float(((out - ref) ** 2).mean() / (ref ** 2).mean())


def test_awq_folds_what_the_graph_allows_and_carries_the_rest(mlp, tmp_path):
    """Layer 2's scale folds into layer 0's rows through the ReLU; layer 0 reads the raw input, so its
    scale stays in the format. The folded model computes what the file holds."""
    task, model = mlp
    q = quantize("awq:calib_samples=64", task, model)
    assert list(q.details["awq_folded"]) == ["2"] and "0 (Linear rows) through 1" in q.details["awq_folded"]["2"]
    assert q.details["awq_scaled_at_run_time"] == ["0"]
    assert q.format.layers["0"].input_scale is not None and q.format.layers["2"].input_scale is None
    assert any("folded into the previous op" in n for n in q.notes)
    path = TorchCPU().save(q, task, tmp_path / "awq")
    x = task.splits.x_test
    with torch.no_grad():
        assert torch.equal(load_lowbit(path, task.build_model())(x), q.module(x))
    unfolded = quantize("awq:calib_samples=64,fold=false", task, model)
    assert unfolded.details["awq_folded"] == {} and unfolded.details["awq_scaled_at_run_time"] == ["0", "2"]
    with torch.no_grad():  # folding changes where s is applied, not the function (up to fp16 scales)
        assert relative_error(q.module(x), unfolded.module(x)) < 1e-5


def test_awq_beats_rtn_on_a_layer_with_outlier_inputs(outliers):
    """The outliers task feeds layer 2 a few channels 40x larger than the rest: AWQ's activation-aware
    scales protect the weights those channels multiply; RTN's grid ignores the activations."""
    task, model = outliers
    x = task.splits.x_test
    with torch.no_grad():
        ref = model(x)
        errors = {spec: relative_error(quantize(spec, task, model).module(x), ref)
                  for spec in ("rtn:bits=3,skip=0", "awq:bits=3,skip=0")}
    assert errors["awq:bits=3,skip=0"] < 0.7 * errors["rtn:bits=3,skip=0"], errors


def test_awq_keeps_minilm_embeddings_closer_than_rtn():
    """AWQ on the real pretrained MiniLM at 4 bits (two of six layers, to keep CI short): the cosine to
    fp32's embeddings is above RTN's on the same grid."""
    pytest.importorskip("transformers")
    task = build_task("minilm", eval_samples=100)
    reference = task.reference(task.pretrained)

    def score(spec):
        module = quantize(spec, task, task.pretrained).module
        with torch.inference_mode():
            return task.evaluate(lambda batch: module(**batch), reference).value

    two_layers = ",skip=encoder.layer.[2-5].*"
    rtn, awq = score("rtn:bits=4" + two_layers), score("awq:bits=4,calib_samples=32" + two_layers)
    assert awq > rtn, (awq, rtn)


def test_hqq_needs_no_calibration_data_and_reports_its_optimisation(mlp):
    task, model = mlp

    class NoData:  # any use of calibration data fails
        def __getattr__(self, name):
            return getattr(task, name)

        def calibration_inputs(self, *args):
            raise AssertionError("hqq asked for calibration data")

    q = apply_method(parse_methods("hqq:bits=3")[0], model, Context(NoData(), progress=False))
    assert all(lw.float_zeros for lw in q.format.layers.values())
    infos = q.details["layers"].values()
    assert all(i["error_after"] < i["error_before"] for i in infos)
    assert any(n.startswith("HQQ: float zero points") for n in q.notes)


def test_smoothquant_w8a8_error_is_below_ptq_static_on_activation_outliers(outliers, tmp_path):
    """On both CPU runtimes, the same calibration data and int8 grid: smoothing the outlier channels
    into the weights first cuts the output error (measured: about 10x on torch-cpu)."""
    task, model = outliers
    x = task.splits.x_test
    with torch.no_grad():
        ref = model(x)
    for runtime in (TorchCPU(), OnnxRuntimeCPU()):
        errors = {}
        for spec in ("ptq-static", "smoothquant"):
            ctx = Context(task, progress=False)
            realized = realize_row(parse_methods(spec)[0], model, ctx, runtime, tmp_path / f"{spec}-{runtime.name}")
            errors[spec] = relative_error(runtime.load(realized.path, task)(x), ref)
        assert errors["smoothquant"] < 0.5 * errors["ptq-static"], (runtime.name, errors)
        assert any(n.startswith("SmoothQuant alpha=0.5") and "smoothed 2 (" in n for n in realized.notes)


def test_smoothquant_with_dynamic_activations_beats_ptq_dynamic_on_outliers(outliers):
    """Smoothing then per-call int8 activations: both hidden layers smoothed, the outlier channels'
    range moved into the weights, and the output error well below plain ptq-dynamic's (measured 0.02x)."""
    task, model = outliers
    x = task.splits.x_test
    dynamic = quantize("smoothquant:activations=dynamic", task, model)
    assert dynamic.format.activations == "dynamic" and set(dynamic.details["smoothquant"]["smoothed"]) == {"2", "4"}
    smoothed = dynamic.details["smoothquant"]["smoothed"]["2"]
    assert smoothed["range_after"] < smoothed["range_before"] / 4
    with torch.no_grad():
        ref = model(x)
        plain = relative_error(quantize("ptq-dynamic", task, model).module(x), ref)
        assert relative_error(dynamic.module(x), ref) < 0.5 * plain


def test_inject_outliers_keeps_the_function(mlp):
    task, model = mlp
    import copy

    changed = inject_outliers(copy.deepcopy(model), channels=4, factor=50.0)
    x = task.splits.x_test
    with torch.no_grad():
        assert torch.allclose(changed(x), model(x), atol=1e-4)
        assert changed[0](x).abs().amax() > 10 * model[0](x).abs().amax()
