"""Prefill and decode speed of a causal LM, as llama.cpp's llama-bench reports them (pp512, tg128).

One repetition is one greedy generation written out as model calls: a prefill forward over a prompt
of P tokens for the batch, the first token picked from its last logits (the two together: time to
first token), then D decode steps, each feeding one token per sequence with the model's KV cache
(transformers' ``DynamicCache``) and picking the next one; no early stop at EOS. Repetitions follow a
warm-up, under the run's threads, watched by the noise sampler, until a minimum count and a time
budget. The decode bound of a step: the weights it reads once plus the KV cache at the generation's
mid-point, at the host's measured read bandwidth."""
import inspect
import math
import statistics
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from .bounds import bound_ms, sync_device
from .latency import Latency, summarize
from .noise import instability

NOT_MEASURED = "not measured"
MIN_FULL_SPEED = 2  # generations the host's loops read full speed beside, for an entry to be stable
WAIT_SECONDS = 5.0  # at most, for the host's loops to read full speed before the generations (as a latency visit)


@dataclass
class GreedyRun:
    """One timed generation: seconds of the prefill forward, of picking the first token, of each
    decode step (forward + pick), the decode tokens, and the KV cache's bytes per cached position."""

    prefill_s: float
    pick_s: float
    step_s: list[float]
    tokens: torch.Tensor  # (batch, decode steps)
    cache_bytes_per_position: float
    readings: tuple = ()  # the host's loops read just before and just after it (``HostSpeed.read``), if read

    @property
    def decode_s(self) -> float:
        return sum(self.step_s)


@dataclass
class GenerationBudget:
    """How long one batch size is measured: at least ``min_repeats`` generations and ``min_seconds``,
    then until the median decode time moves less than ``rel_tol`` between generations; no generation
    starts after ``max_seconds`` (once ``min_repeats`` are done), nor after ``max_repeats``."""

    min_repeats: int = 2
    min_seconds: float = 0.25
    max_seconds: float = 10.0
    max_repeats: int = 50
    rel_tol: float = 0.02
    warmup_decode_tokens: int = 2

    def __post_init__(self):
        if self.min_repeats < 2:
            raise ValueError(f"min_repeats must be at least 2 (a distribution needs two samples), got {self.min_repeats}")


def decode_refusal(run) -> str | None:
    """Why ``run`` cannot decode with a KV cache (None when it can): it must expose an eager
    transformers model (``run.module``, with ``.config``) whose forward takes a KV cache."""
    module = getattr(run, "module", None)
    if module is None:
        return ("this runtime runs no eager PyTorch module (e.g. an ONNX Runtime graph exported without past "
                "key/values), so there is no KV cache to decode with")
    if isinstance(module, torch.jit.ScriptModule):
        return "frozen TorchScript takes no KV cache (past_key_values)"
    if not isinstance(module, nn.Module) or not hasattr(module, "config"):
        return "its module is not a transformers model (no .config), so it has no KV cache interface"
    if cache_argument(module) is None:
        return f"{type(module).__name__}.forward takes no KV cache (neither cache nor past_key_values)"
    return None


def cache_argument(module: nn.Module) -> str | None:
    """The name under which ``module``'s forward takes its KV cache: ``cache`` (transformers 5.2x
    renamed it) or ``past_key_values``; None when it takes none."""
    parameters = inspect.signature(module.forward).parameters
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def context_tokens(module: nn.Module) -> int | None:
    """Positions the model can attend over, from its config (None when it does not say)."""
    config = module.config
    return next((getattr(config, k) for k in ("max_position_embeddings", "n_positions", "n_ctx")
                 if getattr(config, k, None)), None)


def prompt_length(module: nn.Module, prompt_tokens: int, decode_tokens: int) -> int:
    """``prompt_tokens`` capped so that the prompt and the decode steps fit the model's context."""
    context = context_tokens(module)
    return prompt_tokens if context is None else min(prompt_tokens, context - decode_tokens)


def generate_greedy(module: nn.Module, prompt: torch.Tensor, decode_tokens: int, device: str = "cpu") -> GreedyRun:
    """Prefill ``prompt`` (batch, P), pick the first token, then ``decode_tokens`` decode steps of one
    token per sequence with a ``DynamicCache``; greedy, no stop at EOS. Each step is timed."""
    from transformers import DynamicCache

    kv = DynamicCache()
    options = {cache_argument(module): kv} | _last_logits_only(module)
    with torch.inference_mode():
        start = time.perf_counter()
        logits = _forward(module, prompt, options)
        prefilled = time.perf_counter()
        token = _pick(logits, device)
        picked = time.perf_counter()
        steps, tokens = [], []
        for _ in range(decode_tokens):
            begin = time.perf_counter()
            token = _pick(_forward(module, token, options), device)
            steps.append(time.perf_counter() - begin)
            tokens.append(token)
    per_position = cache_bytes(kv) / max(kv.get_seq_length(), 1)
    decoded = torch.cat(tokens, dim=1) if tokens else prompt[:, :0]
    return GreedyRun(prefilled - start, picked - prefilled, steps, decoded, per_position)


def _last_logits_only(module: nn.Module) -> dict:
    """The forward's option to compute the head for the last position only (``logits_to_keep``), as
    generate() does: a prefill's logits for every position are batch x P x vocab floats (0.5 GB at batch
    8, 512 tokens, a 30k vocabulary) that a generation never reads."""
    return {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(module.forward).parameters else {}


def _forward(module: nn.Module, input_ids: torch.Tensor, options: dict) -> torch.Tensor:
    """The last position's logits of one forward that reads and extends the KV cache (``options``: the
    cache under the name the forward takes it, and ``_last_logits_only``)."""
    out = module(input_ids=input_ids, use_cache=True, **options)
    return out.logits[:, -1]


def _pick(logits: torch.Tensor, device: str) -> torch.Tensor:
    """The greedy next token of each sequence, (batch, 1), finished on ``device``."""
    token = logits.argmax(-1, keepdim=True)
    sync_device(device)
    return token


def cache_bytes(cache) -> int:
    """Bytes of the keys and values a transformers cache holds."""
    layers = getattr(cache, "layers", None)
    if layers is not None:
        tensors = [t for layer in layers for t in (getattr(layer, "keys", None), getattr(layer, "values", None))]
    else:  # older transformers: key_cache / value_cache lists
        tensors = [*getattr(cache, "key_cache", []), *getattr(cache, "value_cache", [])]
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def time_generations(module: nn.Module, prompt: torch.Tensor, decode_tokens: int, budget: GenerationBudget,
                     device: str = "cpu", speed=None) -> list[GreedyRun]:
    """A short warm-up generation, then repetitions as ``budget`` says; with the run's ``speed``
    (``HostSpeed``), after waiting for the host's full speed, each repetition between two readings of its
    loops, and no stop before two repetitions at full speed (``at_full_speed``) but at the budget's limits."""
    generate_greedy(module, prompt, min(decode_tokens, budget.warmup_decode_tokens), device)
    if speed is not None:
        speed.wait_for_full_speed(WAIT_SECONDS)
    start, runs, previous = time.perf_counter(), [], None
    before = speed.read(between_calls=False) if speed is not None else None
    while True:
        runs.append(generate_greedy(module, prompt, decode_tokens, device))
        if speed is not None:
            after = speed.read()
            runs[-1].readings, before = (before, after), after
        elapsed = time.perf_counter() - start
        if len(runs) < budget.min_repeats:
            continue
        if elapsed >= budget.max_seconds or len(runs) >= budget.max_repeats:
            return runs
        median = statistics.median(r.decode_s + r.prefill_s for r in runs)
        settled = previous is not None and abs(median - previous) <= budget.rel_tol * previous
        if elapsed >= budget.min_seconds and settled and _enough_at_full_speed(runs, speed):
            return runs
        previous = median


@dataclass
class GenerationCell:
    """What one batch size's generations give: distributions (``Latency``, ms) of the prefill forward,
    of the time to first token, of a decode step, and of the whole decode."""

    batch_size: int
    prompt_tokens: int
    decode_tokens: int
    prefill: Latency
    ttft: Latency
    step: Latency
    decode: Latency
    cache_bytes_mid: int
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_runs(cls, runs: list[GreedyRun], batch_size: int, prompt_tokens: int, decode_tokens: int):
        mid = prompt_tokens + decode_tokens / 2  # positions cached at the generation's mid-point
        return cls(batch_size, prompt_tokens, decode_tokens,
                   prefill=summarize([r.prefill_s for r in runs], batch_size),
                   ttft=summarize([r.prefill_s + r.pick_s for r in runs], batch_size),
                   step=summarize([s for r in runs for s in r.step_s], batch_size),
                   decode=summarize([r.decode_s for r in runs], batch_size),
                   cache_bytes_mid=round(runs[0].cache_bytes_per_position * mid))

    @property
    def spread(self) -> float:
        """The widest p90/p10 of the prefill and decode-step samples (what the noise check judges)."""
        return max(self.prefill.spread, self.step.spread)

    def to_dict(self) -> dict:
        b, p, d = self.batch_size, self.prompt_tokens, self.decode_tokens
        return {"status": "measured", "batch_size": b, "prompt_tokens": p, "decode_tokens": d,
                "repeats": self.prefill.repeats,
                "prefill_tokens_per_s": _per_s(b * p, self.prefill.median_ms),
                **_dist("prefill", self.prefill), **_dist("ttft", self.ttft),
                "decode_tokens_per_s": _per_s(b * d, self.decode.median_ms),
                **_dist("decode_step", self.step), "decode_total_median_ms": self.decode.median_ms,
                "kv_cache_bytes_mid": self.cache_bytes_mid, **self.extra}


def _dist(name: str, lat: Latency) -> dict:
    return {f"{name}_median_ms": lat.median_ms, f"{name}_p10_ms": lat.p10_ms, f"{name}_p90_ms": lat.p90_ms}


def _per_s(tokens: int, ms: float) -> float | None:
    return tokens / (ms / 1e3) if ms > 0 else None


def measure_generation(run, prompt: torch.Tensor, decode_tokens: int, timer, weight_bytes_read: int,
                       budget: GenerationBudget = GenerationBudget()) -> dict:
    """One entry of ``Row.generation``: ``run``'s model generating from ``prompt`` (batch, P), timed
    under ``timer``'s noise sampler and limits (a ``CellTimer``), with its decode bound."""
    module, device = run.module, getattr(run, "device", "cpu")
    prompt = run.prepare({"input_ids": prompt})["input_ids"] if hasattr(run, "prepare") else prompt
    speed = timer.speed if device == "cpu" else None
    sampler = timer.sampler()
    sampler.start()
    runs = time_generations(module, prompt, decode_tokens, budget, device, speed)
    noise = sampler.stop()
    kept, host = at_full_speed(runs, speed)
    cell = GenerationCell.from_runs(kept, prompt.shape[0], prompt.shape[1], decode_tokens)
    reason = instability(noise, cell.spread, timer.threads, timer.limits, host=host)
    cell.extra = {"threads": timer.threads, "stable": reason is None, "unstable_reason": reason,
                  "noise": noise.to_dict() | host, **decode_bound(cell, weight_bytes_read, timer, device)}
    return cell.to_dict()


def at_full_speed(runs: list[GreedyRun], speed) -> tuple[list[GreedyRun], dict]:
    """The generations of ``runs`` that the host's loops read full speed just before and after (judged
    against their fastest now), if two or more did, else all; and what the loops said, as a latency cell's
    ``noise`` says it (``host_full_speed`` false: fewer than two did, and the entry is unstable). A decode
    comparison is not timed paired with fp32, so a slow stretch of the host that no counter shows (1.5-2x,
    seconds to hours, on a 2-vCPU Xeon guest, Dec 2026) would otherwise pass as a slower row."""
    if speed is None or not all(r.readings for r in runs):
        return runs, {}
    fast = [r for r in runs if speed.at_full_speed(*r.readings)]
    kept = fast if len(fast) >= MIN_FULL_SPEED else runs
    host = {"host_slow_fraction": 1 - len(fast) / len(runs),
            "host_slowdown": statistics.median(max(map(speed.slowdown, r.readings)) for r in runs),
            "host_full_speed": len(fast) >= MIN_FULL_SPEED, "host_generations_set_aside": len(runs) - len(kept),
            "host_fastest_us": [1e6 * f for f in speed.fastest]}
    return kept, host


def _enough_at_full_speed(runs: list[GreedyRun], speed) -> bool:
    return speed is None or sum(speed.at_full_speed(*r.readings) for r in runs) >= MIN_FULL_SPEED


def decode_bound(cell: GenerationCell, weight_bytes_read: int, timer, device: str) -> dict:
    """A decode step's bound: the weights read once plus the KV cache at the mid-point, at the host's
    read bandwidth for that many bytes; and the share of the measured median step it is."""
    read = weight_bytes_read + cell.cache_bytes_mid
    bandwidth = timer.host(device).bandwidth_gbs(read)
    bound = bound_ms(read, 0, bandwidth, math.inf).ms
    median = cell.step.median_ms
    return {"weight_bytes_read": weight_bytes_read, "decode_bytes_read": read, "bandwidth_gbs": bandwidth,
            "decode_bound_ms_per_token": bound,
            "decode_fraction_of_bound": bound / median if median > 0 else None}


def not_measured(reason: str, batch_size: int | None = None) -> dict:
    return {"status": NOT_MEASURED, "batch_size": batch_size, "reason": reason}


def generation_entries(run, prompt_for, prompt_tokens: int, decode_tokens: int, batch_sizes, timer,
                       weight_bytes_read: int, budget: GenerationBudget = GenerationBudget()) -> list[dict]:
    """``Row.generation``: one entry per batch size, or one "not measured" entry with its reason when
    ``run`` cannot decode with a KV cache or the prompt does not fit; ``prompt_for(batch, tokens)``
    gives the prompt (the task's own evaluation tokens). A batch size whose generation raises gets a
    "not measured" entry with the error; the row goes on."""
    if decode_tokens < 1:
        raise ValueError(f"decode_tokens must be at least 1, got {decode_tokens}")
    refusal = decode_refusal(run)
    if refusal:
        return [not_measured(refusal)]
    length = prompt_length(run.module, prompt_tokens, decode_tokens)
    if length < 1:
        return [not_measured(f"the model's context ({context_tokens(run.module)} tokens) leaves no room for a prompt "
                             f"before {decode_tokens} decode tokens; use fewer --decode-tokens")]
    entries = []
    for b in batch_sizes:
        try:
            entry = measure_generation(run, prompt_for(b, length), decode_tokens, timer, weight_bytes_read, budget)
        except Exception as e:  # a model that cannot decode is data, not a failed row
            entry = not_measured(f"generation failed: {type(e).__name__}: {e}", b)
        if length < prompt_tokens:
            entry["prompt_capped_from"] = prompt_tokens
        entries.append(entry)
    return entries
