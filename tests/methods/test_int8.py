"""Each int8 method on real kernels: correct values, real size reduction, QAT from FP32."""
import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.formats import DenseFormat
from quantbench.config import make_config, parse_methods
from quantbench.methods import Context, Quantized, apply_method
from quantbench.methods.qat import prepare_qat_model
from quantbench.runtimes import TorchCPU
from quantbench.tasks import build_task
from quantbench.tasks.train import trained_fp32


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    task = build_task("cnn", seed=0)
    model, _ = trained_fp32(task, 0, tmp_path_factory.mktemp("cache"), progress=False)
    return task, model


def quantize(name_or_spec, task, model):
    config = parse_methods(name_or_spec)[0]
    return apply_method(config, model, Context(task, progress=False))


def saved_size(module, task, stem: Path) -> int:
    return TorchCPU().save(Quantized(module, DenseFormat()), task, stem).stat().st_size


def test_dynamic_int8_weights_round_trip_within_one_step(mlp):
    task, model = mlp
    q = quantize("ptq-dynamic", task, model).module
    for fp, qlinear in zip([m for m in model if isinstance(m, nn.Linear)],
                           [m for m in q.modules() if type(m).__name__ == "Linear" and hasattr(m, "weight")
                            and callable(m.weight)]):
        wq = qlinear.weight()
        scale = wq.q_per_channel_scales().float()[:, None]
        err = (wq.dequantize() - fp.weight.detach()).abs()
        assert torch.all(err <= scale / 2 + 1e-6)
        assert torch.all(wq.int_repr().abs() <= 127)


@pytest.mark.parametrize("name", ["ptq-dynamic", "ptq-static", "qat"])
def test_int8_artifact_is_about_4x_smaller(name, mlp, tmp_path):
    task, model = mlp
    fp32_bytes = saved_size(model, task, tmp_path / "fp32")
    int8_bytes = saved_size(quantize(name, task, model).module, task, tmp_path / "int8")
    assert 3.3 < fp32_bytes / int8_bytes < 4.2


def test_qat_starts_from_the_fp32_weights(mlp):
    task, model = mlp
    prepared = prepare_qat_model(copy.deepcopy(model), TorchCPU().engine, task.example_input)
    fp32 = {k: v for k, v in model.state_dict().items()}
    qat = prepared.state_dict()
    for key, value in fp32.items():
        assert torch.equal(qat[key], value), key


def test_static_ptq_fuses_conv_bn_relu_and_keeps_cnn_accuracy(cnn):
    task, model = cnn
    q = quantize("ptq-static", task, model)
    kinds = {type(m).__name__ for m in q.module.modules()}
    assert "QuantizedConvReLU2d" in kinds or "ConvReLU2d" in kinds
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.Conv2d)) for m in q.module.modules())
    with torch.no_grad():
        agree = (q.module(task.splits.x_test).argmax(1) == model(task.splits.x_test).argmax(1)).float().mean()
    assert agree > 0.95


def test_dynamic_ptq_says_which_layers_stay_float(cnn):
    task, model = cnn
    q = quantize("ptq-dynamic", task, model)
    assert any("stay fp32" in n and "Conv2d" in n for n in q.notes)


@pytest.mark.parametrize("observer", ["minmax", "histogram", "percentile"])
def test_static_observers_give_working_models(observer, mlp):
    task, model = mlp
    q = quantize(f"ptq-static:observer={observer}", task, model)
    with torch.no_grad():
        agree = (q.module(task.splits.x_test).argmax(1) == model(task.splits.x_test).argmax(1)).float().mean()
    assert agree > 0.95


def test_percentile_observer_clips_outliers():
    from quantbench.methods.observers import PercentileObserver

    x = torch.cat([torch.linspace(-1, 1, 100_000), torch.tensor([1000.0])])
    obs = PercentileObserver(percentile=99.9)
    obs(x)
    assert obs.max_val < 2 and obs.min_val > -2


def test_config_rejects_out_of_range_values():
    from quantbench.errors import UserError

    with pytest.raises(UserError):
        make_config("ptq-static", {"percentile": "10"})


@pytest.mark.parametrize("spec, static", [("ptq-dynamic", False), ("ptq-static", True)])
def test_int8_format_holds_every_layers_grid_fused_ones_too(spec, static, mlp):
    """The format reads each quantized layer's grid from the converted model: per-channel weight scales
    (256 rows) for every Linear, LinearReLU included, and output activation scales for static layers."""
    task, model = mlp
    fmt = quantize(spec, task, model).format
    assert fmt.source == "torch.ao" and fmt.activations == ("static" if static else "dynamic")
    assert set(fmt.layers) == {"0", "2", "4"}
    assert fmt.layers["0"].weight_scales.shape == (256,) and bool((fmt.layers["0"].weight_scales > 0).all())
    assert (fmt.layers["2"].output_scale is not None) == static
