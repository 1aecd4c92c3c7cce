"""Acceptance: a 12-run sweep (2 tasks x 3 methods x 2 seeds) killed with SIGKILL halfway, then
resumed: every run present exactly once, and no completed run done again."""
import signal
import subprocess
import sys
import time

from quantbench.cli.main import main
from quantbench.sweep.store import Store

from .conftest import read_store, tiny_experiment


def stored(path) -> dict[str, str]:
    return read_store(path, "SELECT run_key, finished_at FROM runs")


def test_sigkill_halfway_then_resume_finishes_without_redoing_runs(tmp_path, cache_dir, capsys):
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(tiny_experiment(cache_dir, datasets=("wine", "breast_cancer"), seeds=(0, 1),
                                          methods=("fp32", "ptq-dynamic", "ptq-static")))
    out, store = tmp_path / "out", tmp_path / "out" / "store.sqlite"
    sweep = subprocess.Popen([sys.executable, "-m", "quantbench.cli.main", "sweep", str(experiment), "--out", str(out),
                              "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(stored(store)) < 4 and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    before = stored(store)
    assert sweep.returncode == -signal.SIGKILL, sweep.stderr.read().decode()[-2000:]
    assert 1 <= len(before) < 12, f"the kill should land mid-sweep; {len(before)} runs were stored"

    assert main(["sweep", str(out), "--resume", "--no-progress"]) == 0
    assert f"{12 - len(before)} finished now" in capsys.readouterr().out
    with Store(store) as s:
        rows = s.records()
    assert len(rows) == 12 == len({r["run_key"] for r in rows})
    assert all(r["status"] == "ok" and r["attempts"] == 1 for r in rows)
    after = {r["run_key"]: r["finished_at"] for r in rows}
    assert {k: after[k] for k in before} == before  # completed runs were not redone
