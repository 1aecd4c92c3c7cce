"""Skeletons (a model's architecture with parameters on "meta") and ``place_state``, which fills them."""
import pytest
import torch
from torch import nn

from quantbench.tasks.skeleton import build_skeleton, place_state, replace_module


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight
        self.norm = nn.LayerNorm(4)
        self.register_buffer("positions", torch.arange(4.0), persistent=False)


def _state(source: nn.Module) -> dict:
    return {k: v for k, v in source.state_dict().items() if k != "head.weight"}  # as safetensors saves ties


def test_place_state_fills_a_skeleton_keeps_ties_and_casts_plain_floats():
    skeleton, source = build_skeleton(Tied), Tied()
    assert skeleton.embed.weight.is_meta and not skeleton.positions.is_meta
    place_state(skeleton, _state(source), "cpu", torch.bfloat16)
    assert skeleton.head.weight is skeleton.embed.weight and skeleton.head.weight.dtype == torch.bfloat16
    assert torch.equal(skeleton.embed.weight.float(), source.embed.weight.detach().bfloat16().float())
    assert skeleton.positions.dtype == torch.bfloat16 and not skeleton.embed.weight.requires_grad
    x, reference = torch.tensor([1, 2]), source.bfloat16()
    assert torch.equal(skeleton.head(skeleton.embed(x)), reference.head(reference.embed(x)).detach())


def test_place_state_refuses_a_missing_or_unknown_tensor_even_into_a_real_model():
    source = Tied()
    with pytest.raises(ValueError, match="lacks tensors of the model: norm.bias"):
        place_state(build_skeleton(Tied), {k: v for k, v in _state(source).items() if k != "norm.bias"})
    with pytest.raises(ValueError, match="lacks tensors of the model: norm.bias"):
        place_state(Tied(), {k: v for k, v in _state(source).items() if k != "norm.bias"})
    with pytest.raises(ValueError, match="holds extra.weight, which the model does not have"):
        place_state(Tied(), _state(source) | {"extra.weight": torch.zeros(1)})


def test_place_state_leaves_the_modules_it_is_told_to_skip_for_their_replacement():
    skeleton, source = build_skeleton(Tied), Tied()
    state = {k: v for k, v in _state(source).items() if not k.startswith("norm.")}
    place_state(skeleton, state, skip={"norm"})
    replace_module(skeleton, "norm", nn.Identity())
    assert isinstance(skeleton.norm, nn.Identity) and not any(t.is_meta for t in skeleton.state_dict().values())


def test_place_state_refuses_a_tensor_of_another_shape_and_a_meta_buffer_it_cannot_fill():
    state = _state(Tied())
    with pytest.raises(ValueError, match=r"the artifact's norm.weight is \(5,\), the model's is \(4,\)"):
        place_state(build_skeleton(Tied), state | {"norm.weight": torch.ones(5)})
    with torch.device("meta"):
        all_meta = Tied()
    with pytest.raises(ValueError, match="buffer positions is on 'meta'"):
        place_state(all_meta, state)
