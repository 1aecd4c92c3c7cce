"""Bit packing of low-bit codes in the GPTQ checkpoint layout (what transformers / vLLM load).

Values are packed along dim 0 into int32 words as one little-endian bit stream: value j sits at
bits [j * bits, (j + 1) * bits) of the stream, word w holds stream bits [32 w, 32 w + 32), lowest
first. For 2, 4 and 8 bits that is 32 / bits whole values per word. For 3 bits, 32 values fill
3 words and values 10 and 21 straddle word boundaries, which is exactly the layout of the
reference ``Quant3Linear.pack`` (IST-DASLab/gptq ``quant.py``).

Checkpoint tensors (``to_gptq_tensors``):

- ``qweight`` int32 [ceil(in * bits / 32), out]: codes packed along the input dim;
- ``qzeros`` int32 [n_groups, ceil(out * bits / 32)]: zero points packed along the output dim;
  format v1 (the default, ``checkpoint_format="gptq"``) stores ``zero - 1`` and loaders add 1
  back; v2 (``"gptq_v2"``) stores the zero itself. v1 cannot express zero = 0 (asymmetric grid
  of a group with no negative weight): it is written as 2**bits - 1 (``(0 - 1) mod 2**bits``,
  so neighbouring values are not corrupted); ``from_gptq_tensors`` reads it back as 0, but
  other v1 loaders read it as 2**bits. ``count_v1_unrepresentable_zeros`` counts such groups.
- ``scales`` float16 [n_groups, out]: the artifact stores fp16 scales, so a LowBitWeight read
  back from it dequantizes with ``scales.half().float()`` of the original;
- ``g_idx`` int32 [in].
"""

from __future__ import annotations

import math

import torch

from .lowbit import LowBitWeight, check_bits, max_code

_WORD_BITS = 32
_CHECKPOINT_FORMATS = {"gptq": 1, "gptq_v2": 0}  # offset subtracted from zeros when stored


def pack_along_rows(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """int32 [ceil(K * bits / 32), N]: codes [K, N] packed along dim 0 (zero padding at the end)."""
    check_bits(bits)
    if codes.dim() != 2:
        raise ValueError(f"codes must be 2-D [K, N], got shape {tuple(codes.shape)}")
    values = codes.to(torch.int64)
    if values.numel() and (values.min() < 0 or values.max() > max_code(bits)):
        raise ValueError(f"codes must lie in [0, {max_code(bits)}] for {bits} bits")
    n_values, n_cols = values.shape
    per_period, words_per_period = _period(bits)
    n_periods = -(-n_values // per_period)
    padded = values.new_zeros(n_periods * per_period, n_cols)
    padded[:n_values] = values
    padded = padded.view(n_periods, per_period, n_cols)
    words = values.new_zeros(n_periods, words_per_period, n_cols)
    for j, (word, shift) in enumerate(_value_slots(bits)):
        words[:, word] |= (padded[:, j] << shift) & 0xFFFFFFFF
        if shift + bits > _WORD_BITS:
            words[:, word + 1] |= padded[:, j] >> (_WORD_BITS - shift)
    words = words.view(n_periods * words_per_period, n_cols)[: _n_words(n_values, bits)]
    return _uint32_to_int32(words)


def unpack_rows(packed: torch.Tensor, bits: int, K: int) -> torch.Tensor:
    """int64 codes [K, N] from words [ceil(K * bits / 32), N] made by ``pack_along_rows``."""
    check_bits(bits)
    n_words, n_cols = packed.shape
    if n_words != _n_words(K, bits):
        raise ValueError(f"{K} values of {bits} bits need {_n_words(K, bits)} words, got {n_words}")
    per_period, words_per_period = _period(bits)
    n_periods = -(-K // per_period)
    words = packed.new_zeros(n_periods * words_per_period, n_cols, dtype=torch.int64)
    words[:n_words] = packed.to(torch.int64) & 0xFFFFFFFF
    words = words.view(n_periods, words_per_period, n_cols)
    values = words.new_empty(n_periods, per_period, n_cols)
    mask = max_code(bits)
    for j, (word, shift) in enumerate(_value_slots(bits)):
        value = words[:, word] >> shift
        if shift + bits > _WORD_BITS:
            value = value | (words[:, word + 1] << (_WORD_BITS - shift))
        values[:, j] = value & mask
    return values.view(n_periods * per_period, n_cols)[:K]


def to_gptq_tensors(lw: LowBitWeight, checkpoint_format: str = "gptq") -> dict[str, torch.Tensor]:
    """The checkpoint tensors qweight, qzeros, scales, g_idx of ``lw`` (see the module doc). Two
    extensions the GPTQ format lacks: float zero points (HQQ's) are stored as ``zeros`` fp16
    [n_groups, out] in place of ``qzeros``; a per-input-channel scale (AWQ's, unfolded) as
    ``input_scale`` fp32 [in]."""
    scales = lw.scales.float().T.contiguous().half()
    if not bool(torch.isfinite(scales).all()):
        raise ValueError("a scale overflows float16; the GPTQ format stores fp16 scales")
    tensors = {"qweight": pack_along_rows(lw.q.T, lw.bits), "scales": scales,
               "g_idx": lw.g_idx.to(torch.int32).contiguous()}
    if lw.float_zeros:
        tensors["zeros"] = lw.zeros.float().T.contiguous().half()
    else:
        stored_zeros = (_integer_zeros(lw) - _zero_offset(checkpoint_format)) & max_code(lw.bits)
        tensors["qzeros"] = pack_along_rows(stored_zeros, lw.bits).T.contiguous()
    if lw.input_scale is not None:
        tensors["input_scale"] = lw.input_scale.float().contiguous()
    return tensors


def from_gptq_tensors(
    tensors: dict[str, torch.Tensor],
    bits: int,
    group_size: int,
    in_features: int,
    out_features: int,
    checkpoint_format: str = "gptq",
) -> LowBitWeight:
    """The LowBitWeight stored in GPTQ checkpoint tensors; scales come back as fp16 values."""
    q = unpack_rows(tensors["qweight"], bits, in_features).T.to(torch.uint8).contiguous()
    if "zeros" in tensors:
        zeros = tensors["zeros"].float().T.contiguous()
    else:
        stored_zeros = unpack_rows(tensors["qzeros"].T, bits, out_features)
        zeros = ((stored_zeros + _zero_offset(checkpoint_format)) & max_code(bits)).float()
    scales = tensors["scales"].float().T.contiguous()
    g_idx = tensors["g_idx"].to(torch.int32)
    input_scale = tensors.get("input_scale")
    return LowBitWeight(q, scales, zeros, g_idx, bits, group_size,
                        None if input_scale is None else input_scale.float())


def count_v1_unrepresentable_zeros(lw: LowBitWeight) -> int:
    """How many (row, group) zero points are 0, which GPTQ format v1 cannot express."""
    return int((_integer_zeros(lw) == 0).sum())


def _integer_zeros(lw: LowBitWeight) -> torch.Tensor:
    """int64 zeros [out, n_groups]; raises if a zero is not an integer in the code range."""
    if lw.zeros.is_floating_point() and not bool((lw.zeros == lw.zeros.round()).all()):
        raise ValueError("zero points must be integers to be packed")
    zeros = lw.zeros.to(torch.int64)
    if zeros.numel() and (zeros.min() < 0 or zeros.max() > max_code(lw.bits)):
        raise ValueError(f"zero points must lie in [0, {max_code(lw.bits)}] for {lw.bits} bits")
    return zeros


def _value_slots(bits: int) -> list[tuple[int, int]]:
    """(word, shift) of each value of one period: value j starts at stream bit j * bits."""
    per_period, _ = _period(bits)
    return [divmod(j * bits, _WORD_BITS) for j in range(per_period)]


def _period(bits: int) -> tuple[int, int]:
    """(values, words) after which the bit layout repeats: (8, 1) for 4 bits, (32, 3) for 3."""
    common = math.gcd(bits, _WORD_BITS)
    return _WORD_BITS // common, bits // common


def _n_words(n_values: int, bits: int) -> int:
    return -(-n_values * bits // _WORD_BITS)


def _uint32_to_int32(words: torch.Tensor) -> torch.Tensor:
    """int32 with the same 32 bits as int64 words in [0, 2**32)."""
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def _zero_offset(checkpoint_format: str) -> int:
    if checkpoint_format not in _CHECKPOINT_FORMATS:
        known = sorted(_CHECKPOINT_FORMATS)
        raise ValueError(f"checkpoint_format must be one of {known}, got {checkpoint_format!r}")
    return _CHECKPOINT_FORMATS[checkpoint_format]
