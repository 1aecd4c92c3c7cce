"""A real local sweep through the CLI: runs, a failure that does not stop it, skips, retries,
status, and the report (terminal, HTML, markdown, CSV), merged across two machines."""
import csv
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from quantbench.cli.main import main
from quantbench.sweep import SweepOptions, plan_sweep
from quantbench.sweep.store import Store

from .conftest import CRASHING_TASK, FAILING_TASK, tiny_experiment


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    experiment = root / "experiment.yaml"
    cache = tmp_path_factory.getbasetemp() / "model-cache"
    experiment.write_text(tiny_experiment(str(cache), datasets=("wine", "breast_cancer"), extra_tasks=(FAILING_TASK,)))
    out = root / "out"
    code = main(["sweep", str(experiment), "--out", str(out), "--no-progress"])
    return experiment, out, code


def records(out):
    with Store(out / "store.sqlite") as store:
        return store.records()


def test_dry_run_lists_runs_and_writes_nothing(write_experiment, tmp_path, capsys):
    assert main(["sweep", str(write_experiment()), "--out", str(tmp_path / "dry"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "2 runs, 2 to run" in printed and "dataset=wine" not in printed and "/ptq-dynamic" not in printed
    assert "  run " in printed and "ptq-dynamic" in printed
    assert not (tmp_path / "dry").exists()


def test_every_run_is_stored_once_with_provenance_and_a_failure_does_not_stop_the_sweep(sweep):
    _, out, code = sweep
    assert code == 1  # some runs failed
    rows = records(out)
    assert len(rows) == 6 == len({r["run_key"] for r in rows})
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and all("fails on purpose" in r["error"] and r["traceback"] for r in failed)
    for r in rows:
        assert r["env"]["host"] and r["env"]["cpu"] and r["code_version"] and r["hardware"]
        assert r["config"]["version"] == 1 and r["spec"]["seed"] == 0 and r["executor"] == "local"
        assert r["started_at"] < r["finished_at"] and r["seconds"] > 0
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["row"]["latency"][0]["median_ms"] > 0 and r["row"]["size_bytes"] > 0 for r in ok)


def test_a_second_sweep_skips_stored_runs_and_retries_failed_ones_on_request(sweep, capsys):
    experiment, out, _ = sweep
    before = {r["run_key"]: r["finished_at"] for r in records(out)}
    assert main(["sweep", str(experiment), "--out", str(out), "--no-progress"]) == 0
    assert "0 finished now" in capsys.readouterr().out
    assert {r["run_key"]: r["finished_at"] for r in records(out)} == before
    assert main(["sweep", str(out), "--resume", "--retry-failed", "--no-progress"]) == 1
    attempts = {r["run_id"]: r["attempts"] for r in records(out)}
    assert sorted(attempts.values()) == [1, 1, 1, 1, 2, 2]


def test_status_counts_done_and_failed(sweep, capsys):
    _, out, _ = sweep
    assert main(["sweep", "status", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "6 runs: 4 done, 2 failed" in printed and "fails on purpose" in printed and "--retry-failed" in printed


def test_an_unknown_executor_on_the_command_line_is_refused_before_anything_runs(write_experiment, tmp_path, capsys):
    assert main(["sweep", str(write_experiment()), "--out", str(tmp_path / "new"), "--executor", "slrum"]) == 2
    assert "unknown executor 'slrum' (did you mean 'slurm'?)" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_resume_needs_something_to_resume(write_experiment, tmp_path, capsys):
    assert main(["sweep", str(write_experiment()), "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "nothing to resume" in capsys.readouterr().err


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.external = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.external += [v for k, v in attrs if k in ("src", "href") and v and "//" in v]

    def handle_data(self, data):
        self.text.append(data)


def test_report_merges_two_machines_into_tables_html_markdown_and_csv(sweep, tmp_path, capsys):
    _, out, _ = sweep
    other = tmp_path / "other.sqlite"
    with Store(other) as store:  # the same runs as if measured on a second machine
        for r in records(out):
            env = {**(r["env"] or {}), "host": "gpu-node-7", "gpu": "NVIDIA H100"}
            store.put({**r, "env": env, "hardware": "NVIDIA H100 @ gpu-node-7"})
    assert main(["report", str(out), str(other), "--out", str(tmp_path / "report")]) == 0
    printed = " ".join(capsys.readouterr().out.split())  # a title folds to its table's width
    assert printed.count("NVIDIA H100 @ gpu-node-7") >= 3 and "tabular dataset=wine" in printed
    html = (tmp_path / "report" / "report.html").read_text()
    page = _Page()
    page.feed(html)
    text = "".join(page.text)
    assert page.tags.count("section") >= 6 + 2  # 3 tasks x 2 machines, machines, runs
    assert page.tags.count("svg") == 2 * 2  # one figure (two Pareto plots) per task with successful runs, per machine
    assert page.external == [] and "script" in page.tags
    for r in records(out):
        assert r["run_id"] in text
    assert "gpu-node-7" in text and "fails on purpose" in text
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.count("## ") == 6 and "| ptq-dynamic |" in md
    with (tmp_path / "report" / "report.csv").open() as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 12  # 6 runs x 2 machines, one batch size
    for line in lines:
        assert line["run_id"] and line["hardware"] and line["status"] in ("ok", "failed")
        assert bool(line["quality_ci_low"]) == bool(line["median_ms"]) == (line["status"] == "ok")


def test_report_filters_by_method_and_machine(sweep, tmp_path, capsys):
    _, out, _ = sweep
    assert main(["report", str(out), "--method", "dynamic", "--task", "wine", "--out", str(tmp_path)]) == 0
    with (tmp_path / "report.csv").open() as f:
        assert {r["method"] for r in csv.DictReader(f)} == {"ptq-dynamic"}
    assert main(["report", str(out), "--machine", "no-such-machine", "--out", str(tmp_path)]) == 2
    assert "no runs" in capsys.readouterr().err


@pytest.mark.skipif(not shutil.which("chromium"), reason="chromium not installed: HTML checked by parsing only")
def test_report_renders_in_headless_chromium(sweep, tmp_path):
    _, out, _ = sweep
    assert main(["report", str(out), "--out", str(tmp_path)]) == 0
    def dom(query: str = "") -> str:
        return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                               (tmp_path / "report.html").as_uri() + query], capture_output=True, text=True,
                              timeout=120).stdout

    page = dom()
    assert page.count("<svg") == 2 and "Pareto" in page and "dataset=wine" in page and "display: none" not in page
    filtered = dom("?method=dynamic")  # the inline script ran: other methods' rows are hidden
    assert filtered.count('style="display: none;"') == 3 + 3  # the fp32 rows of 3 task tables and of all runs


def test_a_run_that_kills_its_process_is_recorded_and_the_sweep_goes_on(write_experiment, cache_dir, tmp_path):
    """Runs execute in child processes: one killed like the out-of-memory killer would (SIGKILL) is a
    failed record with the reason, and the next runs still run."""
    experiment = write_experiment(tiny_experiment(cache_dir, methods=("fp32",), extra_tasks=(CRASHING_TASK,)))
    out = tmp_path / "out"
    assert main(["sweep", str(experiment), "--out", str(out), "--no-progress"]) == 1
    by_task = {r["spec"]["task"]: r for r in records(out)}
    crashed = by_task[CRASHING_TASK]
    assert crashed["status"] == "failed"
    assert crashed["error"] == "the run's process was killed by SIGKILL without a result"
    assert crashed["executor"] == "local" and crashed["started_at"] < crashed["finished_at"]
    assert by_task["tabular"]["status"] == "ok"


def test_a_resumed_sweep_runs_where_it_ran_not_where_the_file_says(tmp_path, capsys):
    """--executor is stored with the sweep: resuming the folder (what a failure suggests) runs there again."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(f"tasks: ['{FAILING_TASK}']\nmethods: [fp32]\nexecutor: slurm\n")
    out = tmp_path / "out"
    assert main(["sweep", str(experiment), "--out", str(out), "--executor", "local", "--no-progress"]) == 1
    assert main(["sweep", str(out), "--resume", "--retry-failed", "--no-progress"]) == 1
    assert "submitted" not in capsys.readouterr().out
    assert [(r["executor"], r["attempts"]) for r in records(out)] == [("local", 2)]
    assert plan_sweep(str(out), SweepOptions(resume=True)).executor == "local"
    assert plan_sweep(str(experiment), SweepOptions(out=str(out))).executor == "slurm"  # a new start: the file's
    assert plan_sweep(str(out), SweepOptions(executor="slurm")).executor == "slurm"  # --executor wins
