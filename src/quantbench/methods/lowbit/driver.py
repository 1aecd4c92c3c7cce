"""Apply a per-layer quantizer (RTN, GPTQ) to a whole model: one generic driver for every family.

With Hessians, transformer blocks are quantized one at a time, as the GPTQ reference does: the
inputs of block 0 are captured (a pre-hook stops the forward there), each block's Hessians are
collected by hooks while it runs on those inputs, its layers are quantized (optionally in
"true sequential" groups), and the block is re-run with its quantized weights to produce the
next block's inputs. Only one block's activations are held. Layers outside the blocks, and all
layers of a plain model, are calibrated by whole-model passes after the blocks (so a layer
*before* the first block, rare, is quantized after the blocks saw its full-precision output).
Blocks are found by the adapters table (``adapters.py``); everything stays on the model's device.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Callable

import torch
from torch import nn
from tqdm.auto import tqdm

from .adapters import find_adapter, split_sequential_groups
from .gptq import accumulate_hessian
from .grid import LowBitWeight
from ...formats.layout import get_weight_out_in, release_weight, set_weight_out_in

QuantizeLayer = Callable[..., "tuple[LowBitWeight, dict]"]
"""(layer name, weight [out, in] float32, Hessian [in, in] or None) -> (LowBitWeight, info dict); with
``mean_abs`` the driver also passes the mean |x| of each input channel [in] (AWQ's statistic)."""


class _StopForward(Exception):
    """Raised by the capture hook to stop the model's forward once the block inputs are known."""


def quantize_model(
    model: nn.Module,
    calib_batches: list,
    quantize_layer: QuantizeLayer,
    needs_hessian: bool,
    layers: dict[str, nn.Module],
    true_sequential: bool = False,
    progress: bool = True,
    label: str | None = None,
    mean_abs: bool = False,
    release: bool = False,
) -> dict[str, tuple[LowBitWeight, dict]]:
    """Quantize ``layers`` of ``model`` in place (dequantized weights written back).

    ``calib_batches``: model inputs, each a Tensor (``model(x)``) or a dict (``model(**batch)``).
    ``quantize_layer(name, w_out_in_fp32, H_or_None)`` returns (LowBitWeight, info); with a
    Hessian the driver adds ``hessian_rows`` (calibration rows seen) to the info. ``mean_abs``: call
    ``quantize_layer(name, w, H, mean_abs)`` with each input channel's mean |x| as well.
    Returns {name: (LowBitWeight, info)} in the order of ``layers``. With ``release`` each layer's
    dequantized weight is dropped (``release_weight``) as soon as no later calibration pass needs it:
    its codes are in the result, and memory stays at one block's dense weights, not a model's.
    """
    label = label or ("gptq" if needs_hessian else "rtn")
    if not needs_hessian:
        bar = tqdm(total=len(layers), desc=label, disable=not progress)
        results = {}
        for name, layer in layers.items():  # released one at a time: no pass runs the model
            results[name] = _quantize_layer(name, layer, None, 0, quantize_layer, bar)
            _release({name: layer}, release)
        bar.close()
        return results
    if not calib_batches:
        raise ValueError("a Hessian-based method needs at least one calibration batch")
    with torch.no_grad(), calibration_mode(model):
        layer_fn = quantize_layer if mean_abs else _without_mean_abs(quantize_layer)
        results = _quantize_with_hessians(model, calib_batches, layer_fn, layers, true_sequential, progress, label,
                                          release)
    return {name: results[name] for name in layers}


def _without_mean_abs(quantize_layer):
    return lambda name, w, H, mean_abs: quantize_layer(name, w, H)


def _release(layers: dict[str, nn.Module], release: bool) -> None:
    for layer in layers.values() if release else ():
        release_weight(layer)


def _quantize_with_hessians(model, batches, quantize_layer, layers, true_sequential, progress, label, release):
    """Block by block where the model has known blocks, then whole-model passes for the rest."""
    adapter, outside, results = find_adapter(model), dict(layers), {}
    if adapter is not None:
        blocks = model.get_submodule(adapter.blocks_path)
        per_block = [_pop_block_layers(outside, f"{adapter.blocks_path}.{i}.") for i in range(len(blocks))]
        if any(per_block):
            groups_table = adapter.sequential_groups if true_sequential else None
            results.update(_quantize_blocks(model, blocks, adapter.blocks_path, per_block, batches,
                                            quantize_layer, groups_table, progress, label, release))
    if outside:
        groups = [[name] for name in outside] if true_sequential else [list(outside)]
        bar = tqdm(total=len(outside), desc=f"{label} layers", disable=not progress)
        results.update(_quantize_groups(partial(_run_model, model, batches), outside, groups, quantize_layer, bar))
        _release(outside, release)  # only now: each whole-model pass ran the earlier layers
    return results


def _quantize_blocks(model, blocks, path, per_block, batches, quantize_layer, groups_table, progress, label,
                     release):
    """Quantize each block's layers in turn, feeding block i + 1 the outputs of quantized block i."""
    hidden, extras = _capture_block_inputs(model, blocks, batches, _has_mixed_layer_types(model))
    results = {}
    for i, block in enumerate(blocks):
        calls = extras[i] if len(extras) > 1 else extras[0]
        layers = per_block[i]
        if layers:
            groups = _block_groups(list(layers), f"{path}.{i}.", groups_table)
            bar = tqdm(total=len(layers), desc=f"{label} block {i + 1}/{len(blocks)}", disable=not progress)
            run = partial(_run_block, block, hidden, calls)
            results.update(_quantize_groups(run, layers, groups, quantize_layer, bar))
        for j, call in enumerate(calls):
            hidden[j] = _call_block(block, hidden[j], *call)  # in place: one block's activations held
        _release(layers, release)
    return results


def _quantize_groups(run, layers, groups, quantize_layer, bar):
    """For each group of names: run the calibration forward, collect Hessians, quantize, write back."""
    results = {}
    for group in groups:
        stats = _collect_hessians(run, {name: layers[name] for name in group})
        for name in group:
            H, n_rows, abs_sum = stats[name]
            results[name] = _quantize_layer(name, layers[name], H, n_rows, quantize_layer, bar, abs_sum / n_rows)
    bar.close()
    return results


def _collect_hessians(run, layers):
    """{name: (H, rows, sum of |x| per input channel)} from the inputs each layer receives while ``run()``
    executes."""
    stats = {name: (None, 0, 0.0) for name in layers}

    def hook_for(name):
        def accumulate(module, args, kwargs):
            x = args[0] if args else kwargs["input"]
            H, n_rows, abs_sum = stats[name]
            abs_sum = abs_sum + x.detach().abs().reshape(-1, x.shape[-1]).sum(0, dtype=torch.float64)
            stats[name] = (*accumulate_hessian(H, n_rows, x), abs_sum)
        return accumulate

    handles = [layer.register_forward_pre_hook(hook_for(name), with_kwargs=True) for name, layer in layers.items()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    unused = [name for name, (_, n_rows, _) in stats.items() if n_rows == 0]
    if unused:
        raise RuntimeError(f"layers received no input during calibration: {unused}")
    return stats


def _quantize_layer(name, layer, H, n_rows, quantize_layer, bar, mean_abs=None):
    """Quantize one layer, write its dequantized weights back, return (LowBitWeight, info)."""
    w = get_weight_out_in(layer).detach().float()
    lw, info = quantize_layer(name, w, H) if H is None else quantize_layer(name, w, H, mean_abs.float())
    set_weight_out_in(layer, lw.dequantize())
    bar.update()
    return lw, info if H is None else {**info, "hessian_rows": n_rows}


def _capture_block_inputs(model, blocks, batches, every_block):
    """Hidden states entering block 0 per batch, and the other inputs (args, kwargs) of the blocks.

    A pre-hook records the inputs and stops the forward at block 0 (the reference "Catcher").
    With ``every_block`` (blocks get different masks, e.g. mixed sliding/full attention) the
    forward runs to the last block so each block's own masks are recorded (references only).
    """
    hidden, extras = [], [[] for _ in range(len(blocks) if every_block else 1)]

    def recorder(i):
        def record(module, args, kwargs):
            h, rest = _split_hidden(args, kwargs)
            if i == 0:
                hidden.append(h)
            extras[i].append(rest)
            if i == len(extras) - 1:
                raise _StopForward
        return record

    handles = [blocks[i].register_forward_pre_hook(recorder(i), with_kwargs=True) for i in range(len(extras))]
    try:
        for batch in batches:
            try:
                _call_model(model, batch)
            except _StopForward:
                continue
            raise RuntimeError("the model's forward never reached its transformer blocks")
    finally:
        for handle in handles:
            handle.remove()
    return hidden, extras


def _split_hidden(args, kwargs):
    """(hidden states, (args, kwargs) without them); caches are dropped and use_cache is False."""
    args = tuple(None if _is_cache(a) else a for a in args)
    kwargs = {k: None if _is_cache(v) else v for k, v in kwargs.items()}
    if "use_cache" in kwargs:
        kwargs["use_cache"] = False
    if args:
        return args[0], ((None, *args[1:]), kwargs)
    return kwargs["hidden_states"], ((), {**kwargs, "hidden_states": None})


def _call_block(block, hidden, args, kwargs):
    """The block's output hidden states (blocks return a tensor or a tuple led by it)."""
    if args:
        out = block(hidden, *args[1:], **kwargs)
    else:
        out = block(**{**kwargs, "hidden_states": hidden})
    return out if isinstance(out, torch.Tensor) else out[0]


def _call_model(model, batch):
    return model(**batch) if isinstance(batch, dict) else model(batch)


def _run_block(block, hidden, calls):
    """Run the block on every captured input, discarding the outputs (Hessian hooks see the inputs)."""
    for h, call in zip(hidden, calls):
        _call_block(block, h, *call)


def _run_model(model, batches):
    for batch in batches:
        _call_model(model, batch)


def _pop_block_layers(layers, prefix):
    """Remove and return the layers whose names start with ``prefix`` (module order kept)."""
    inside = {name: layer for name, layer in layers.items() if name.startswith(prefix)}
    for name in inside:
        del layers[name]
    return inside


def _block_groups(names, prefix, groups_table):
    """All names as one group, or the true-sequential groups of their block-relative names."""
    if groups_table is None:
        return [names]
    relative = split_sequential_groups([name[len(prefix):] for name in names], groups_table)
    return [[prefix + name for name in group] for group in relative]


def _has_mixed_layer_types(model):
    layer_types = getattr(getattr(model, "config", None), "layer_types", None)
    return bool(layer_types) and len(set(layer_types)) > 1


def _is_cache(value):
    return any(cls.__name__.endswith("Cache") for cls in type(value).__mro__)


@contextmanager
def calibration_mode(model):
    """Eval mode (no dropout) and no KV caches during calibration; both restored afterwards."""
    config = getattr(model, "config", None)
    use_cache = getattr(config, "use_cache", None)
    modes = {module: module.training for module in model.modules()}
    model.eval()
    if use_cache is not None:
        config.use_cache = False
    try:
        yield
    finally:
        for module, training in modes.items():
            module.training = training
        if use_cache is not None:
            config.use_cache = use_cache
