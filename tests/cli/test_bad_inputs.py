"""Inputs a new user gets wrong (issue 15), one case per kind: the command refuses each in one line that
names the problem and the fix, with exit code 2, no traceback, before training starts and without
touching what was already written; or it does the right thing and says so in the results."""
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
import torch

from quantbench.cli.main import main
from quantbench.tasks.train import majority_note

FAST = ["--methods", "fp32", "--no-memory", "--batch-sizes", "1", "--hidden", "8", "--no-progress"]
ROWS = 60


def table(header: str, row: Callable[[int], str], n: int = ROWS) -> str:
    return header + "\n" + "\n".join(row(i) for i in range(n)) + "\n"


def plugin(model: str, x: str, y: str = "[0, 1] * 20") -> str:
    return ("import numpy as np\nfrom torch import nn\nfrom quantbench import UserTask\n\n\ndef build():\n"
            f"    x = {x}\n    return UserTask(build_model=lambda: {model}, x=x, y={y})\n")


@dataclass
class Refused:
    """``files``: name -> text, written to the case's folder first; ``args``: the options, where
    '{dir}' is that folder; the error line must contain ``message``."""

    args: list[str]
    message: str
    files: dict[str, str] | None = None


CSV = {"--data": "{dir}/data.csv", "--target": "label"}
DATA_ARGS = [item for pair in CSV.items() for item in pair]
REFUSED = {
    "seed_negative": Refused(["--seed", "-1"], "--seed must be an integer from 0 to 4294967295, got -1"),
    "cache_dir_is_a_file": Refused(["--cache-dir", "{dir}/kept.txt"], "--cache-dir {dir}/kept.txt is a file, not a folder"),
    "out_is_a_file": Refused(["--out", "{dir}/kept.txt"], "--out {dir}/kept.txt is a file, not a folder"),
    "out_under_a_file": Refused(["--out", "{dir}/kept.txt/run"], "cannot be created: {dir}/kept.txt is a file"),
    "out_unwritable": Refused(["--out", "/proc/quantbench-run"], "--out /proc/quantbench-run is not writable"),
    "plugin_build_raises": Refused(["--task", "{dir}/task.py:build"], "build() raised RuntimeError: boom (line 2 of task.py)",
                                   {"task.py": "def build():\n    raise RuntimeError('boom')\n"}),
    "plugin_x_holds_text": Refused(["--task", "{dir}/task.py:build"], "x of {dir}/task.py:build must hold numbers",
                                   {"task.py": plugin("nn.Linear(2, 2)", "[['a', 'b']] * 40")}),
    "plugin_shapes_disagree": Refused(["--task", "{dir}/task.py:build"],
                                      "build_model() cannot take x (rows of shape (3,)): RuntimeError: mat1 and mat2",
                                      {"task.py": plugin("nn.Linear(5, 2)", "np.random.rand(40, 3)")}),
    "plugin_too_few_outputs": Refused(["--task", "{dir}/task.py:build"], "returns logits of shape (2, 3)",
                                      {"task.py": plugin("nn.Linear(3, 2)", "np.random.rand(60, 3)", "[0, 1, 2] * 20")}),
    "plugin_model_not_a_module": Refused(["--task", "{dir}/task.py:build"], "build_model() must return a torch.nn.Module, got str",
                                         {"task.py": plugin("'a model'", "np.random.rand(40, 3)")}),
    "plugin_x_has_nan": Refused(["--task", "{dir}/task.py:build"], "has 1 values that are NaN, infinite or beyond float32's range "
                                "(first at index (5, 1))",
                                {"task.py": plugin("nn.Linear(3, 2)", "np.where(np.arange(120).reshape(40, 3) == 16, np.nan, 1.0)")}),
    "csv_nan_strings": Refused(DATA_ARGS, "column 'b' has no values (every cell is empty or a missing marker such as NA)",
                               {"data.csv": table("a,b,label", lambda i: f"{i},nan,{i % 2}")}),
    "csv_beyond_float32_1e39": Refused(DATA_ARGS, "column 'b' has 60 values that are infinite or beyond float32's range",
                                       {"data.csv": table("a,b,label", lambda i: f"{i},1e39,{i % 2}")}),
    "csv_beyond_float32_1e300": Refused(DATA_ARGS, "e.g. 1e+300 on line 5; rescale the column",
                                        {"data.csv": table("a,b,label", lambda i: f"{i},{1e300 if i == 3 else i},{i % 2}")}),
    "csv_duplicated_header": Refused(DATA_ARGS, "repeats column names ('a' is columns 1, 2)",
                                     {"data.csv": table("a,a,label", lambda i: f"{i},{-i},{i % 2}")}),
    "target_almost_one_class_per_row": Refused(DATA_ARGS, "target column 'label' has 60 distinct values in 60 rows",
                                               {"data.csv": table("a,label", lambda i: f"{i},id{i}")}),
    "target_without_data": Refused(["--target", "label"], "--target label needs --data FILE.csv"),
    "continuous_target": Refused(DATA_ARGS, "target column 'label' looks continuous (60 distinct numbers",
                                 {"data.csv": table("a,label", lambda i: f"{i},{i * 0.37 + 0.01}")}),
    "data_is_a_directory": Refused(["--data", "{dir}", "--target", "label"], "--data {dir} is a directory"),
}


@pytest.mark.parametrize("case", REFUSED.values(), ids=REFUSED.keys())
def test_bad_input_is_one_line_before_training(case, tmp_path, capsys):
    if "/proc/" in " ".join(case.args) and not Path("/proc/self").exists():
        pytest.skip("needs Linux's /proc, where nothing can be created")
    (tmp_path / "kept.txt").write_text("written before")
    for name, text in (case.files or {}).items():
        (tmp_path / name).write_text(text)
    cache = tmp_path / "cache"
    args = [a.replace("{dir}", str(tmp_path)) for a in case.args]
    code = main(["compare", *FAST, "--cache-dir", str(cache), *args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert case.message.replace("{dir}", str(tmp_path)) in err
    assert (tmp_path / "kept.txt").read_text() == "written before"
    assert not cache.exists() or not any(cache.iterdir())  # refused before anything was trained
    assert not list(tmp_path.glob(".quantbench-write-test-*"))


@dataclass
class Handled:
    """The command runs (exit 0) and its results.json ``task`` says what it did: each string of
    ``says`` is in the task's description or one of its notes."""

    csv: str
    says: list[str]


HANDLED = {
    "labels_1_and_1.0_are_one_class": Handled(
        table("a,label", lambda i: f"{i % 7},{['1', '1.0', '0', '0.0'][i % 4]}"), ["(target 'label', 2 classes)"]),
    "tab_separated_quoted_header": Handled(
        table('"a"\t"b"\t"label"', lambda i: f"{i}\t{i % 5}\t{i % 2}"), ["data.csv read as tab-separated"]),
    "semicolon_separated_quoted_header": Handled(
        table('"a";"b";"label"', lambda i: f"{i};{i % 5};{i % 2}"), ["data.csv read as semicolon-separated"]),
    "a_few_na_cells_imputed": Handled(
        table("a,b,label", lambda i: f"{i},{'NA' if i % 20 == 0 else i % 5},{i % 2}"),
        ["column 'b': 3 missing values imputed with the median"]),
    "count_target_at_the_majority_rate": Handled(
        table("noise,label", lambda i: f"{(i * 7919) % 101 / 101:.3f},{0 if i % 3 == 0 else i % 17}", n=120),
        ["does not beat always answering the most frequent class", "bin the target"]),
}


@pytest.mark.parametrize("case", HANDLED.values(), ids=HANDLED.keys())
def test_tricky_table_runs_and_says_what_it_did(case, tmp_path, capsys):
    (tmp_path / "data.csv").write_text(case.csv)
    out = tmp_path / "run"
    code = main(["compare", *FAST, "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
                 "--data", str(tmp_path / "data.csv"), "--target", "label"])
    assert code == 0, capsys.readouterr().err
    task = json.loads((out / "results.json").read_text())["task"]
    said = " | ".join([task["description"], *task["notes"]])
    for text in case.says:
        assert text in said, said


@pytest.mark.parametrize("correct, expected", [(40, None), (14, "majority rate 0.300, 4 classes")])
def test_majority_note_only_when_the_model_does_not_beat_the_majority(correct, expected):
    y_train = torch.tensor([0] * 30 + [1, 2, 3] * 10)
    y_test = torch.tensor([0] * 12 + [1, 2, 3] * 9 + [1])
    pred = torch.where(torch.arange(40) < correct, y_test, (y_test + 1) % 4)
    note = majority_note(pred, y_train, y_test, 4)
    assert note is None if expected is None else expected in note


def test_probe_file_is_removed_from_a_writable_out(tmp_path):
    from quantbench.checks import check_writable_folder

    check_writable_folder(str(tmp_path / "new" / "run"), "--out")
    assert os.listdir(tmp_path) == []  # checked, nothing created
