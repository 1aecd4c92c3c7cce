"""Checks of a comparison's options that need no data and no training, run first so that a mistake
costs a second, not a training run: each raises ``UserError`` with one line that says how to fix it."""
import os
import tempfile
from pathlib import Path

from .errors import UserError
from .spec import CompareSpec

SEED_MAX = 2**32 - 1
"""scikit-learn's split (and numpy's legacy seeding) take seeds in [0, 2**32 - 1]."""


def check_spec(spec: CompareSpec) -> None:
    check_seed(spec.seed)
    check_target_has_data(spec.target, spec.data)
    check_generation_options(spec.prompt_tokens, spec.decode_tokens, spec.decode_batch_sizes, spec.decode_seconds)
    if spec.out:
        check_writable_folder(spec.out, "--out")
    if spec.cache_dir:
        check_writable_folder(spec.cache_dir, "--cache-dir")
    else:
        from .tasks.train import default_cache_dir

        check_writable_folder(str(default_cache_dir()), "--cache-dir (default, from $QUANTBENCH_CACHE or home)")


def check_seed(seed: int) -> None:
    if not 0 <= seed <= SEED_MAX:
        raise UserError(f"--seed must be an integer from 0 to {SEED_MAX}, got {seed}")


def check_target_has_data(target: str | None, data: str | None) -> None:
    if target and not data:
        raise UserError(f"--target {target} needs --data FILE.csv (built-in datasets and tasks bring their own labels)")


def check_generation_options(prompt_tokens: int, decode_tokens: int, batch_sizes: tuple[int, ...],
                             seconds: int) -> None:
    if prompt_tokens < 1:
        raise UserError(f"--prompt-tokens must be at least 1, got {prompt_tokens}")
    if decode_tokens < 0:
        raise UserError(f"--decode-tokens must be 0 (no prefill/decode measurement) or more, got {decode_tokens}")
    if not batch_sizes or min(batch_sizes) < 1:
        raise UserError(f"--decode-batch-sizes needs positive integers, got {','.join(map(str, batch_sizes))}")
    if not seconds >= 0:
        raise UserError(f"--decode-seconds must be 0 or more seconds, got {seconds}")


def check_writable_folder(path: str, option: str) -> None:
    """``path`` is a folder we can write in, or one we can create: not a file, not under a file, not
    in a place where nothing can be created (a read-only disk, /proc). Creates nothing."""
    target = Path(path).expanduser()
    if target.exists() and not target.is_dir():
        raise UserError(f"{option} {path} is a file, not a folder; give a folder path")
    existing = next(p for p in [target, *target.parents] if p.exists())
    if not existing.is_dir():
        raise UserError(f"{option} {path} cannot be created: {existing} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(dir=existing, prefix=".quantbench-write-test-")
    except OSError as e:
        raise UserError(f"{option} {path} is not writable ({e.strerror} in {existing}); choose another folder") from None
    os.close(handle)
    os.unlink(probe)
