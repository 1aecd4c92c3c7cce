"""Shared plumbing of the int8 methods: torch.ao engine check, their format, and the layers that stayed
float (of a converted torch.ao model, or of the ONNX graph given to ONNX Runtime's quantizers)."""
from torch import nn

from ..formats import Int8Format
from ..formats.int8 import read_torch_int8_layers
from ..kernels.int8_engine import activate_int8_engine, choose_int8_engine, int8_engine_unavailable_reason
from .base import Context, Unsupported

_TORCH_AO_QUANTIZED = ("torch.ao.nn.quantized", "torch.ao.nn.intrinsic.quantized")
EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_ONNX_LAYER_OPS = ("Gather", "MatMul", "Gemm", "Conv", "ConvTranspose", "BatchNormalization", "LayerNormalization",
                   "InstanceNormalization", "GroupNormalization")
EMBEDDING_REASON = ("torch.ao's int8 embedding is weight-only (scheme per_channel_affine_float_qparams, "
                    "output in float), not the int8-activation format of this row")


def require_int8_engine() -> str:
    """The torch.ao int8 engine of this machine, activated; Unsupported when there is none."""
    engine = choose_int8_engine()
    reason = int8_engine_unavailable_reason(engine)
    if reason:
        raise Unsupported(reason)
    activate_int8_engine(engine)
    return engine


def torch_int8_format(module: nn.Module, activations: str, per_channel: bool) -> Int8Format:
    """The format of a converted torch.ao int8 model, its layers' grids read from it."""
    return Int8Format(activations, per_channel, "torch.ao", read_torch_int8_layers(module))


def keep_embeddings_float(mapping):
    """``mapping`` (a torch.ao QConfigMapping) with embeddings left unquantized (see EMBEDDING_REASON)."""
    for kind in EMBEDDINGS:
        mapping.set_object_type(kind, None)
    return mapping


def float_layers_note(module: nn.Module, why: str, embeddings_why: str | None = None) -> list[str]:
    """Notes naming each layer of a converted torch.ao model that still computes in float: ``why``
    (embeddings: ``embeddings_why``, default ``why``), one note per reason."""
    return _grouped_notes([(name or "(model)", type(m).__name__,
                            embeddings_why if embeddings_why and isinstance(m, EMBEDDINGS) else why)
                           for name, m in float_layers(module)])


def float_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of each module holding float parameters of its own that is not torch.ao quantized."""
    return [(name, m) for name, m in module.named_modules()
            if not type(m).__module__.startswith(_TORCH_AO_QUANTIZED)
            and any(p.is_floating_point() for p in m.parameters(recurse=False))]


def float_graph_layers_note(graph, taken_ops: tuple[str, ...], why: str) -> list[str]:
    """The same notes for an fp32 ONNX graph (``load_graph``) given to a quantizer that converts
    ``taken_ops``: its layer nodes with float weights of other op types, named by module scope."""
    return _grouped_notes([(name, op, why) for name, op in float_graph_layers(graph, taken_ops)])


def float_graph_layers(graph, taken_ops: tuple[str, ...]) -> list[tuple[str, str]]:
    """(module scope, op type) of each node of ``_ONNX_LAYER_OPS`` outside ``taken_ops`` with a float initializer
    input (an embedding's table, a norm's scale, a conv's weight; a batch norm after a conv is folded into it)."""
    from onnx import TensorProto

    floats = {t.name for t in graph.graph.initializer
              if t.data_type in (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)}
    return [(_module_scope(n.name), n.op_type) for n in graph.graph.node
            if n.op_type in _ONNX_LAYER_OPS and n.op_type not in taken_ops and floats.intersection(n.input)]


def _module_scope(node_name: str) -> str:
    """'/encoder/layer.0/LayerNorm/LayerNormalization' (torch's exporter) -> 'encoder.layer.0.LayerNorm'."""
    parts = node_name.strip("/").split("/")
    return ".".join(parts[:-1]) if len(parts) > 1 else node_name


def _grouped_notes(layers: list[tuple[str, str, str]]) -> list[str]:
    """One note per reason over (name, kind, reason) triples."""
    groups: dict[str, list[str]] = {}
    for name, kind, reason in layers:
        groups.setdefault(reason, []).append(f"{name} ({kind})")
    return [f"{len(names)} layer(s) stay fp32, {reason}: {', '.join(names)}" for reason, names in groups.items()]


def require_traceable(ctx: Context, what: str) -> None:
    if not ctx.task.traceable:
        raise Unsupported(f"{what} needs a model with one tensor input; task '{ctx.task.name}' has none")
