"""What users expect around a comparison: a DataFrame, the CLI's files from Python, where the model and
corpus come from, a description for every task, and the export command."""
import json

import pytest

from quantbench.cli.main import TASK_DESCRIPTIONS, main
from quantbench.tasks import TASKS

pandas = pytest.importorskip("pandas")


def test_to_frame_has_one_line_per_row_and_batch_size(exported_llama):
    results, _, _ = exported_llama
    frame = results.to_frame()
    assert len(frame) == len(results.rows) == 5  # one batch size
    assert list(frame["label"]) == [r.label for r in results.rows]
    assert frame.loc[frame["label"] == "rtn", "batch_size"].item() == 1 and frame["median_ms"].notna().all()


def test_compare_from_python_writes_the_clis_files(exported_llama):
    results, artifacts, _ = exported_llama
    out = artifacts.parent
    for name in ("results.json", "results.csv", "results.md", "tradeoffs.png"):
        assert (out / name).is_file(), name
    assert [r["method"] for r in json.loads((out / "results.json").read_text())["rows"]] == \
        [r.method for r in results.rows]


def test_results_name_the_model_tokenizer_and_corpus(exported_llama):
    identity = exported_llama[0].task["identity"]
    assert len(identity["weights_sha256"]) == 16 and len(identity["corpus_sha256"]) == 16
    assert identity["corpus"] == "stdlib-docs" and identity["revision"] is None  # a local folder
    assert identity["tokenizer"]["class"].startswith("Bert") and identity["tokenizer"]["vocab_size"] > 1000


def test_every_task_has_a_description(capsys):
    assert set(TASKS) <= set(TASK_DESCRIPTIONS)
    main(["tasks"])
    printed = capsys.readouterr().out
    assert all(f"{name}: {TASK_DESCRIPTIONS[name]}" in printed for name in TASKS)


def test_export_command_writes_both_folders(exported_llama, tiny_llama_dir, tmp_path, capsys):
    _, artifacts, _ = exported_llama
    artifact = artifacts / "rtn_group_size=32_torch-cpu.safetensors"
    assert main(["export", str(artifact), "--model", tiny_llama_dir, "--out", str(tmp_path)]) == 0
    assert (tmp_path / "gptq" / "config.json").is_file() and (tmp_path / "compressed-tensors" / "config.json").is_file()
    assert main(["export", str(artifact), "--model", tiny_llama_dir, "--out", str(tmp_path), "--to", "gguf"]) == 2
    assert "unknown export format 'gguf'" in capsys.readouterr().err
