"""Where the transformer blocks of a model are, and the "true sequential" order inside a block.

One table of tiny per-family adapters feeds the one generic driver (``driver.py``); a model
whose blocks are not found is treated as a single block (plain MLPs and CNNs).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from torch import nn

# Layers inside a block, by name relative to the block, in the order GPTQ's "true sequential"
# mode quantizes them: attention inputs, attention output, MLP inputs, MLP output. A name
# takes the first group that matches; layers matching none come last, in module order.
SEQUENTIAL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("*q_proj", "*k_proj", "*v_proj", "*qkv_proj", "*attn.c_attn", "*query_key_value",
     "*attention.self.query", "*attention.self.key", "*attention.self.value"),
    ("*o_proj", "*out_proj", "*attn.c_proj", "*attention.output.dense", "*self_attention.dense",
     "*attention.dense"),
    ("*up_proj", "*gate_proj", "*gate_up_proj", "*fc1", "*mlp.c_fc", "*intermediate.dense",
     "*dense_h_to_4h", "*w1", "*w3"),
    ("*down_proj", "*fc2", "*mlp.c_proj", "*output.dense", "*dense_4h_to_h", "*w2"),
)


@dataclass(frozen=True)
class BlockAdapter:
    """A model family's blocks: the dotted path of their ModuleList and the in-block order."""

    blocks_path: str
    families: str
    sequential_groups: tuple[tuple[str, ...], ...] = SEQUENTIAL_GROUPS


ADAPTERS: tuple[BlockAdapter, ...] = (
    BlockAdapter("model.layers", "Llama, Qwen2, Mistral, Gemma, Phi-3 (*ForCausalLM)"),
    BlockAdapter("layers", "LlamaModel, Qwen2Model, MistralModel (no head)"),
    BlockAdapter("model.decoder.layers", "OPT, BART-like decoders (*ForCausalLM)"),
    BlockAdapter("decoder.layers", "OPTModel (no head)"),
    BlockAdapter("transformer.h", "GPT-2, GPT-J, BLOOM, Falcon (*LMHeadModel)"),
    BlockAdapter("h", "GPT2Model (no head)"),
    BlockAdapter("gpt_neox.layers", "GPT-NeoX, Pythia"),
    BlockAdapter("bert.encoder.layer", "BERT with a task head"),
    BlockAdapter("roberta.encoder.layer", "RoBERTa with a task head"),
    BlockAdapter("encoder.layer", "BertModel, RobertaModel (no head)"),
    BlockAdapter("distilbert.transformer.layer", "DistilBERT with a task head"),
    BlockAdapter("transformer.layer", "DistilBertModel (no head)"),
)


def find_adapter(model: nn.Module) -> BlockAdapter | None:
    """The first adapter whose ``blocks_path`` leads to a non-empty ModuleList, or None."""
    for adapter in ADAPTERS:
        if _module_list_at(model, adapter.blocks_path) is not None:
            return adapter
    return None


def find_blocks(model: nn.Module) -> tuple[nn.ModuleList, str] | None:
    """(blocks, their dotted path such as "model.layers"), or None for a plain model."""
    adapter = find_adapter(model)
    if adapter is None:
        return None
    return _module_list_at(model, adapter.blocks_path), adapter.blocks_path


def split_sequential_groups(
    names: list[str], groups: tuple[tuple[str, ...], ...] = SEQUENTIAL_GROUPS
) -> list[list[str]]:
    """Block-relative layer ``names`` split into the true-sequential groups (empty ones dropped)."""
    buckets: list[list[str]] = [[] for _ in range(len(groups) + 1)]
    for name in names:
        index = next((i for i, pats in enumerate(groups) if _matches(name, pats)), len(groups))
        buckets[index].append(name)
    return [bucket for bucket in buckets if bucket]


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def _module_list_at(model: nn.Module, path: str) -> nn.ModuleList | None:
    module = model
    for part in path.split("."):
        module = getattr(module, part, None)
        if not isinstance(module, nn.Module):
            return None
    return module if isinstance(module, nn.ModuleList) and len(module) > 0 else None
