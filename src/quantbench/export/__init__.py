"""Artifacts and evaluations other tools run: a row's low-bit integers as a Hugging Face GPTQ folder
(``gptq.py``: transformers, GPTQModel) or a compressed-tensors pack-quantized folder (``compressed.py``:
vLLM, llm-compressor), written for ``--export`` by ``rows.py``; lm-evaluation-harness on a row's loaded
model (``lm_eval.py``). See docs/export.md. Submodules are imported where used: ``lm_eval`` is read by
the lm task and imports nothing else of quantbench."""
