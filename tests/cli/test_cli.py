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


@pytest.fixture
def sweep_with_store_elsewhere(tmp_path):
    """A sweep folder (its experiment file: two runs) whose store, holding the first run as done, is
    kept outside it, as 'quantbench sweep --store FILE' leaves them; no run is measured."""
    from quantbench.sweep import load_experiment
    from quantbench.sweep.store import Store

    from ..sweep.conftest import tiny_experiment

    folder = tmp_path / "sweep"
    folder.mkdir()
    (folder / "experiment.yaml").write_text(tiny_experiment(str(tmp_path / "cache")))
    run = load_experiment(folder / "experiment.yaml").runs[0]
    store = tmp_path / "elsewhere" / "exp.sqlite"
    store.parent.mkdir()
    with Store(store) as s:
        s.put({"run_key": run.key, "run_id": run.id, "sweep": "tiny", "status": "ok", "error": None,
               "spec": run.spec, "config": run.config, "row": {"method": "fp32", "task": "tabular", "quality": 0.9},
               "env": {"host": "h", "cpu": "c"}, "hardware": "c @ h", "finished_at": "2026-01-01T00:00:00"})
    return folder, store


def test_sweep_status_reads_a_store_kept_outside_the_folder(sweep_with_store_elsewhere, capsys):
    folder, store = sweep_with_store_elsewhere
    assert main(["sweep", "status", str(folder), "--store", str(store)]) == 0
    assert "2 runs: 1 done, 1 not started" in capsys.readouterr().out


def test_sweep_status_refuses_a_store_that_does_not_exist(sweep_with_store_elsewhere, tmp_path, capsys):
    folder, _ = sweep_with_store_elsewhere
    missing = tmp_path / "elsewhere" / "typo.sqlite"
    assert main(["sweep", "status", str(folder), "--store", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"no store at {missing}" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not missing.exists() and not (folder / "store.sqlite").exists()  # no empty store made instead


def test_sweep_status_of_a_folder_without_a_store_creates_none(sweep_with_store_elsewhere, capsys):
    folder, _ = sweep_with_store_elsewhere  # no store-path.txt: the default DIR/store.sqlite does not exist
    assert main(["sweep", "status", str(folder)]) == 2
    assert "nothing of this sweep has run" in capsys.readouterr().err
    assert not (folder / "store.sqlite").exists()


def test_sweep_status_still_takes_the_folder_as_out(sweep_with_store_elsewhere, capsys):
    folder, store = sweep_with_store_elsewhere
    (folder / "store-path.txt").write_text(f"{store}\n")  # what 'quantbench sweep --store' remembers
    assert main(["sweep", "status", "--out", str(folder)]) == 0
    assert "2 runs: 1 done, 1 not started" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["sweep", "--store", "F", "status", "DIR"],
     "'status' comes right after 'sweep': quantbench sweep status DIR [--store FILE]"),
    (["sweep", "status"], "which sweep? usage: quantbench sweep status DIR [--store FILE]"),
    (["sweep", "status", "--store", "F"], "which sweep? usage: quantbench sweep status DIR [--store FILE]"),
])
def test_sweep_status_called_the_wrong_way_says_how_to_call_it(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no store 'F', no sweep folder
