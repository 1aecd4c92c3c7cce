"""ptq-static on ONNX Runtime: its own ``quantize_static`` (QDQ format, its calibrators) on the
exported fp32 graph, calibrated on the same batches as the torch row."""
import time

from ...formats import Int8Format
from ...kernels.onnx_export import exported, input_types, is_large, load_graph
from ...kernels.onnx_quantize import (LAYER_OPS, CalibrationReader, fresh_onnx_path, quiet_ort_quantization,
                                      reduce_range, reduce_range_note, unweighted_nodes)
from ...tasks.base import batch_rows
from ..base import Quantized, quantizes
from ..int8_modules import float_graph_layers_note
from . import PTQStaticConfig

_OBSERVER_TO_ORT = {"minmax": "MinMax", "histogram": "Entropy", "percentile": "Percentile"}


@quantizes(PTQStaticConfig, runtime="onnxruntime")
def quantize_static_ort(config: PTQStaticConfig, model, ctx) -> Quantized:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    path = fresh_onnx_path(ctx.stem)
    calib = ctx.task.calibration_inputs(config.calib_samples, config.calib_batch)
    extra = {"CalibStridedMinMax": 1}  # one batch at a time (see CalibrationReader)
    if config.observer == "percentile":
        extra["CalibPercentile"] = config.percentile
    with exported(model, ctx.task) as source:
        graph = load_graph(source)
        start = time.perf_counter()
        with quiet_ort_quantization():
            quantize_static(source, path, CalibrationReader(input_types(graph), calib), quant_format=QuantFormat.QDQ,
                            per_channel=config.per_channel, reduce_range=reduce_range(),
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            calibrate_method=getattr(CalibrationMethod, _OBSERVER_TO_ORT[config.observer]),
                            extra_options=extra, op_types_to_quantize=list(LAYER_OPS),
                            nodes_to_exclude=unweighted_nodes(graph), use_external_data_format=is_large(graph))
        seconds = time.perf_counter() - start
    notes = [_describe(config, sum(map(batch_rows, calib)))]
    notes += float_graph_layers_note(graph, LAYER_OPS, "ONNX Runtime quantize_static here takes MatMul/Gemm/Conv only")
    return Quantized(None, Int8Format("static", config.per_channel, "onnxruntime"), notes=notes, graph=path,
                     seconds=seconds)


def _describe(config: PTQStaticConfig, n_samples: int) -> str:
    mapping = {"minmax": "MinMax", "histogram": "Entropy (KL divergence; torch's histogram observer minimizes L2 "
                                                "error instead, so the ranges differ)",
               "percentile": f"Percentile ({config.percentile})"}[config.observer]
    return (f"ONNX Runtime quantize_static, QDQ format, calibrated on {n_samples} training samples; "
            f"observer {config.observer} -> ORT CalibrationMethod.{mapping}; int8 weights "
            f"({'per channel' if config.per_channel else 'per tensor'}), uint8 activations; layers with weights "
            f"only (MatMul/Gemm/Conv)" + reduce_range_note())
