"""Weight-only low-bit kernels of torch, fed with quantbench's integers as they are (no
re-quantization), on the CPU and on CUDA:

- ``tinygemm_weight``: a ``LowBitWeight`` (codes, zero points, fp16-rounded scales, g_idx)
  as the operands of torch's int4 "tinygemm" kernels (``aten._weight_int4pack_mm`` on CUDA, the
  kernel behind torchao's tensor-core-tiled int4 layout, and ``aten._weight_int4pack_mm_for_cpu``,
  its CPU build with the same convention), plus the kernel's dequant formula in plain torch
  (``tinygemm_dequantize``) to check the conversion;
- ``int8_weight_only``: an 8-bit ``LowBitWeight`` as int8 codes centred on zero with its grid;
- ``TinygemmLinear`` / ``Int8WeightOnlyLinear``: the modules that run those operands;
- ``weight_only_module``: the module that runs a layer's integers on a device;
  ``cpu_layer`` / ``cpu_kernel_summary``: for the torch-cpu runtime, the module of each quantized
  layer a CPU kernel takes (``fill_lowbit`` dequantizes the others) and how its rows describe that.

tinygemm's convention (torch ``int4mm.cu``; torchao ``_dequantize_affine_tinygemm`` and
``pack_tinygemm_scales_and_zeros``): a stored 4-bit code u in [0, 15] means

    w = (u - 8) * scale + zero          (scale, zero: bf16, one pair per group of K columns)

with ``scales_and_zeros`` of shape [K / group_size, N, 2] ([..., 0] scale, [..., 1] zero). quantbench
stores w = s * (q - z) with a zero point z (an integer; HQQ's is a float), so u = q and

    zero = s * (8 - z)                  since s * (q - z) = s * (q - 8) + s * (8 - z).

Both s and zero must be bf16 for the kernel: quantbench's fp16 scales are rounded to bf16 (relative
error <= 2^-9) and the zero is computed from the rounded scale, then rounded; so the kernel sees
the same integers with grids within bf16 rounding of quantbench's (at most ~0.06 of a step).
Both kernels take bf16 activations (torch's CPU int4 kernel also takes fp32 ones, but 47-127x
slower on our machines), so a row run on them computes its matmuls with bf16 inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import NotRepresentable
from ..formats.lowbit import INT4_WEIGHT_ONLY, INT8_WEIGHT_ONLY, LowBitWeight, weight_only_kind

TINYGEMM_GROUP_SIZES = (256, 128, 64, 32)
"""Group sizes the tinygemm kernel is compiled for, largest first."""
_N_MULTIPLE = 16
"""Output rows are padded to a multiple of this (CUDA tinygemm needs 8, torch's CPU build of it 16)."""
_CPU_PACK_ROWS = 64
"""Rows the CPU packing converts at a time: its layout packs blocks of 64 rows independently, so packing
row blocks of a multiple of 64 gives the same bytes as packing the whole layer (a test checks it)."""


# --- int4 tinygemm -------------------------------------------------------------------------------


@dataclass(frozen=True)
class TinygemmWeight:
    """tinygemm operands of one layer, before the device-specific packing.

    ``codes``: uint8 [N16, K] in [0, 15], N16 = N rounded up to 16 (padding rows are zero), input
    columns in group order; ``scales_and_zeros``: bf16 [K / group_size, N16, 2]; ``perm``: int64 [K],
    the input column feeding each packed column (act-order GPTQ), None when the order is unchanged.
    """

    codes: torch.Tensor
    scales_and_zeros: torch.Tensor
    group_size: int
    out_features: int
    perm: torch.Tensor | None

    @property
    def in_features(self) -> int:
        return self.codes.shape[1]

    @property
    def inner_k_tiles(self) -> int:
        """K-tiles of 16 packed together: 8 (16-byte loads) when K allows, else 4 or 2."""
        return next(t for t in (8, 4, 2) if self.in_features % (16 * t) == 0)


def tinygemm_refusal(lw: LowBitWeight) -> str | None:
    """Why ``lw`` cannot be put into tinygemm's layout as it is, or None when it can (see ``tinygemm_weight``)."""
    try:
        tinygemm_plan(lw)
    except NotRepresentable as e:
        return str(e)
    return None


def tinygemm_plan(lw: LowBitWeight) -> tuple[int, torch.Tensor | None]:
    """The tinygemm group size for ``lw`` and its column permutation (None: columns in order)."""
    if lw.bits > 4:
        raise NotRepresentable(f"tinygemm stores 4-bit codes; this grid has {lw.bits} bits")
    k, width = lw.in_features, lw.group_width
    tile = next((g for g in TINYGEMM_GROUP_SIZES if width % g == 0 and k % g == 0), None)
    if tile is None:
        raise NotRepresentable(f"groups of {width} columns over in_features {k}: tinygemm groups "
                               f"({', '.join(map(str, TINYGEMM_GROUP_SIZES))}) must divide both")
    return tile, lw.column_order()


def tinygemm_weight(lw: LowBitWeight) -> TinygemmWeight:
    """``lw`` as tinygemm operands, exactly (same codes and zero points; grids rounded to bf16).

    Needs <= 4 bits (3- and 2-bit codes sit in 4-bit containers) and a tinygemm group size (32, 64,
    128 or 256) dividing both quantbench's group size and K: a quantbench group then spans whole
    tinygemm groups, which repeat its scale and zero (a per-row grid is one group of K columns; a
    shorter last group is fine). Groups must be contiguous once the columns are sorted by group
    (act-order g_idx is handled by a column permutation)."""
    tile, perm = tinygemm_plan(lw)
    n, k = lw.q.shape
    scale_b = lw.scales.float().to(torch.bfloat16)
    zero_b = (scale_b.float() * (8.0 - lw.zeros.float())).to(torch.bfloat16)
    source_group = (torch.arange(k // tile) * tile) // lw.group_width  # quantbench group of each tinygemm group
    pad = -n % _N_MULTIPLE
    codes = lw.q if perm is None else lw.q[:, perm]
    codes = nn.functional.pad(codes, (0, 0, 0, pad)) if pad else codes  # a copy only when rows are added
    pairs = torch.stack([scale_b[:, source_group], zero_b[:, source_group]], dim=-1)  # [N, groups, 2]
    pairs = nn.functional.pad(pairs, (0, 0, 0, 0, 0, pad))
    return TinygemmWeight(codes.contiguous(), pairs.transpose(0, 1).contiguous(), tile, n, perm)


def tinygemm_dequantize(tw: TinygemmWeight) -> torch.Tensor:
    """What the kernel computes as the weight, float32 [N, K] in the original column order:
    (u - 8) * scale + zero, scale and zero read from ``scales_and_zeros`` of each column's group."""
    w = _packed_columns(tw, torch.arange(tw.in_features, device=tw.codes.device))
    if tw.perm is None:
        return w
    out = torch.empty_like(w)
    out[:, tw.perm] = w
    return out


def _packed_columns(tw: TinygemmWeight, columns: torch.Tensor) -> torch.Tensor:
    """The kernel's weights in the packed columns ``columns``: (u - 8) * scale + zero, float32 [N, len]."""
    group = columns // tw.group_size
    scale = tw.scales_and_zeros[group, :, 0].float().T
    zero = tw.scales_and_zeros[group, :, 1].float().T
    return ((tw.codes[:, columns].float() - 8.0) * scale + zero)[: tw.out_features]


def pack_nibbles(codes: torch.Tensor) -> torch.Tensor:
    """uint8 [N, K] codes -> uint8 [N, K / 2], the input of the CUDA ``_convert_weight_to_int4pack``:
    column 2i in the high nibble, column 2i + 1 in the low nibble (as torchao's tinygemm layout)."""
    codes = codes.to(torch.uint8)
    return ((codes[:, ::2] << 4) | codes[:, 1::2]).contiguous()


def _pack_int4(codes: torch.Tensor, inner_k_tiles: int, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        return torch.ops.aten._convert_weight_to_int4pack(pack_nibbles(codes).to(device), inner_k_tiles)
    return _pack_int4_cpu(codes, inner_k_tiles)


def _pack_int4_cpu(codes: torch.Tensor, inner_k_tiles: int) -> torch.Tensor:
    """uint8 [N, K / 2]: torch's CPU build of the same kernel family (same scales_and_zeros convention).
    It takes int32 codes (4 bytes a code), so rows are converted ``_CPU_PACK_ROWS`` at a time into the
    preallocated result: no int32 copy of the layer, and each block's temporaries are freed before the next
    (blocks kept until a final concatenation fragmented the heap: a 4096 x 4096 layer then took 60 MB)."""
    packed = torch.empty(codes.shape[0], codes.shape[1] // 2, dtype=torch.uint8)
    for start in range(0, codes.shape[0], _CPU_PACK_ROWS):
        rows = codes[start:start + _CPU_PACK_ROWS].to(torch.int32)
        packed[start:start + len(rows)] = torch.ops.aten._convert_weight_to_int4pack_for_cpu(rows, inner_k_tiles)
    return packed


def _int4_mm(x: torch.Tensor, packed: torch.Tensor, group_size: int, scales_and_zeros: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cuda":
        return torch.ops.aten._weight_int4pack_mm(x, packed, group_size, scales_and_zeros)
    return torch.ops.aten._weight_int4pack_mm_for_cpu(x, packed, group_size, scales_and_zeros)


class _WeightOnlyLinear(nn.Module):
    """y = x W^T + b over the last dimension of x; subclasses give ``_matmul`` (rows [M, K] -> [M, N],
    in the dtype of x) from their packed weights."""

    in_features: int
    out_features: int

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._matmul(x.reshape(-1, self.in_features))
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)

    def _matmul(self, rows: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class TinygemmLinear(_WeightOnlyLinear):
    """y = x W^T + b with W held as packed int4 codes; runs ``aten._weight_int4pack_mm`` (bf16)."""

    def __init__(self, tw: TinygemmWeight, bias: torch.Tensor | None, device: torch.device):
        super().__init__()
        self.in_features, self.out_features, self.group_size = tw.in_features, tw.out_features, tw.group_size
        self.register_buffer("packed", _pack_int4(tw.codes, tw.inner_k_tiles, device))
        self.register_buffer("scales_and_zeros", tw.scales_and_zeros.to(device))
        self.register_buffer("perm", None if tw.perm is None else tw.perm.to(device))
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(device), requires_grad=False)

    def _matmul(self, rows: torch.Tensor) -> torch.Tensor:
        gathered = rows if self.perm is None else rows.index_select(1, self.perm)
        y = _int4_mm(gathered.to(torch.bfloat16).contiguous(), self.packed, self.group_size, self.scales_and_zeros)
        return y[:, : self.out_features].to(rows.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}, " \
               f"act_order={self.perm is not None}"


def check_tinygemm(module: TinygemmLinear, tw: TinygemmWeight, columns: int = 128) -> float:
    """Run the kernel on rows of the identity (one input column each) and compare the weights it
    used with ``tinygemm_dequantize``; returns the largest error relative to max|W| (layout errors
    give ~1, bf16 rounding ~1e-3)."""
    k = tw.in_features
    device = module.packed.device
    idx = torch.linspace(0, k - 1, min(columns, k)).round().long().unique()
    eye = torch.zeros(len(idx), k, dtype=torch.bfloat16, device=device)
    eye[torch.arange(len(idx)), idx.to(device)] = 1
    seen = _int4_mm(eye, module.packed, tw.group_size, module.scales_and_zeros)[:, : tw.out_features].float().T
    expected = _packed_columns(tw, idx).to(device)  # only the columns checked, in packed order
    return float((seen - expected).abs().max() / expected.abs().max().clamp(min=1e-12))


# --- int8 weight-only ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Int8Weight:
    """An 8-bit grid as int8 codes c = q - 128 with w = scale * (c - zero), ``zero`` = z - 128.

    ``per_channel``: one grid per output row; then y = (x c^T) * scale - (sum_k x_k) * scale * zero
    runs on an int8 weight-only matmul (torchao ``Int8WeightOnlyConfig``'s PerRow layout, plus the
    zero-point term for asymmetric grids). Grouped grids are dequantized on every call (CUDA) or
    kept dequantized (CPU)."""

    codes: torch.Tensor       # int8 [N, K]
    scales: torch.Tensor      # float32 [N, n_groups]
    zeros: torch.Tensor       # float32 [N, n_groups], integer values in [-128, 127]
    g_idx: torch.Tensor       # int64 [K]

    @property
    def per_channel(self) -> bool:
        return self.scales.shape[1] == 1

    @property
    def symmetric(self) -> bool:
        return not bool(self.zeros.any())


def int8_weight_only(lw: LowBitWeight) -> Int8Weight:
    """An 8-bit ``lw`` as signed codes with the same grid (no re-quantization)."""
    if lw.kernel_kind != INT8_WEIGHT_ONLY:
        raise NotRepresentable(f"int8 weight-only holds 8-bit codes; this grid has {lw.bits} bits")
    codes = (lw.q ^ 128).view(torch.int8)  # q - 128 in two's complement: the top bit flipped (no int16 copies)
    return Int8Weight(codes.contiguous(), lw.scales.float().contiguous(), lw.zeros.float() - 128.0,
                      lw.g_idx.long().contiguous())


def _int8_mm(rows: torch.Tensor, codes: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """(rows codes^T) * scales: on CUDA the codes cast to the activations' dtype + cuBLAS; on the CPU
    ``aten._weight_int8pack_mm`` with bf16 activations. float32 out."""
    if rows.device.type == "cuda":
        return torch.mm(rows, codes.t().to(rows.dtype)).float() * scales
    return torch.ops.aten._weight_int8pack_mm(rows.to(torch.bfloat16), codes, scales.to(torch.bfloat16)).float()


class Int8WeightOnlyLinear(_WeightOnlyLinear):
    """y = x W^T + b from int8 codes: per-row grids on an int8 weight-only matmul (``_int8_mm``),
    grouped grids dequantized on every call, then a dense matmul (torchao's per-group path)."""

    def __init__(self, w: Int8Weight, bias: torch.Tensor | None, device: torch.device):
        super().__init__()
        self.out_features, self.in_features = w.codes.shape
        self.per_channel, self.symmetric = w.per_channel, w.symmetric
        self.register_buffer("codes", w.codes.to(device))
        # per-row scales in the dtype the kernel takes (bf16 on the CPU), converted once here, not per call
        row_dtype = torch.bfloat16 if device.type == "cpu" else torch.float32
        scales = w.scales[:, 0].to(device, row_dtype) if self.per_channel else w.scales.to(device)
        self.register_buffer("scales", scales)
        self.register_buffer("zero_terms", None if self.symmetric or not self.per_channel
                             else (w.scales[:, 0] * w.zeros[:, 0]).to(device))
        self.register_buffer("zeros", None if self.per_channel else w.zeros.to(device))
        self.register_buffer("g_idx", None if self.per_channel else w.g_idx.to(device))
        self.bias = None if bias is None else nn.Parameter(bias.detach().to(device), requires_grad=False)

    def _matmul(self, rows: torch.Tensor) -> torch.Tensor:
        if not self.per_channel:
            w = (self.codes.float() - self.zeros[:, self.g_idx]) * self.scales[:, self.g_idx]
            return torch.mm(rows, w.to(rows.dtype).t())
        y = _int8_mm(rows, self.codes, self.scales)
        if self.zero_terms is not None:
            y = y - rows.float().sum(dim=1, keepdim=True) * self.zero_terms
        return y.to(rows.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, per_channel={self.per_channel}, " \
               f"symmetric={self.symmetric}"


# --- choosing and swapping -----------------------------------------------------------------------


def weight_only_module(lw: LowBitWeight, bias: torch.Tensor | None, device: torch.device) -> nn.Module:
    """The module that runs ``lw`` on ``device``; ``NotRepresentable`` with the reason when none can."""
    if lw.kernel_kind == INT8_WEIGHT_ONLY:
        module = Int8WeightOnlyLinear(int8_weight_only(lw), bias, device)
    else:
        module = TinygemmLinear(tinygemm_weight(lw), bias, device)
    return with_input_scale(module, lw, device)


class InputScaledLinear(nn.Module):
    """``x / input_scale`` before a weight-only layer whose codes hold W * input_scale (AWQ's scales
    where they could not be folded into the previous op): one elementwise multiply per call."""

    def __init__(self, inner: nn.Module, input_scale: torch.Tensor, device: torch.device):
        super().__init__()
        self.inner = inner
        self.register_buffer("inverse_scale", (1.0 / input_scale.float()).to(device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x * self.inverse_scale.to(x.dtype))


def with_input_scale(module: nn.Module, lw: LowBitWeight, device: torch.device) -> nn.Module:
    """``module`` (running ``lw``'s codes), preceded by ``lw``'s input scaling when it has one."""
    return module if lw.input_scale is None else InputScaledLinear(module, lw.input_scale, device)


def input_scale_kernel_note(layers: dict[str, LowBitWeight]) -> str:
    """The kernel string's mention of the per-input-channel scales that ``layers`` apply at run time."""
    scaled = sum(lw.input_scale is not None for lw in layers.values())
    return f"; {scaled} layer(s) multiply their input by a per-channel scale first" if scaled else ""


CPU_KERNELS = {INT4_WEIGHT_ONLY: "_weight_int4pack_mm_for_cpu", INT8_WEIGHT_ONLY: "_weight_int8pack_mm"}
"""torch's CPU weight-only kernel for codes of up to 4 bits and for 8-bit codes (newer torch builds)."""


def missing_cpu_kernel(bits: int) -> str | None:
    """Why this torch build has no CPU weight-only kernel for ``bits``-bit codes, or None."""
    op = CPU_KERNELS[weight_only_kind(bits)]
    return None if hasattr(torch.ops.aten, op) else f"torch {torch.__version__} has no aten.{op} (a newer torch has)"


def cpu_kernel_refusal(lw: LowBitWeight) -> str | None:
    """Why torch's CPU weight-only kernels cannot run ``lw`` as it is, or None when one can."""
    missing = missing_cpu_kernel(lw.bits)
    if missing:
        return missing
    if lw.kernel_kind == INT8_WEIGHT_ONLY:
        return None if lw.n_groups == 1 else (f"groups of {lw.group_size} columns: torch's CPU int8 weight-only "
                                               f"kernel takes one scale per output row (group_size=-1)")
    return tinygemm_refusal(lw)


def cpu_layer(name: str, lw: LowBitWeight, bias: torch.Tensor | None) -> nn.Module | None:
    """``make_layer`` of ``fill_lowbit`` for the torch-cpu runtime: the CPU kernel module that runs
    ``lw``, or None (the layer keeps its weight, dequantized) when no CPU kernel takes it."""
    return None if cpu_kernel_refusal(lw) else weight_only_module(lw, bias, torch.device("cpu"))


def cpu_dense_layers(packed: dict[str, LowBitWeight]) -> dict[str, str]:
    """The quantized layers no CPU kernel takes (they run dequantized weights), each with the reason."""
    return {name: why for name, lw in packed.items() if (why := cpu_kernel_refusal(lw)) is not None}


def cpu_kernel_summary(packed: dict[str, LowBitWeight], dense: dict[str, str]) -> tuple[str, list[str]]:
    """The kernel string and notes of a torch-cpu row holding ``packed``: which kernel runs the
    quantized layers, and which of them stay dense (``cpu_dense_layers``, dequantized at load) and why."""
    bits = sorted({lw.bits for lw in packed.values()})
    fp32 = f"torch fp32 dense (weights dequantized at load from packed int{'/'.join(map(str, bits))})"
    if len(dense) == len(packed):
        return fp32, [f"no CPU low-bit kernel takes these grids: {_first_reason(dense)}"]
    kinds = {lw.kernel_kind for name, lw in packed.items() if name not in dense}
    kernel = ("torch int8 weight-only (aten._weight_int8pack_mm)" if kinds == {INT8_WEIGHT_ONLY} else
              "torch int4 weight-only tinygemm (aten._weight_int4pack_mm_for_cpu)") + ", bf16 activations"
    kernel += input_scale_kernel_note({name: lw for name, lw in packed.items() if name not in dense})
    notes = ["the quantized layers cast their inputs to bf16 for the low-bit kernel (fp32 accumulation, "
             "fp32 outputs); the other ops run in fp32"]
    if any(lw.bits < 4 for lw in packed.values()):
        notes.append("2/3-bit codes run in 4-bit containers (no 2/3-bit CPU kernel): int4 memory traffic and speed")
    if dense:
        kernel += f"; {len(dense)} of {len(packed)} quantized layers dense fp32 (dequantized at load)"
        notes.append(f"kept dense, dequantized at load: {', '.join(dense)} ({_first_reason(dense)})")
    return kernel, notes


def _first_reason(refused: dict[str, str]) -> str:
    reasons = sorted(set(refused.values()))
    return reasons[0] + (f"; and {len(reasons) - 1} other reason(s)" if len(reasons) > 1 else "")
