"""The command as a user meets it: results files, schema, errors as one line."""
import json

import pytest

from quantbench.cli.main import main
from quantbench.results import STATUSES, Results

ROW_KEYS = {"method": str, "status": str, "accuracy": float, "accuracy_ci": list, "size_bytes": int,
            "latency": list, "kernel": str, "simulated": bool}


@pytest.fixture(scope="module")
def compare_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    code = main(["compare", "--hidden", "64", "--batch-sizes", "1,8", "--no-progress", "--out", str(out),
                 "--cache-dir", str(cache), "--methods", "fp32,ptq-dynamic,ptq-static,qat:epochs=2"])
    assert code == 0
    return out


def test_compare_writes_every_output(compare_out):
    for name in ("results.json", "results.csv", "results.md", "tradeoffs.png"):
        assert (compare_out / name).stat().st_size > 0
    assert len(list((compare_out / "artifacts").glob("*.pt"))) == 4


def test_results_json_schema(compare_out):
    data = json.loads((compare_out / "results.json").read_text())
    assert {"env", "rows", "task", "schema_version"} <= set(data)
    for key in ("cpu", "cpu_flags", "threads", "versions", "git_sha", "int8_engine"):
        assert key in data["env"]
    assert [r["method"] for r in data["rows"]] == ["fp32", "ptq-dynamic", "ptq-static", "qat:epochs=2"]
    for row in data["rows"]:
        assert row["status"] in STATUSES and row["status"] == "ok" and row["error"] is None
        for key, kind in ROW_KEYS.items():
            assert isinstance(row[key], kind), key
        assert row["simulated"] is False
        assert 0 <= row["accuracy_ci"][0] <= row["accuracy"] <= row["accuracy_ci"][1] <= 1
        assert [l["batch_size"] for l in row["latency"]] == [1, 8]
        for lat in row["latency"]:
            assert 0 < lat["p10_ms"] <= lat["median_ms"] <= lat["p90_ms"]
    assert Results.from_dict(data).to_dict()["rows"] == data["rows"]


def test_int8_rows_are_smaller_than_fp32(compare_out):
    rows = {r["method"]: r for r in json.loads((compare_out / "results.json").read_text())["rows"]}
    for name in ("ptq-dynamic", "ptq-static"):
        assert rows[name]["size_bytes"] < rows["fp32"]["size_bytes"]  # tiny model: format overhead dominates


def test_csv_has_one_line_per_row_and_batch(compare_out):
    lines = (compare_out / "results.csv").read_text().strip().splitlines()
    assert len(lines) == 1 + 4 * 2


@pytest.mark.parametrize("args, message", [
    (["--methods", "fp32,ptq-dynamc"], "did you mean 'ptq-dynamic'"),
    (["--data", "/nonexistent.csv", "--target", "y"], "not found"),
    (["--task", "cnnn"], "did you mean 'cnn'"),
])
def test_user_mistakes_are_one_line_errors(args, message, capsys):
    assert main(["compare", "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_malformed_csv_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("a,b,label\n1,2,0\n3\n")
    assert main(["compare", "--no-progress", "--data", str(path), "--target", "label"]) == 2
    assert "malformed" in capsys.readouterr().err


def test_bad_batch_sizes_are_rejected_by_argparse(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["compare", "--batch-sizes", "1,x"])
    assert exc.value.code == 2


def test_methods_lists_every_method_with_options(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("fp32", "ptq-dynamic", "ptq-static", "qat", "observer=histogram"):
        assert name in out


def test_a_failing_method_is_recorded_and_the_rest_continue(tmp_path, cache_dir):
    task_file = tmp_path / "branchy.py"
    task_file.write_text(
        "import numpy as np, torch\nfrom torch import nn\nfrom quantbench import UserTask\n"
        "class Branchy(nn.Module):\n"
        "    def __init__(self):\n        super().__init__(); self.a = nn.Linear(4, 16); self.b = nn.Linear(16, 2)\n"
        "    def forward(self, x):\n"
        "        h = self.a(x)\n"
        "        if h.sum() > 0:  # data-dependent control flow: FX tracing cannot handle it\n"
        "            h = h.relu()\n"
        "        return self.b(h)\n"
        "def build():\n"
        "    rng = np.random.default_rng(0); x = rng.normal(size=(200, 4)).astype('float32')\n"
        "    return UserTask(build_model=Branchy, x=x, y=(x[:, 0] > 0).astype(int))\n"
    )
    from quantbench import CompareSpec, compare

    results = compare(CompareSpec(task=f"{task_file}:build", methods="fp32,ptq-static,ptq-dynamic",
                                  batch_sizes=(1,), memory=False, progress=False, cache_dir=cache_dir))
    status = {r.method: r.status for r in results.rows}
    assert status == {"fp32": "ok", "ptq-static": "failed", "ptq-dynamic": "ok"}
    failed = results.rows[1]
    assert "symbolic" in failed.error.lower() or "trace" in failed.error.lower(), failed.error


@pytest.mark.parametrize("command", [[], ["compare"], ["sweep"], ["sweep", "status"], ["report"]])
def test_help_prints_for_every_command(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    assert f"usage: {' '.join(['quantbench', *command])} " in capsys.readouterr().out


def test_sweep_status_is_a_command_of_its_own(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "status", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "DIR" in text and "not started" in text and "--store FILE" in text and "--dry-run" not in text
    with pytest.raises(SystemExit) as exc:
        main(["sweep", "status"])
    assert exc.value.code == 2 and "required: DIR" in capsys.readouterr().err
