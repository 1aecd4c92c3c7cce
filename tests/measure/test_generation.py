"""Prefill and decode speed (measure/generation.py) on a tiny Llama built in the test: exactly the
tokens asked for, the KV cache really used, "not measured" where a runner cannot decode, and the
pp/tg columns of an lm comparison."""
import pytest
import torch
from rich.console import Console

from quantbench import CompareSpec, compare
from quantbench.checks import check_generation_options
from quantbench.errors import UserError
from quantbench.measure.cell import CellTimer
from quantbench.measure.generation import (GenerationBudget, cache_argument, generate_greedy, generation_entries,
                                           measure_generation)
from quantbench.pipeline import RunTiming, _fill_generation
from quantbench.quiet import quiet_torch_quantization
from quantbench.report.files import csv_lines
from quantbench.report.speed import decode_claim
from quantbench.report.table import render
from quantbench.results import Results, Row

transformers = pytest.importorskip("transformers")
QUICK = GenerationBudget(min_seconds=0.0, max_seconds=0.0)  # the two generations every entry times, no more
KV_BYTES_PER_POSITION = 2 * 2 * 4 * 16 * 4  # layers x (keys, values) x heads x head size x fp32 bytes


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_dir).eval()


class EagerRunner:
    def __init__(self, module):
        self.module = module

    def __call__(self, batch):
        return self.module(**batch)


def prompt(batch: int, tokens: int) -> torch.Tensor:
    return (torch.arange(batch * tokens).view(batch, tokens) * 7 + 1000) % 20000


def test_generates_exactly_the_tokens_asked_even_after_eos(llama):
    first = generate_greedy(llama, prompt(2, 8), 6).tokens
    eos = int(first[0, 0])  # the token greedy picks first becomes the end-of-sequence token
    llama.config.eos_token_id = llama.generation_config.eos_token_id = eos
    try:
        run = generate_greedy(llama, prompt(2, 8), 6)
    finally:
        llama.config.eos_token_id = llama.generation_config.eos_token_id = None
    assert run.tokens.shape == (2, 6) and len(run.step_s) == 6
    assert int(run.tokens[0, 0]) == eos and torch.equal(run.tokens, first)


def test_each_decode_step_feeds_one_token_and_grows_the_cache_by_one(llama):
    seen = []

    def record(module, args, kwargs):
        cache = kwargs[cache_argument(module)]
        seen.append((tuple(kwargs["input_ids"].shape), cache.get_seq_length()))

    hook = llama.register_forward_pre_hook(record, with_kwargs=True)
    try:
        generate_greedy(llama, prompt(3, 10), 5)
    finally:
        hook.remove()
    assert seen == [((3, 10), 0)] + [((3, 1), 10 + k) for k in range(5)]


@pytest.mark.parametrize("prompt_tokens", [4, 40])
def test_decode_work_per_token_does_not_grow_with_the_prompt(llama, prompt_tokens):
    """Positions the first attention projection processes per decode step: one per sequence whatever
    the prompt's length (a loop without the cache would feed the whole sequence, prompt_tokens + k)."""
    positions = []
    layer = llama.model.layers[0].self_attn.q_proj
    hook = layer.register_forward_hook(lambda m, args, out: positions.append(args[0].shape[:-1].numel()))
    try:
        generate_greedy(llama, prompt(2, prompt_tokens), 4)
    finally:
        hook.remove()
    assert positions == [2 * prompt_tokens] + [2] * 4


def test_an_entry_has_its_rates_and_its_decode_bound(llama):
    timer = CellTimer(threads=torch.get_num_threads())
    entry = measure_generation(EagerRunner(llama), prompt(2, 12), 4, timer, weight_bytes_read=1_000_000, budget=QUICK)
    assert entry["status"] == "measured" and entry["repeats"] == 2
    assert entry["prefill_tokens_per_s"] == pytest.approx(2 * 12 / (entry["prefill_median_ms"] / 1e3))
    assert entry["decode_tokens_per_s"] == pytest.approx(2 * 4 / (entry["decode_total_median_ms"] / 1e3))
    assert entry["ttft_median_ms"] >= entry["prefill_median_ms"] * 0.5
    assert entry["kv_cache_bytes_mid"] == KV_BYTES_PER_POSITION * 2 * (12 + 4 / 2)
    read = 1_000_000 + entry["kv_cache_bytes_mid"]
    assert entry["decode_bound_ms_per_token"] == pytest.approx(read / entry["bandwidth_gbs"] / 1e6)
    assert entry["decode_fraction_of_bound"] == pytest.approx(entry["decode_bound_ms_per_token"]
                                                              / entry["decode_step_median_ms"])
    assert isinstance(entry["stable"], bool) and entry["noise"]["seconds"] > 0


def test_runners_that_cannot_decode_get_a_not_measured_entry(llama):
    class GraphRunner:  # like ONNX Runtime: a callable, no eager module
        def __call__(self, batch):
            return None

    with quiet_torch_quantization():
        frozen = EagerRunner(torch.jit.script(torch.nn.Linear(2, 2)))
    args = (prompt, 8, 4, (1, 2), CellTimer(threads=1), 0)
    for runner, reason in [(GraphRunner(), "no eager PyTorch module"), (frozen, "TorchScript"),
                           (EagerRunner(torch.nn.Linear(2, 2)), "not a transformers model")]:
        entries = generation_entries(runner, *args)
        assert [e["status"] for e in entries] == ["not measured"] and reason in entries[0]["reason"]
    too_long = generation_entries(EagerRunner(llama), prompt, 8, 64, (1,), CellTimer(threads=1), 0)
    assert too_long[0]["status"] == "not measured" and "context (64 tokens)" in too_long[0]["reason"]


def test_the_prompt_is_capped_at_the_context(llama):
    entries = generation_entries(EagerRunner(llama), prompt, 512, 60, (1,), CellTimer(threads=1), 0, QUICK)
    assert entries[0]["prompt_tokens"] == 4 and entries[0]["prompt_capped_from"] == 512


def test_zero_decode_tokens_or_a_task_that_does_not_generate_skips_it(llama):
    class LM:
        generation_prompt = staticmethod(prompt)

    timing = RunTiming(CellTimer(threads=1))
    for task, spec in [(LM(), CompareSpec(decode_tokens=0)), (object(), CompareSpec())]:
        row = Row(method="fp32", config={}, task="lm", runtime="torch-cpu", details={"weight_bytes_read": 0})
        _fill_generation(row, EagerRunner(llama), task, spec, timing)
        assert row.generation == []


def test_bad_generation_options_are_one_line_errors():
    for args, option in [((0, 8, (1,), 1), "--prompt-tokens"), ((8, -1, (1,), 1), "--decode-tokens"),
                         ((8, 8, (0,), 1), "--decode-batch-sizes"), ((8, 8, (1,), -2), "--decode-seconds")]:
        with pytest.raises(UserError, match=option):
            check_generation_options(*args)


def test_an_lm_comparison_shows_prefill_and_decode_columns(tiny_llama_dir, cache_dir, monkeypatch):
    judged = []
    monkeypatch.setattr(CellTimer, "judge_generation_against_record", lambda self, entry: judged.append(entry))
    results = compare(CompareSpec(task="lm", model=tiny_llama_dir, seq_len=32, eval_samples=2, methods="fp32,rtn",
                                  batch_sizes=(1,), prompt_tokens=16, decode_tokens=8, decode_batch_sizes=(1, 2),
                                  decode_seconds=0, memory=False, progress=False, cache_dir=cache_dir))
    for row in results.rows:
        assert row.status == "ok", row.error
        assert [(g["batch_size"], g["prompt_tokens"], g["decode_tokens"]) for g in row.generation] == [(1, 16, 8),
                                                                                                      (2, 16, 8)]
        assert all("host_fastest_us" in g["noise"] and "host_full_speed" in g["noise"] for g in row.generation)
    assert judged == [g for row in results.rows for g in row.generation]  # each entry, against the host's record
    console = Console(record=True, width=300)
    render(results, console)
    text = console.export_text()
    assert "pp16 tok/s" in text and "tg8 tok/s" in text
    assert any(line.startswith("- rtn: ") and "decode" in line for line in text.splitlines())
    lines = {line["batch_size"]: line for line in csv_lines(results.rows[1])}
    assert lines[2]["decode_tokens_per_s"] == results.rows[1].generation_at(2)["decode_tokens_per_s"]
    assert lines[1]["median_ms"] == results.rows[1].latency_at(1).median_ms
    reloaded = Results.from_dict(results.to_dict())
    assert reloaded.rows[1].generation == results.rows[1].generation


def test_the_decode_conclusion_is_stated_only_from_two_stable_entries():
    def row(method, tok_s, step_ms, stable=True):
        entry = {"status": "measured", "batch_size": 1, "decode_tokens": 128, "decode_tokens_per_s": tok_s,
                 "decode_step_p10_ms": step_ms * 0.9, "decode_step_p90_ms": step_ms * 1.1, "stable": stable,
                 "unstable_reason": None if stable else "other processes used 1.3 of the 2 cores; more"}
        return Row(method=method, config={}, task="lm", runtime="torch-cpu", generation=[entry])

    fp32 = row("fp32", 20.0, 50.0)
    assert decode_claim(row("rtn", 40.0, 25.0), fp32, 1) == \
        "rtn: decode 2.00x faster than fp32 at batch 1 (tg128: 40.0 vs 20.0 tok/s)"
    assert "1.25x slower" in decode_claim(row("rtn", 16.0, 62.5), fp32, 1)
    assert "no clear difference" in decode_claim(row("rtn", 21.0, 48.0), fp32, 1)
    unstable = decode_claim(row("rtn", 40.0, 25.0, stable=False), fp32, 1)
    assert "not stated: unstable" in unstable and "other processes used 1.3 of the 2 cores)" in unstable
    onnx = Row(method="rtn", config={}, task="lm", runtime="torch-cpu",
               generation=[{"status": "not measured", "batch_size": None, "reason": "no eager module"}])
    assert decode_claim(onnx, fp32, 1) == "rtn: decode speed vs fp32 at batch 1 not stated: not measured " \
                                          "(rtn: no eager module)"
    assert decode_claim(Row(method="rtn", config={}, task="t", runtime="torch-cpu"),
                        Row(method="fp32", config={}, task="t", runtime="torch-cpu"), 1) is None


def _host(slow) -> "HostSpeed":
    """A host whose one loop reads 2x its fastest at the readings ``slow(n)`` says (counted from 1)."""
    from quantbench.measure.hostspeed import HostSpeed

    state = {"readings": 0}

    def loop():
        return 2e-5 if slow(state["readings"]) else 1e-5

    speed = HostSpeed(loops=(loop,), calibrate_seconds=0.0)
    speed.fastest = (1e-5,)
    read = speed.read

    def counted(between_calls=True):
        state["readings"] += 1
        return read(between_calls)

    speed.read = counted
    return speed


def test_generations_the_host_loops_read_slow_beside_are_set_aside_and_timed_until_two_ran_at_full_speed(llama):
    """The wait for full speed takes readings 1-3; readings 5 and 6 are slow: generations 1-3 (each between
    two readings, from reading 4) are set aside, and the entry goes on until generations 4 and 5 ran at
    full speed."""
    timer = CellTimer(threads=torch.get_num_threads(), speed=_host(lambda n: n in (5, 6)))
    entry = measure_generation(EagerRunner(llama), prompt(1, 8), 2, timer, weight_bytes_read=1_000,
                               budget=GenerationBudget(min_seconds=0.0, max_seconds=30.0, rel_tol=1.0))
    assert entry["repeats"] == 2 and entry["noise"]["host_generations_set_aside"] == 3
    assert entry["noise"]["host_full_speed"] is True and entry["noise"]["host_slow_fraction"] == pytest.approx(0.6)
    assert entry["noise"]["host_fastest_us"] == [10.0]


def test_a_generation_entry_the_host_ran_slow_throughout_is_unstable_and_no_decode_speed_is_stated(llama, monkeypatch):
    from quantbench.measure import generation

    monkeypatch.setattr(generation, "WAIT_SECONDS", 0.05)
    timer = CellTimer(threads=torch.get_num_threads(), speed=_host(lambda n: n > 1))
    entry = measure_generation(EagerRunner(llama), prompt(1, 8), 2, timer, weight_bytes_read=1_000, budget=QUICK)
    assert entry["stable"] is False and entry["noise"]["host_full_speed"] is False
    assert "the host ran below its full speed" in entry["unstable_reason"]
    fp32 = Row(method="fp32", config={}, task="lm", runtime="torch-cpu", generation=[dict(entry, stable=True)])
    rtn = Row(method="rtn", config={}, task="lm", runtime="torch-cpu", generation=[entry])
    assert "not stated: unstable" in decode_claim(rtn, fp32, 1)


def test_a_generation_entry_of_a_run_slower_than_earlier_runs_is_unstable(tmp_path, monkeypatch):
    from quantbench.measure.hostrecord import HostRecord

    monkeypatch.setenv("QUANTBENCH_HOST_RECORD", "on")
    (tmp_path / "boot_id").write_text("boot-a\n")
    loops = (lambda: 1e-5,)
    HostRecord.load(tmp_path, loops, 1, boot_id=tmp_path / "boot_id").save((10e-6,), {})
    timer = CellTimer(threads=1)
    timer.record = HostRecord.load(tmp_path, loops, 1, boot_id=tmp_path / "boot_id")
    slow = {"status": "measured", "batch_size": 1, "stable": True, "unstable_reason": None,
            "noise": {"host_fastest_us": [20.0]}}
    quick = dict(slow, noise={"host_fastest_us": [11.0]})
    for entry in (slow, quick, {"status": "not measured"}):
        timer.judge_generation_against_record(entry)
    assert slow["stable"] is False and "loops ran slower in this run than in earlier runs" in slow["unstable_reason"]
    assert slow["noise"]["host_record_slowdown"] == pytest.approx(2.0)
    assert quick["stable"] is True and quick["noise"]["host_record_slowdown"] == pytest.approx(1.1)
