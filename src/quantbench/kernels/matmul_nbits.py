"""quantbench's low-bit weights as ONNX Runtime ``com.microsoft.MatMulNBits`` inputs, and back.

MatMulNBits computes ``Y = A @ W.T (+ bias)`` with ``W[n, k] = scale[n, b] * (code[n, k] - zero[n, b])``
where block ``b = k // block_size`` (a power of two >= 16) runs along K. Its inputs:

- ``B`` uint8 [N, n_blocks, block_size * bits / 8]: the codes of each block, packed low bits first
  (for 4 bits: code k in the low nibble, code k + 1 in the high nibble); K is zero-padded to
  ``n_blocks * block_size``;
- ``scales`` float32 [N * n_blocks];
- ``zero_points`` uint8 [N * ceil(n_blocks * bits / 8)], packed like B; omitted when every zero is
  the default 2**(bits - 1) (quantbench's symmetric grid).

Float zero points (HQQ's) are split exactly: z = z_int + f with z_int = clamp(round(z)) an integer
zero point MatMulNBits takes, and the rest as a correction after it: x @ W.T = MatMulNBits(x) -
(group sums of x) @ C with C[g, n] = scale[n, g] * f[n, g] (``zero_correction``, float32 [n_groups, N];
the group sums are a MatMul by a one-hot [K, n_groups] matrix shared by layers with the same groups).
MatMulNBits also accepts float32 zero_points, but ONNX Runtime 1.32's CPU kernel then ran 74x slower
than with integer ones at batch 1 (3.54 ms vs 48 us on a 2048-wide MLP, AMD EPYC AVX-512).

A per-input-channel scale (AWQ's, where it is not folded into the previous op) becomes a ``Div`` of
A by it before MatMulNBits (before the act-order Gather, in the original column order).

Nothing is re-quantized: the codes and zero points are the ``LowBitWeight``'s integers and the
scales its (fp16-rounded) values, widened to float32 as MatMulNBits wants them. A quantbench
group maps to whole blocks (the block size divides the group size; the group's scale and zero
are repeated in each of its blocks). Groups that are not contiguous runs of K (GPTQ act-order
without static groups) become contiguous after a fixed permutation of the input columns: the
graph then gathers A's columns in that order before MatMulNBits (``perm``).

``pack_lowbit`` / ``unpack_lowbit`` are pure numpy; ``replace_linear_nodes`` rewrites an ONNX graph.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from ..errors import NotRepresentable

KERNEL_BITS = (2, 4, 8)  # MatMulNBits' bits attribute: 2, 4, 8
MIN_BLOCK = 16
PER_ROW_BLOCK = 128


@dataclass(frozen=True)
class NBitsWeight:
    """The MatMulNBits inputs of one layer, plus the input-column order (None: as is)."""

    B: np.ndarray
    scales: np.ndarray
    zero_points: np.ndarray | None
    K: int
    N: int
    bits: int
    block_size: int
    perm: np.ndarray | None
    input_scale: np.ndarray | None = None
    zero_correction: np.ndarray | None = None
    group_of_column: np.ndarray | None = None

    @property
    def n_blocks(self) -> int:
        return -(-self.K // self.block_size)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.B, self.scales, self.zero_points, self.perm, self.input_scale,
                                      self.zero_correction) if a is not None)


def nbits_refusal(lw) -> str | None:
    """Why MatMulNBits cannot hold ``lw`` (a LowBitWeight) exactly, or None when it can."""
    try:
        _check_representable(lw)
    except NotRepresentable as e:
        return str(e)
    return None


def _check_representable(lw) -> None:
    if lw.bits not in KERNEL_BITS:
        raise NotRepresentable(f"ONNX Runtime's MatMulNBits has {'/'.join(map(str, KERNEL_BITS))}-bit kernels; "
                               f"{lw.bits}-bit codes have none")
    choose_block_size(lw.group_size, lw.in_features)
    lw.column_order()
    if not lw.float_zeros:
        _integer_zeros(lw.zeros.numpy(), lw.bits)


def split_float_zeros(lw) -> tuple[np.ndarray, np.ndarray]:
    """(integer zeros [N, n_groups] uint8, correction C [n_groups, N] float32) with
    scale * (q - z) = scale * (q - z_int) - C for every code q (see the module doc)."""
    zeros = lw.zeros.float().numpy()
    integer = np.clip(np.round(zeros), 0, (1 << lw.bits) - 1)
    correction = lw.scales.float().numpy() * (zeros - integer).astype(np.float32)
    return integer.astype(np.uint8), np.ascontiguousarray(correction.T, dtype=np.float32)


def pack_lowbit(lw) -> NBitsWeight:
    """MatMulNBits inputs holding exactly the codes, zero points and scales of ``lw`` (a LowBitWeight)."""
    _check_representable(lw)
    q = lw.q.numpy()
    N, K = q.shape
    perm = lw.column_order()
    perm = None if perm is None else perm.numpy()
    block = choose_block_size(lw.group_size, K)
    block_group = block_groups(K, block, lw.group_size)
    if perm is not None:
        q = q[:, perm]
    padded = np.zeros((N, len(block_group) * block), np.uint8)
    padded[:, :K] = q
    return NBitsWeight(
        B=pack_low_first(padded.reshape(N, len(block_group), block), lw.bits),
        scales=np.ascontiguousarray(lw.scales.float().numpy()[:, block_group], dtype=np.float32).reshape(-1),
        zero_points=_zero_points(lw, block_group),
        K=K, N=N, bits=lw.bits, block_size=block, perm=perm,
        input_scale=None if lw.input_scale is None else lw.input_scale.float().numpy().astype(np.float32),
        zero_correction=split_float_zeros(lw)[1] if lw.float_zeros else None,
        group_of_column=lw.g_idx.numpy().astype(np.int64) if lw.float_zeros else None,
    )


def _zero_points(lw, block_group: np.ndarray) -> np.ndarray | None:
    """MatMulNBits' packed integer zero_points of ``lw`` (a float zero's integer part), None when every
    zero is the default 2**(bits - 1)."""
    if lw.float_zeros:
        zeros = split_float_zeros(lw)[0][:, block_group]
        return pack_low_first(zeros, lw.bits).reshape(-1)
    zeros = _integer_zeros(lw.zeros.numpy(), lw.bits)[:, block_group]
    if bool((zeros == 1 << (lw.bits - 1)).all()):
        return None
    return pack_low_first(zeros, lw.bits).reshape(-1)


def unpack_lowbit(w: NBitsWeight) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(codes [N, K], zeros [N, n_blocks], scales [N, n_blocks]) in the original column order."""
    codes = unpack_low_first(w.B, w.bits).reshape(w.N, -1)[:, : w.K]
    if w.zero_points is None:
        zeros = np.full((w.N, w.n_blocks), 1 << (w.bits - 1), np.uint8)
    else:
        zeros = unpack_low_first(w.zero_points.reshape(w.N, -1), w.bits)[:, : w.n_blocks]
    if w.perm is not None:
        restored = np.empty_like(codes)
        restored[:, w.perm] = codes
        codes = restored
    return codes, zeros, w.scales.reshape(w.N, w.n_blocks)


def dequantize(w: NBitsWeight) -> np.ndarray:
    """float32 W [N, K] that the layer applies to its input (original column order; divided column-wise
    by the input scale when there is one)."""
    codes, zeros, scales = unpack_lowbit(w)
    block_of_column = np.arange(w.K) // w.block_size
    if w.perm is not None:
        block_of_column[w.perm] = block_of_column.copy()
    z, s = zeros[:, block_of_column].astype(np.float32), scales[:, block_of_column]
    weight = s * (codes.astype(np.float32) - z)
    if w.zero_correction is not None:
        weight = weight - w.zero_correction[w.group_of_column].T
    return weight if w.input_scale is None else weight / w.input_scale[None, :]


def choose_block_size(group_size: int, K: int) -> int:
    """A power of two >= 16 dividing the group size (one block never spans two groups), no larger
    than K needs; per-row grids use blocks of 128 with the row's scale repeated."""
    fits_k = max(MIN_BLOCK, 1 << max(K - 1, 0).bit_length())
    if group_size == -1:
        return min(PER_ROW_BLOCK, fits_k)
    block = group_size & -group_size  # largest power of two dividing group_size
    if block < MIN_BLOCK:
        raise NotRepresentable(f"group_size {group_size} is not a multiple of 16; MatMulNBits blocks are powers "
                               f"of two >= 16 and one block must not span two groups")
    return min(block, fits_k)


def pack_low_first(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [..., L * bits / 8]: codes [..., L] packed along the last axis, low bits first
    (the last axis is zero-padded to a whole number of bytes)."""
    per_byte = 8 // bits
    L = codes.shape[-1]
    padded = np.zeros(codes.shape[:-1] + (-(-L // per_byte) * per_byte,), np.uint8)
    padded[..., :L] = codes
    grouped = padded.reshape(codes.shape[:-1] + (-1, per_byte)).astype(np.uint16)
    shifts = (np.arange(per_byte) * bits).astype(np.uint16)
    return np.bitwise_or.reduce(grouped << shifts, axis=-1).astype(np.uint8)


def unpack_low_first(packed: np.ndarray, bits: int) -> np.ndarray:
    """uint8 codes [..., 8 / bits * L] from bytes [..., L] made by ``pack_low_first``."""
    per_byte = 8 // bits
    shifts = (np.arange(per_byte) * bits).astype(np.uint8)
    values = (packed[..., None] >> shifts) & np.uint8((1 << bits) - 1)
    return values.reshape(packed.shape[:-1] + (-1,))


def block_groups(K: int, block: int, group_size: int) -> np.ndarray:
    """The quantbench group of each MatMulNBits block."""
    starts = np.arange(-(-K // block)) * block
    return np.zeros_like(starts) if group_size == -1 else starts // group_size


def _integer_zeros(zeros: np.ndarray, bits: int) -> np.ndarray:
    if not np.array_equal(zeros, np.round(zeros)) or zeros.min() < 0 or zeros.max() > (1 << bits) - 1:
        raise NotRepresentable(f"zero points must be integers in [0, {(1 << bits) - 1}]")
    return zeros.astype(np.uint8)


# --- graph rewrite ---------------------------------------------------------------------------


def replace_linear_nodes(model, weights: dict[str, NBitsWeight], dense: dict[str, np.ndarray],
                         accuracy_level: int) -> dict[str, str]:
    """Replace each quantized layer's Gemm/MatMul in ``model`` (an onnx.ModelProto, changed in place)
    by MatMulNBits. ``dense``: each layer's weight [N, K] as exported, used to find its node (by
    initializer name ``<layer>.weight``, else by value: torch exports ``nn.Linear`` on 2-D inputs as
    Gemm with the weight as is, on 3-D inputs as MatMul with the weight transposed and an Add for
    the bias, which then stays as is; GPT-2's Conv1D as Gemm on its [K, N] weight). Returns
    layer -> replaced node type; a layer whose weight is nowhere in the graph (its output does not
    reach the graph's outputs, so the exporter dropped it) is not in it. A weight that is in the
    graph, but not as a Gemm/MatMul operand, raises."""
    from onnx import helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    replaced: dict[str, str] = {}
    for layer, w in weights.items():
        node = _find_node(graph, inits, layer, dense[layer])
        if node is not None:
            replaced[layer] = node.op_type
            _replace_node(graph, node, inits, layer, w, accuracy_level)
    _drop_unused_initializers(graph)
    if not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return replaced


def _replace_node(graph, node, inits, layer: str, w: NBitsWeight, accuracy_level: int) -> None:
    """``node`` (Gemm or MatMul) -> MatMulNBits on ``w``'s tensors, after a Gather for act-order."""
    from onnx import helper, numpy_helper

    prefix = f"{layer}.nbits"
    a_input, bias = node.input[0], _gemm_bias(node, graph, inits) if node.op_type == "Gemm" else ""
    new_inits = [numpy_helper.from_array(w.B, f"{prefix}.B"), numpy_helper.from_array(w.scales, f"{prefix}.scales")]
    inputs = [a_input, f"{prefix}.B", f"{prefix}.scales"]
    if w.zero_points is not None:
        new_inits.append(numpy_helper.from_array(w.zero_points, f"{prefix}.zero_points"))
        inputs.append(f"{prefix}.zero_points")
    else:
        inputs.append("")
    new_nodes = []
    if w.input_scale is not None:
        new_inits.append(numpy_helper.from_array(w.input_scale, f"{prefix}.input_scale"))
        new_nodes.append(helper.make_node("Div", [inputs[0], f"{prefix}.input_scale"], [f"{prefix}.scaled"],
                                          name=f"{prefix}.scale_input"))
        inputs[0] = f"{prefix}.scaled"
    a_scaled = inputs[0]  # the input in its original column order (after the input scale, if any)
    if w.perm is not None:
        new_inits.append(numpy_helper.from_array(w.perm.astype(np.int64), f"{prefix}.perm"))
        new_nodes.append(helper.make_node("Gather", [inputs[0], f"{prefix}.perm"], [f"{prefix}.A"], axis=-1,
                                          name=f"{prefix}.gather"))
        inputs[0] = f"{prefix}.A"
    if bias:
        inputs += ["", bias]
    attrs = {"K": w.K, "N": w.N, "bits": w.bits, "block_size": w.block_size}
    if accuracy_level:
        attrs["accuracy_level"] = accuracy_level
    outputs = list(node.output) if w.zero_correction is None else [f"{prefix}.main"]
    new_nodes.append(helper.make_node("MatMulNBits", inputs, outputs, name=f"{prefix}.matmul",
                                      domain="com.microsoft", **attrs))
    if w.zero_correction is not None:
        groups = _group_sums_initializer(graph, inits, w, new_inits)
        new_inits.append(numpy_helper.from_array(w.zero_correction, f"{prefix}.zero_correction"))
        new_nodes += [
            helper.make_node("MatMul", [a_scaled, groups], [f"{prefix}.group_sums"], name=f"{prefix}.group_sums"),
            helper.make_node("MatMul", [f"{prefix}.group_sums", f"{prefix}.zero_correction"], [f"{prefix}.correction"],
                             name=f"{prefix}.correct"),
            helper.make_node("Sub", [f"{prefix}.main", f"{prefix}.correction"], list(node.output),
                             name=f"{prefix}.zero_fraction"),
        ]
    position = list(graph.node).index(node)
    graph.node.remove(node)
    for offset, new in enumerate(new_nodes):
        graph.node.insert(position + offset, new)
    graph.initializer.extend(new_inits)


def _group_sums_initializer(graph, inits, w: NBitsWeight, new_inits: list) -> str:
    """The name of the one-hot [K, n_groups] matrix whose product with A gives A's group sums; layers
    with the same groups share one (added to ``new_inits`` the first time)."""
    from onnx import numpy_helper

    one_hot = np.zeros((w.K, int(w.group_of_column.max()) + 1), np.float32)
    one_hot[np.arange(w.K), w.group_of_column] = 1.0
    name = f"nbits.group_sums.{hashlib.sha256(w.group_of_column.tobytes()).hexdigest()[:12]}"
    if name not in inits and all(t.name != name for t in new_inits):
        new_inits.append(numpy_helper.from_array(one_hot, name))
        inits[name] = new_inits[-1]
    return name


def _find_node(graph, inits, layer: str, weight: np.ndarray):
    """The Gemm or MatMul computing ``layer`` (its weight [N, K] stored as is, or transposed); None
    when no initializer of the graph holds the weight."""
    for node in graph.node:
        layout = _weight_layout(node)
        if layout is None or node.input[1] not in inits:
            continue
        stored = inits[node.input[1]]
        if layout == "NK" and stored.name == f"{layer}.weight":
            return node
        if _holds(stored, weight if layout == "NK" else weight.T):
            return node
    if any(_holds(t, weight) or _holds(t, weight.T) for t in inits.values()):
        raise ValueError(f"layer {layer!r}: its weight is in the exported ONNX graph, but not as the weight "
                         f"of a Gemm or MatMul")
    return None


def _holds(initializer, value: np.ndarray) -> bool:
    from onnx import numpy_helper

    return tuple(initializer.dims) == value.shape and np.array_equal(numpy_helper.to_array(initializer), value)


def _weight_layout(node) -> str | None:
    """How the node holds a layer's weight: 'KN' for MatMul and for Gemm ``Y = A @ B + C`` (GPT-2's
    Conv1D), 'NK' for Gemm ``Y = A @ B.T + C`` (nn.Linear on 2-D inputs); None for other nodes
    and Gemms (alpha or beta != 1, transposed A)."""
    if node.op_type == "MatMul" and len(node.input) == 2:
        return "KN"
    if node.op_type != "Gemm":
        return None
    attrs = {a.name: a for a in node.attribute}

    def get(name, default):
        if name not in attrs:
            return default
        return attrs[name].f if attrs[name].type == attrs[name].FLOAT else attrs[name].i

    if get("transA", 0) != 0 or get("alpha", 1.0) != 1.0 or get("beta", 1.0) != 1.0:
        return None
    return "NK" if get("transB", 0) == 1 else "KN"


def _gemm_bias(node, graph, inits) -> str:
    """The Gemm's bias input ('' if none): a constant vector, an initializer or an Identity of one
    (the exporter shares equal constants, e.g. all-zero biases, through Identity nodes)."""
    if len(node.input) < 3 or not node.input[2]:
        return ""
    source = _through_identities(graph, node.input[2])
    if source not in inits or len(inits[source].dims) != 1:
        raise ValueError(f"Gemm {node.name!r}: bias is not a constant vector")
    return node.input[2]


def _through_identities(graph, name: str) -> str:
    producers = {out: n for n in graph.node for out in n.output}
    while name in producers and producers[name].op_type == "Identity":
        name = producers[name].input[0]
    return name


def _drop_unused_initializers(graph) -> None:
    used = {name for node in graph.node for name in node.input}
    for init in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(init)


def read_nbits_weights(model, folder) -> dict[str, NBitsWeight]:
    """Every MatMulNBits of a saved ``.onnx`` file (``model``: the file as ``load_graph`` reads it;
    tensors kept in external data are read from ``folder``): layer name -> its tensors."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}

    def tensor(name: str) -> np.ndarray:
        return numpy_helper.to_array(inits[name], base_dir=str(folder))

    gathers = {n.output[0]: n.input for n in graph.node if n.name.endswith(".nbits.gather")}
    divisions = {n.output[0]: n.input[1] for n in graph.node if n.name.endswith(".nbits.scale_input")}
    corrections = {n.name.removesuffix(".nbits.correct"): n.input[1] for n in graph.node
                   if n.name.endswith(".nbits.correct")}
    group_sums = {n.name.removesuffix(".nbits.group_sums"): n.input[1] for n in graph.node
                  if n.name.endswith(".nbits.group_sums")}
    found = {}
    for node in (n for n in graph.node if n.op_type == "MatMulNBits"):
        attrs = {a.name: a.i for a in node.attribute}
        zero_points = tensor(node.input[3]) if len(node.input) > 3 and node.input[3] else None
        a_input, perm = node.input[0], None
        if a_input in gathers:
            a_input, perm = gathers[a_input][0], tensor(gathers[a_input][1])
        input_scale = tensor(divisions[a_input]) if a_input in divisions else None
        layer = node.name.removesuffix(".nbits.matmul")
        correction = tensor(corrections[layer]) if layer in corrections else None
        groups = tensor(group_sums[layer]).argmax(axis=1) if layer in group_sums else None
        found[layer] = NBitsWeight(tensor(node.input[1]), tensor(node.input[2]), zero_points, attrs["K"], attrs["N"],
                                   attrs["bits"], attrs["block_size"], perm, input_scale, correction, groups)
    return found
