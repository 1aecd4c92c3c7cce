"""What measurements call: a runner runs a model on a batch (runtimes make them; measure/ only calls them)."""
from typing import Any, Callable

Runner = Callable[[Any], Any]
"""``run(batch)`` -> the model's output on the host. A runner whose model lives on a device may also
have ``prepare(batch)`` (the batch placed where the model runs) and ``run_prepared(prepared)`` (the
forward alone, finished, its output left there): latency then times only that (``timed_call``). It
names that place in ``device`` ("cuda:0"; "cpu" when absent), and may say the bytes of weights one
call reads in ``weight_bytes`` (what a latency cell's memory bound divides)."""


def timed_call(run: Runner, batch) -> tuple[Callable[[Any], Any], Any]:
    """What latency times for ``run`` on ``batch``: the call and its input. The model call alone:
    a runner's input placement (``prepare``) happens here, before the clock starts."""
    if hasattr(run, "prepare"):
        return run.run_prepared, run.prepare(batch)
    return run, batch
