"""Sentence embeddings: how close the quantized model's embeddings stay to fp32's (cosine),
and whether nearest-neighbour retrieval still finds the same sentences."""
import math
import random
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .base import SMALL_INSTANCES, TASKS, PretrainedTask, Quality, repeat_to
from .hf import display_name, load_tokenizer, minilm_path, model_builder, model_identity
from .text_corpus import stdlib_sentences, text_sha256

@dataclass(kw_only=True)
class EmbeddingTask(PretrainedTask):
    tokenizer: object
    calib_sentences: list[str]
    eval_sentences: list[str]
    max_length: int = 128
    batch_size: int = 64
    identity: dict = field(default_factory=dict)
    model_output = "last_hidden_state"
    _latency_batches: dict[int, dict] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def example_input(self) -> dict:
        return self._tokenize(self.eval_sentences[:1])

    def calibration_inputs(self, n_samples: int, batch_size: int = 32) -> list[dict]:
        chosen = self.calib_sentences[:n_samples]
        return [self._tokenize(chosen[i:i + batch_size]) for i in range(0, len(chosen), batch_size)]

    def latency_input(self, batch_size: int) -> dict:
        """Tokenized once per batch size (every row times it, and the memory probe asks again)."""
        if batch_size not in self._latency_batches:
            self._latency_batches[batch_size] = self._tokenize(repeat_to(self.eval_sentences, batch_size))
        return dict(self._latency_batches[batch_size])

    def reference(self, model: nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return self._embed(lambda batch: model(**batch))

    def evaluate(self, run, reference: torch.Tensor) -> Quality:
        emb = self._embed(run)
        cos = (emb * reference).sum(1)
        n = len(cos)
        half = 1.959964 * cos.std().item() / math.sqrt(n) if n > 1 else float("nan")
        mean = cos.mean().item()
        return Quality("cosine", mean, [mean - half, mean + half], True, n, nearest_neighbour_agreement(emb, reference),
                       extra={"min_cosine": cos.min().item(), "eval_batch_size": self.batch_size})

    def _tokenize(self, sentences: list[str]) -> dict:
        return dict(self.tokenizer(sentences, padding=True, truncation=True, max_length=self.max_length,
                                   return_tensors="pt"))

    @cached_property
    def _eval_batches(self) -> tuple[list[int], list[dict]]:
        """The evaluation sentences tokenized once for every row: their order by length, and
        batches in that order (similar lengths, less padding)."""
        order = sorted(range(len(self.eval_sentences)), key=lambda i: len(self.eval_sentences[i]))
        batches = [self._tokenize([self.eval_sentences[i] for i in order[start:start + self.batch_size]])
                   for start in range(0, len(order), self.batch_size)]
        return order, batches

    def _embed(self, run) -> torch.Tensor:
        """Mean-pooled, L2-normalized last hidden states (the sentence-transformers recipe),
        returned in the sentences' order."""
        order, batches = self._eval_batches
        chunks = []
        for batch in batches:
            hidden = run(batch).last_hidden_state.float()  # bf16 rows: pooled and compared in float32
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            chunks.append(nn.functional.normalize(pooled, dim=-1))
        embeddings = torch.empty_like(torch.cat(chunks))
        embeddings[torch.tensor(order)] = torch.cat(chunks)
        return embeddings


def nearest_neighbour_agreement(emb: torch.Tensor, reference: torch.Tensor) -> float:
    """Fraction of sentences whose nearest other sentence is the same under both embeddings."""
    def neighbours(e):
        sim = e @ e.T
        sim.fill_diagonal_(-float("inf"))
        return sim.argmax(1)

    return (neighbours(emb) == neighbours(reference)).float().mean().item()


def read_sentences(source: str) -> list[str]:
    if source == "stdlib-docs":
        return stdlib_sentences()
    path = Path(source)
    if not path.is_file():
        raise UserError(f"sentences file not found: {source} (one sentence per line, or 'stdlib-docs')")
    sentences = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(sentences) < 20:
        raise UserError(f"{source} has {len(sentences)} sentences; need at least 20")
    return sentences


def embedding_task(model: str, corpus: str = "stdlib-docs", seed: int = 0, calib_max: int = 256,
                   eval_samples: int = 0, name: str = "embedding", model_name: str | None = None,
                   **_) -> EmbeddingTask:
    sentences = read_sentences(corpus)
    corpus_sha256 = text_sha256("\n".join(sentences))
    random.Random(seed).shuffle(sentences)
    calib = sentences[:min(calib_max, len(sentences) // 4)]
    evaluation = sentences[len(calib):]
    evaluation = evaluation[:eval_samples] if eval_samples else evaluation
    build, tokenizer = model_builder(model, "encoder"), load_tokenizer(model)
    return EmbeddingTask(
        name=name, description=f"{model_name or display_name(model)} embeddings on {corpus} "
                               f"({len(evaluation)} eval / {len(calib)} calibration sentences)",
        build_model=build, tokenizer=tokenizer, calib_sentences=calib, eval_sentences=evaluation, pretrained=build(),
        identity=model_identity(model, tokenizer) | {"corpus": corpus, "corpus_sha256": corpus_sha256})


@TASKS.register("embedding")
def embedding_from_options(model: str | None = None, **options) -> EmbeddingTask:
    if not model:
        raise UserError("the embedding task needs --model (a local folder or hub name of an encoder)")
    return embedding_task(model, **options)


@TASKS.register("minilm")
def minilm_task(corpus: str = "stdlib-docs", **options) -> EmbeddingTask:
    """The built-in transformer demo: real pretrained all-MiniLM-L6-v2, fully offline."""
    options.pop("model", None)
    return embedding_task(minilm_path(), corpus=corpus, name="minilm", model_name="all-MiniLM-L6-v2", **options)


@SMALL_INSTANCES.register("embedding")
def small_embedding(folder) -> dict:
    """A tiny random BERT (2 blocks, hidden 64) on 32 sentences."""
    from .tiny import save_tiny_model

    return {"model": save_tiny_model(folder / "tiny-bert", "bert"), "eval_samples": 32, "calib_max": 16}


SMALL_INSTANCES.register("minilm")(lambda folder: {"eval_samples": 32, "calib_max": 16})
