"""The low-bit artifact reports what its file holds: the fingerprint of the integers read back from
it, and byte counts from its safetensors header."""
import json

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from quantbench.formats import lowbit_file as artifact
from quantbench.methods.lowbit.api import RTNConfig, _rtn_layer
from quantbench.formats.lowbit_file import artifact_holds, save_lowbit

RTN = RTNConfig(bits=4, group_size=16)


@pytest.fixture
def saved(tmp_path):
    """(path, packed, model, size): a 64 -> 32 -> 10 MLP saved with its first layer as 4-bit codes."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    packed = {"0": _rtn_layer(RTN, "0", model[0].weight.detach(), None)[0]}
    path = tmp_path / "art.safetensors"
    return path, packed, model, save_lowbit(model, packed, RTN.format_config(), path)


def header(path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return n, json.loads(f.read(n))


def test_the_check_reads_the_file(saved):
    """Changing one code in the file makes it no longer hold the quantized layers."""
    path, packed, _, _ = saved
    assert artifact_holds(path, packed)
    n, entries = header(path)
    start = 8 + n + entries["0.qweight"]["data_offsets"][0]
    data = bytearray(path.read_bytes())
    data[start] ^= 0x0F  # the low nibble: one 4-bit code
    path.write_bytes(bytes(data))
    assert not artifact_holds(path, packed)


def test_saving_refuses_a_file_without_the_quantized_layers(saved, monkeypatch):
    path, packed, model, _ = saved

    def writes_other_codes(tensors, filename, metadata):
        save_file({k: v ^ 1 if k == "0.qweight" else v for k, v in tensors.items()}, filename, metadata)

    monkeypatch.setattr(artifact, "save_file", writes_other_codes)
    with pytest.raises(RuntimeError, match="did not hold the quantized layers .* so it was deleted"):
        save_lowbit(model, packed, RTN.format_config(), path)
    assert not path.exists()


def test_saving_refuses_scales_the_file_cannot_hold_before_writing(saved):
    path, packed, model, _ = saved
    path.unlink()
    lw = packed["0"]
    exact_in_fp32_only = {"0": type(lw)(lw.q, lw.scales + 1e-7, lw.zeros, lw.g_idx, lw.bits, lw.group_size)}
    with pytest.raises(ValueError, match="scales or float zero points of 0 are not fp16 values"):
        save_lowbit(model, exact_in_fp32_only, RTN.format_config(), path)
    assert not path.exists()


def test_the_size_breakdown_is_read_from_the_file(saved, monkeypatch):
    """A file that differs from the tensors in memory (fp32 scales, one more tensor): the breakdown
    counts the file's bytes, and its header is exactly what is left."""
    path, packed, model, in_memory = saved

    def writes_more(tensors, filename, metadata):
        wider = {k: v.float() if k == "0.scales" else v for k, v in tensors.items()}
        save_file(wider | {"stowaway": torch.zeros(1000)}, filename, metadata)

    monkeypatch.setattr(artifact, "save_file", writes_more)
    size = save_lowbit(model, packed, RTN.format_config(), path)
    scales = packed["0"].scales.numel()
    assert size.packed_bytes == in_memory.packed_bytes + 2 * scales
    assert size.other_bytes == in_memory.other_bytes + 4000
    assert size.metadata_bytes == 8 + header(path)[0]
    assert size.theoretical_bytes == in_memory.theoretical_bytes
