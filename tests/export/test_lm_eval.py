"""``--lm-eval-tasks``: lm-evaluation-harness runs on each LM row's loaded model through HFLM, offline, on a
small multiple-choice task defined here over a local JSONL file; its metrics and stderr land in the row."""
import json

import pytest

from quantbench import CompareSpec, compare
from quantbench.export.lm_eval import metrics_with_stderr, task_names

pytest.importorskip("lm_eval")

DOCS = [{"question": f"The number after {i} is", "choices": [f" {i + 1}", f" {i + 7}"][::1 - 2 * (i % 2)],
         "answer": i % 2} for i in range(8)]
TASK = """task: quantbench_next_number
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""


@pytest.fixture
def local_task(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    data = tmp_path / "next_number.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    path = tmp_path / "next_number.yaml"
    path.write_text(TASK.format(data=data))
    return path


def test_lm_eval_metrics_with_stderr_are_added_to_each_lm_row(tiny_llama_dir, local_task, tmp_path):
    results = compare(CompareSpec(task="lm", model=tiny_llama_dir, methods="fp32,rtn:group_size=32", seq_len=32,
                                  eval_samples=2, batch_sizes=(1,), memory=False, progress=False,
                                  lm_eval_tasks=str(local_task), lm_eval_limit=6, cache_dir=str(tmp_path)))
    for row in results.rows:
        assert row.status == "ok", row.error
        evaluated = row.details["lm_eval"]
        acc = evaluated["quantbench_next_number"]["acc"]
        assert 0 <= acc["value"] <= 1 and isinstance(acc["stderr"], float) and acc["stderr"] >= 0
        assert evaluated["_n_samples"]["quantbench_next_number"]["effective"] == 6


def test_task_files_and_names_mix(local_task):
    names, include = task_names(f"hellaswag, {local_task}")
    assert names == ["hellaswag", "quantbench_next_number"] and include == [str(local_task.parent.resolve())]


def test_metrics_pair_each_value_with_its_stderr():
    values = {"alias": "t", "acc,none": 0.5, "acc_stderr,none": 0.1, "acc_norm,none": 0.25,
              "acc_norm_stderr,none": "N/A", "exact_match,strict": 1.0, "exact_match_stderr,strict": 0.0}
    assert metrics_with_stderr(values) == {"acc": {"value": 0.5, "stderr": 0.1},
                                           "acc_norm": {"value": 0.25, "stderr": None},
                                           "exact_match,strict": {"value": 1.0, "stderr": 0.0}}
