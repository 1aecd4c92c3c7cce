"""Causal language modelling: perplexity with the standard protocol (the GPTQ paper's):
the evaluation text is tokenized once and cut into non-overlapping segments of the model's
context length; perplexity = exp(total next-token NLL / tokens). Calibration segments are
random windows from a disjoint part of the corpus."""
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import UserError
from .base import SMALL_INSTANCES, TASKS, PretrainedTask, Quality, repeat_to
from .hf import display_name, load_tokenizer, model_builder, model_identity
from .text_corpus import read_text, text_sha256

@dataclass(kw_only=True)
class LMTask(PretrainedTask):
    eval_segments: torch.Tensor
    calib_segments: torch.Tensor
    latency_tokens: int = 128
    seed: int = 0
    tokenizer: object = None
    lm_eval_tasks: str | None = None
    lm_eval_limit: int = 0
    identity: dict = field(default_factory=dict)
    model_output = "logits"

    @property
    def example_input(self) -> dict:
        return {"input_ids": self.eval_segments[:1]}

    def calibration_inputs(self, n_samples: int, batch_size: int = 8) -> list[dict]:
        segs = self.calib_segments[:n_samples]
        return [{"input_ids": b} for b in segs.split(batch_size)]

    def latency_input(self, batch_size: int) -> dict:
        """A prefill of ``latency_tokens`` tokens per sequence, ``batch_size`` sequences."""
        return {"input_ids": repeat_to(self.eval_segments[:, : self.latency_tokens], batch_size)}

    def generation_prompt(self, batch_size: int, tokens: int) -> torch.Tensor:
        """``batch_size`` prompts of ``tokens`` tokens for prefill/decode speed: consecutive stretches
        of the evaluation text (repeated when it is shorter), never random ids."""
        flat = self.eval_segments.reshape(-1)
        needed = batch_size * tokens
        return flat.repeat(-(-needed // len(flat)))[:needed].view(batch_size, tokens)

    def reference(self, model: nn.Module) -> torch.Tensor:
        with torch.inference_mode():
            return torch.stack([model(input_ids=s[None]).logits[0, :-1].argmax(-1) for s in self.eval_segments])

    def evaluate(self, run, reference: torch.Tensor) -> Quality:
        nll, top1 = [], []
        for seg in self.eval_segments:
            logits = run({"input_ids": seg[None]}).logits[0, :-1].float()
            nll.append(nn.functional.cross_entropy(logits, seg[1:], reduction="sum").item())
            top1.append(logits.argmax(-1))
        tokens_per_segment = self.eval_segments.shape[1] - 1
        ppl = math.exp(sum(nll) / (len(nll) * tokens_per_segment))
        agree = (torch.stack(top1) == reference).float().mean().item()
        extra = {"eval_tokens": len(nll) * tokens_per_segment, "eval_batch_size": 1}
        if self.lm_eval_tasks:
            extra["lm_eval"] = self.run_lm_eval(run)
        return Quality("perplexity", ppl, bootstrap_perplexity_ci(nll, tokens_per_segment, self.seed), False,
                       len(nll), agree, extra=extra)

    def run_lm_eval(self, run) -> dict:
        """lm-eval's ``lm_eval_tasks`` on the runner's own model (the one this row is measured on), or why not."""
        from ..export.lm_eval import run_lm_eval

        model = getattr(run, "module", None)
        if not hasattr(model, "config") or not callable(getattr(model, "generate", None)):
            return {"_not_run": "this row's runtime runs no transformers model that lm-eval's HFLM can wrap"}
        return run_lm_eval(model, self.tokenizer, self.lm_eval_tasks, self.lm_eval_limit)


def bootstrap_perplexity_ci(segment_nll: list[float], tokens: int, seed: int, draws: int = 1000) -> list[float]:
    """95% percentile-bootstrap interval of perplexity, resampling whole segments."""
    values = torch.tensor(segment_nll, dtype=torch.float64)
    if len(values) < 2:
        return None
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(values), (draws, len(values)), generator=gen)
    ppl = torch.exp(values[idx].mean(1) / tokens)
    return [torch.quantile(ppl, 0.025).item(), torch.quantile(ppl, 0.975).item()]


def segments(tokens: torch.Tensor, length: int) -> torch.Tensor:
    """Non-overlapping windows of ``length`` tokens (the remainder is dropped)."""
    n = len(tokens) // length
    return tokens[: n * length].view(n, length)


def random_windows(tokens: torch.Tensor, length: int, count: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(tokens) - length, (count,), generator=gen)
    return torch.stack([tokens[s: s + length] for s in starts.tolist()])


@TASKS.register("lm")
def lm_task(model: str | None = None, corpus: str = "stdlib-docs", seq_len: int = 0, eval_samples: int = 0,
            seed: int = 0, calib_max: int = 128, lm_eval_tasks: str | None = None, lm_eval_limit: int = 0,
            **_) -> LMTask:
    if not model:
        raise UserError("the lm task needs --model (a local folder or hub name of a causal LM)")
    if lm_eval_tasks:
        from ..export.lm_eval import task_names

        task_names(lm_eval_tasks)  # a missing task file fails here, not in every row
    build = model_builder(model, "causal-lm")
    fp32 = build()
    context = getattr(fp32.config, "max_position_embeddings", None) or getattr(fp32.config, "n_positions", 2048)
    length = min(seq_len or context, context)
    tokenizer, text = load_tokenizer(model), read_text(corpus)
    ids = tokenizer(text, return_tensors="pt")["input_ids"][0]
    calib_part, eval_part = ids[: len(ids) // 2], ids[len(ids) // 2:]
    eval_segs = segments(eval_part, length)
    if len(eval_segs) == 0 or len(calib_part) <= length:
        raise UserError(f"{corpus} has {len(ids)} tokens: too few for segments of {length}; use a longer corpus "
                        "or a smaller --seq-len")
    eval_segs = eval_segs[:eval_samples] if eval_samples else eval_segs
    return LMTask(
        name="lm", description=f"{display_name(model)} perplexity on {corpus} "
                               f"({len(eval_segs)} x {length} tokens; calibration from the other half)",
        build_model=build, eval_segments=eval_segs, seed=seed,
        calib_segments=random_windows(calib_part, length, calib_max, seed), pretrained=fp32, tokenizer=tokenizer,
        lm_eval_tasks=lm_eval_tasks, lm_eval_limit=lm_eval_limit,
        identity=model_identity(model, tokenizer) | {"corpus": corpus, "corpus_sha256": text_sha256(text)})


@SMALL_INSTANCES.register("lm")
def small_lm(folder) -> dict:
    """A tiny random Llama (2 blocks, hidden 64) on 4 segments of 32 tokens."""
    from .tiny import save_tiny_model

    return {"model": save_tiny_model(folder / "tiny-llama", "llama"), "seq_len": 32, "eval_samples": 4,
            "calib_max": 4}
