from pathlib import Path

import pytest
import torch

from quantbench.errors import UserError
from quantbench.tasks import build_task
from quantbench.tasks.tabular import CLIP_STD
from quantbench.tasks.train import trained_fp32


def test_splits_are_disjoint_and_calibration_comes_from_train():
    task = build_task("tabular", dataset="wine", hidden=(16,), seed=0)
    s = task.splits
    assert len(s.x_train) + len(s.x_val) + len(s.x_test) == 178
    assert torch.equal(s.x_calib, s.x_train[: len(s.x_calib)])
    assert s.x_test.abs().max() <= CLIP_STD


def test_training_is_cached_and_reproducible(tmp_path):
    cache_dir = tmp_path
    task = build_task("tabular", dataset="wine", hidden=(16,), seed=1)
    first, info1 = trained_fp32(task, seed=1, cache_dir=Path(cache_dir), progress=False)
    second, info2 = trained_fp32(task, seed=1, cache_dir=Path(cache_dir), progress=False)
    assert info1.source == "trained" and info2.source.startswith("cache")
    assert info1.val_accuracy > 0.85  # trained, not a fixed tiny epoch count
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        assert torch.equal(a, b)


def test_unknown_dataset_and_task_suggest_names():
    with pytest.raises(UserError, match="did you mean 'digits'"):
        build_task("tabular", dataset="digit")
    with pytest.raises(UserError, match="did you mean 'tabular'"):
        build_task("tabulr")


def test_user_task_file_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        build_task(str(tmp_path / "missing.py") + ":build")
    bad = tmp_path / "bad.py"
    bad.write_text("def build():\n    return 3\n")
    with pytest.raises(UserError, match="must return quantbench.UserTask"):
        build_task(f"{bad}:build")
    with pytest.raises(UserError, match="no function 'make"):
        build_task(f"{bad}:make")


def test_example_user_task_loads():
    example = Path(__file__).parents[2] / "examples" / "custom_task.py"
    task = build_task(f"{example}:build", seed=0)
    assert task.n_classes == 3 and task.splits.x_train.shape[1] == 13
