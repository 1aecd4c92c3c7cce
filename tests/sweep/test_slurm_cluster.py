"""Integration with a real SLURM cluster (scripts/slurm-local.sh starts one on localhost; CI does).
A small sweep goes out as a job array through submitit; every result must reach the store with
its provenance, including runs that fail on purpose: one raises, one is killed without a word."""
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from quantbench.api import compare
from quantbench.cli.main import main
from quantbench.spec import CompareSpec
from quantbench.sweep import sweep_status
from quantbench.sweep.store import Store

from .conftest import CRASHING_TASK, FAILING_TASK, read_store, tiny_experiment

SLURM_TAIL = """executor: slurm
slurm:
  cpus_per_task: 1
  array_parallelism: 2
  time_min: 5
  poll_seconds: 1
"""


def slurm_unavailable() -> str | None:
    if not (shutil.which("sbatch") and shutil.which("sinfo")):
        return "SLURM is not installed here (no sbatch/sinfo); 'scripts/slurm-local.sh start' sets up a local cluster"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s: the SLURM controller is not running"
    if out.returncode != 0:
        return f"sinfo failed: {out.stderr.strip() or out.stdout.strip()}"
    if not any(s.startswith(("idle", "mix", "alloc", "comp")) for s in out.stdout.split()):
        return f"no SLURM node is up (sinfo says: {' '.join(out.stdout.split()) or 'nothing'})"
    return None


UNAVAILABLE = slurm_unavailable()
pytestmark = pytest.mark.skipif(UNAVAILABLE is not None, reason=str(UNAVAILABLE))


RESOURCES = SLURM_TAIL.removeprefix("executor: slurm\n")  # the slurm section alone


@pytest.fixture
def out(tmp_path, cache_dir):
    # Train the shared fp32 model first, so parallel jobs only read the cache.
    compare(CompareSpec(dataset="wine", hidden=(16,), batch_sizes=(1,), methods="fp32", memory=False,
                        progress=False, cache_dir=cache_dir))
    out = tmp_path / "out"
    yield out
    with Store(out / "store.sqlite") as store:  # never leave jobs behind
        left = [j["job_id"] for j in store.jobs()]
    if left:
        subprocess.run(["scancel", *left], check=False)


@pytest.fixture
def sweep_dir(tmp_path, cache_dir, out):
    experiment = tmp_path / "experiment.yaml"
    tasks = (FAILING_TASK, CRASHING_TASK)  # one raises, one is killed without a word
    experiment.write_text(tiny_experiment(cache_dir, methods=("ptq-dynamic",), extra_tasks=tasks, tail=SLURM_TAIL,
                                          threads=0))  # 0: the job pins it to cpus_per_task
    return experiment, out


def test_sweep_through_slurm_collects_every_result_and_failure(sweep_dir, capsys):
    experiment, out = sweep_dir
    driver = subprocess.run([sys.executable, "-m", "quantbench.cli.main", "sweep", str(experiment), "--out", str(out),
                             "--no-progress"], capture_output=True, text=True, timeout=300)
    assert driver.returncode == 1, driver.stdout + driver.stderr  # 1: some runs failed, on purpose
    assert "submitted 3 runs to SLURM" in driver.stdout
    with Store(out / "store.sqlite") as store:
        rows = store.records()
        assert store.jobs() == []
    assert len(rows) == 3
    for r in rows:
        assert r["executor"] == "slurm" and "_" in r["job_id"] and r["config"]["version"] == 1
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == 1 and all(r["env"]["threads"] == 1 and r["row"]["latency"] for r in ok)
    assert all(r["hardware"] and r["env"]["host"] and r["code_version"] for r in ok)
    raised = [r for r in rows if "fails on purpose" in (r["error"] or "")]
    assert len(raised) == 1 and all(r["env"] and r["traceback"] for r in raised)
    killed = [r for r in rows if "without a result" in (r["error"] or "")]
    assert len(killed) == 1 and all(r["status"] == "failed" and "log:" in r["error"] for r in killed)

    assert main(["sweep", str(out), "--resume", "--retry-failed", "--no-wait", "--no-progress"]) == 0
    assert "submitted 2 runs" in capsys.readouterr().out
    deadline = time.monotonic() + 240
    while (status := sweep_status(out)).active and time.monotonic() < deadline:
        time.sleep(1)
    assert dict(status.counts) == {"done": 1, "failed": 2}, status
    with Store(out / "store.sqlite") as store:
        assert sorted(r["attempts"] for r in store.records()) == [1, 2, 2]
    assert main(["report", str(out)]) == 0
    assert (out / "report.html").read_text().count("<svg") == 1


def driver(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "quantbench.cli.main", "sweep", *args, "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def jobs_of(store_file) -> dict[str, str]:
    """run key -> job id of the jobs the store expects."""
    return read_store(store_file, "SELECT run_key, job_id FROM jobs")


def test_a_killed_driver_is_resumed_on_the_cluster_with_nothing_lost_or_run_twice(tmp_path, cache_dir, out, capsys):
    """The file says nothing of SLURM; --executor slurm does. The driver is SIGKILLed once its jobs are
    queued, and one job is dropped from the store as if the kill had landed between sbatch and recording
    it. The resubmit command a failure suggests runs on the cluster again, submits nothing twice and
    collects every run, each with its job id."""
    experiment = tmp_path / "experiment.yaml"
    experiment.write_text(tiny_experiment(cache_dir, methods=("fp32", "ptq-dynamic", "ptq-static"), tail=RESOURCES))
    sweep = driver(str(experiment), "--out", str(out), "--executor", "slurm")
    deadline = time.monotonic() + 120
    while len(jobs := jobs_of(out / "store.sqlite")) < 3 and sweep.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    sweep.send_signal(signal.SIGKILL)
    assert sweep.wait() == -signal.SIGKILL, sweep.stdout.read()
    unrecorded = next(iter(jobs))
    with sqlite3.connect(out / "store.sqlite") as db:
        db.execute("DELETE FROM jobs WHERE run_key=?", (unrecorded,))

    assert main(["sweep", str(out), "--resume", "--retry-failed", "--no-progress"]) == 0
    assert "submitted" not in capsys.readouterr().out  # every run was already on the cluster
    with Store(out / "store.sqlite") as store:
        rows, left = store.records(), store.jobs()
    assert left == [] and len(rows) == 3 == len({r["run_key"] for r in rows})
    assert {r["run_key"]: r["job_id"] for r in rows} == jobs  # the jobs first submitted, the unrecorded one too
    assert all(r["status"] == "ok" and r["executor"] == "slurm" and r["attempts"] == 1 for r in rows)
