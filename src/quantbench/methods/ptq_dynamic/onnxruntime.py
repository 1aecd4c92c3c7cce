"""ptq-dynamic on ONNX Runtime: its own ``quantize_dynamic`` on the exported fp32 graph."""
import time

from ...formats import Int8Format
from ...kernels.onnx_export import exported, is_large, load_graph
from ...kernels.onnx_quantize import (fresh_onnx_path, quiet_ort_quantization, reduce_range, reduce_range_note,
                                      unweighted_nodes)
from ..base import Quantized, quantizes
from ..int8_modules import float_graph_layers_note
from . import PTQDynamicConfig

_TAKEN = ("MatMul", "Gemm")


@quantizes(PTQDynamicConfig, runtime="onnxruntime")
def quantize_dynamic_ort(config: PTQDynamicConfig, model, ctx) -> Quantized:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = fresh_onnx_path(ctx.stem)
    with exported(model, ctx.task) as source:
        graph = load_graph(source)
        start = time.perf_counter()
        with quiet_ort_quantization():
            quantize_dynamic(source, path, weight_type=QuantType.QInt8, per_channel=config.per_channel,
                             reduce_range=reduce_range(), op_types_to_quantize=list(_TAKEN),
                             nodes_to_exclude=unweighted_nodes(graph), use_external_data_format=is_large(graph))
        seconds = time.perf_counter() - start
    notes = [f"ONNX Runtime quantize_dynamic: int8 weights ({'per channel' if config.per_channel else 'per tensor'}), "
             f"uint8 activations quantized per batch at run time; linear layers only (MatMul/Gemm with a weight; "
             f"not the activation x activation products of attention), as the method defines" + reduce_range_note()]
    notes += float_graph_layers_note(graph, _TAKEN, "ONNX Runtime quantize_dynamic takes MatMul/Gemm only")
    return Quantized(None, Int8Format("dynamic", config.per_channel, "onnxruntime"), notes=notes, graph=path,
                     seconds=seconds)
