"""A Hugging Face model folder around a quantized model's tensors: ``config.json`` (the source model's
config plus a ``quantization_config``), safetensors with metadata ``format: "pt"`` (sharded with an
index when large), the source's tokenizer and generation config, and a README line saying what the
folder holds and what its loaders cannot take."""
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file

MAX_SHARD_BYTES = 4 * 2**30
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


@dataclass
class Exported:
    """A folder written for other tools, and what a row should say about it."""

    folder: Path
    notes: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)


def write_model_folder(folder: Path, tensors: dict[str, torch.Tensor], builder, quantization_config: dict,
                       readme: str, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[Path]:
    """Write ``tensors`` with the config of ``builder``'s model (a tasks.hf.ModelBuilder) and its
    ``quantization_config``, the source's tokenizer and generation config, and ``readme``; the weight files."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("model*.safetensors*"):
        old.unlink()
    files = write_shards(folder, tensors, max_shard_bytes)
    config = builder.config()
    config.dtype = torch.float32  # the dense tensors as the row measured them
    config.save_pretrained(folder)
    _add_to_json(folder / "config.json", {"quantization_config": quantization_config})
    builder.save_tokenizer_and_generation_config(folder)
    (folder / "README.md").write_text(readme)
    return files


def write_shards(folder: Path, tensors: dict[str, torch.Tensor], max_shard_bytes: int) -> list[Path]:
    """``model.safetensors``, or ``model-0000i-of-0000n.safetensors`` shards of at most ``max_shard_bytes``
    (a larger tensor alone) with ``model.safetensors.index.json``; metadata ``format: "pt"`` in each."""
    from huggingface_hub import split_torch_state_dict_into_shards

    split = split_torch_state_dict_into_shards(tensors, max_shard_size=max_shard_bytes)
    for name, keys in split.filename_to_tensors.items():
        save_file({k: tensors[k].contiguous() for k in keys}, str(folder / name), metadata={"format": "pt"})
    if split.is_sharded:
        index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                 "weight_map": split.tensor_to_filename}
        (folder / _WEIGHTS[1]).write_text(json.dumps(index, indent=2) + "\n")
    return [folder / name for name in split.filename_to_tensors]


def read_folder_tensors(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a folder written by ``write_shards``."""
    from safetensors.torch import load_file

    tensors = {}
    for path in sorted(folder.glob("model*.safetensors")):
        tensors.update(load_file(str(path)))
    return tensors


def _add_to_json(path: Path, entries: dict) -> None:
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **entries}, indent=2, sort_keys=True) + "\n")
