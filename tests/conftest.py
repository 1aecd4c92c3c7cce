import pytest

from quantbench.spec import CompareSpec
from quantbench.tasks.hf import minilm_path


@pytest.fixture
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "model-cache")


@pytest.fixture
def small_spec(cache_dir):
    """A fast comparison: a narrow MLP on digits, short timing, no memory probe."""
    return CompareSpec(hidden=(64,), batch_sizes=(1, 8), memory=False, progress=False, cache_dir=cache_dir)


def _save_tiny_model(folder, build_model):
    """A randomly initialised transformers model (seed 0) with MiniLM's tokenizer (a real WordPiece
    vocabulary), saved to ``folder``; ``build_model(transformers, vocab_size)`` makes the model."""
    import torch

    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path())
    torch.manual_seed(0)
    build_model(transformers, tokenizer.vocab_size).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """A 2-layer Llama, hidden size 64."""
    def llama(transformers, vocab_size):
        return transformers.LlamaForCausalLM(transformers.LlamaConfig(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, max_position_embeddings=64))

    return _save_tiny_model(tmp_path_factory.mktemp("tiny-llama"), llama)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """A 2-layer GPT-2 (Conv1D layers, weights stored [in, out]; all-zero biases), hidden size 64."""
    def gpt2(transformers, vocab_size):
        return transformers.GPT2LMHeadModel(transformers.GPT2Config(
            vocab_size=vocab_size, n_embd=64, n_layer=2, n_head=4, n_positions=64, bos_token_id=0, eos_token_id=0))

    return _save_tiny_model(tmp_path_factory.mktemp("tiny-gpt2"), gpt2)


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    """A 2-layer BERT encoder (with its pooler), hidden size 64."""
    def bert(transformers, vocab_size):
        return transformers.BertModel(transformers.BertConfig(
            vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128))

    return _save_tiny_model(tmp_path_factory.mktemp("tiny-bert"), bert)
