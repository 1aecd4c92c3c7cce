"""``--export DIR``: each measured low-bit row of a Hugging Face model written as folders other tools load,
``DIR/<row>/gptq`` and ``DIR/<row>/compressed-tensors``; what was written (or why not) goes into the row."""
from pathlib import Path

from ..errors import Unsupported, UserError
from ..pipeline import artifact_stem
from ..results import Row
from ..tasks.hf import ModelBuilder, model_builder
from .compressed import export_compressed_tensors
from .folder import Exported
from .gptq import export_gptq

WRITERS = {"gptq": export_gptq, "compressed-tensors": export_compressed_tensors}


def export_row(row: Row, artifacts: Path, task, root: Path) -> None:
    """Write ``row``'s low-bit artifact (in ``artifacts``) in every format of WRITERS under ``root``;
    rows that are not ok, hold no low-bit layer or are not of a Hugging Face model are left alone."""
    artifact = artifact_stem(artifacts, row).with_suffix(".safetensors")
    builder = getattr(task, "build_model", None)
    if row.status != "ok" or not row.details.get("lowbit_sha256") or not artifact.exists() \
            or not isinstance(builder, ModelBuilder):
        return
    exported = {}
    for name, write in WRITERS.items():
        try:
            result = write(artifact, builder, root / artifact.stem / name)
        except Unsupported as e:
            row.notes.append(f"not exported as {name}: {e}")
            continue
        row.notes += result.notes
        exported[name] = {"folder": str(result.folder), **result.details}
    row.details["export"] = exported


def export_artifact(artifact: Path, model: str, kind: str, root: Path, formats: list[str]) -> dict[str, Exported]:
    """``quantbench export``: the artifact at ``artifact`` (of the Hugging Face ``model``, 'causal-lm' or
    'encoder') in each of ``formats`` (names in WRITERS), as ``root/<format>``."""
    if not artifact.is_file():
        raise UserError(f"artifact not found: {artifact}")
    unknown = [f for f in formats if f not in WRITERS]
    if unknown:
        raise UserError(f"unknown export format {unknown[0]!r}; choose from {', '.join(WRITERS)}")
    builder = model_builder(model, kind)
    try:
        return {name: WRITERS[name](artifact, builder, root / name) for name in formats}
    except Unsupported as e:
        raise UserError(f"{artifact} cannot be exported: {e}") from None
