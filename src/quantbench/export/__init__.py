"""Artifacts other tools load: a row's low-bit integers as a Hugging Face GPTQ folder (transformers,
GPTQModel) or a compressed-tensors pack-quantized folder (vLLM, llm-compressor); see docs/export.md."""
from .compressed import export_compressed_tensors
from .folder import Exported
from .gptq import export_gptq
from .rows import WRITERS, export_artifact, export_row

__all__ = ["WRITERS", "Exported", "export_artifact", "export_compressed_tensors", "export_gptq", "export_row"]
