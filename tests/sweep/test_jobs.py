"""The SLURM job path without a cluster: a job's result file, its ingestion, and jobs that die."""
import dataclasses
import json

import pytest

from quantbench.sweep import load_experiment
from quantbench.sweep import slurm as slurm_executor
from quantbench.sweep.ingest import ingest_results
from quantbench.sweep.job import run_to_file
from quantbench.sweep.store import Store

from .conftest import FAILING_TASK


@pytest.fixture
def runs(write_experiment):
    return load_experiment(write_experiment(methods=("ptq-dynamic",), extra_tasks=(FAILING_TASK,))).runs


def job_entry(run, job_id, log_dir):
    return {"run_key": run.key, "run_id": run.id, "job_id": job_id, "submitted_at": "t", "log_dir": str(log_dir),
            "sweep": "tiny", "run": run.to_dict()}


def test_job_writes_a_result_file_that_ingest_moves_into_the_store(runs, tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "41")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    results = tmp_path / "results"
    results.mkdir()
    for run in runs:
        run_to_file(run.to_dict(), "tiny", str(results), threads=1)
    assert sorted(p.name for p in results.iterdir()) == sorted(f"{r.key}.json" for r in runs)
    with Store(tmp_path / "s.sqlite") as store:
        assert ingest_results(store, results) == 2
        assert ingest_results(store, results) == 0
        by_status = {r["status"]: r for r in store.records()}
    ok, failed = by_status["ok"], by_status["failed"]
    assert ok["job_id"] == "41_0" and ok["executor"] == "slurm"
    assert ok["spec"]["threads"] == 1 and ok["env"]["threads"] == 1  # latency measured on the cores asked for
    assert ok["row"]["latency"] and ok["config"]["version"] == 1 and ok["code_version"].startswith("quantbench")
    assert "fails on purpose" in failed["error"] and failed["env"]["host"]
    assert len(list((results / "ingested").glob("*.json"))) == 2


def test_jobs_that_leave_the_queue_without_a_result_are_recorded_as_failed(runs, tmp_path, monkeypatch):
    results, logs = tmp_path / "results", tmp_path / "slurm"
    results.mkdir()
    logs.mkdir()
    (logs / "9_1_0_log.err").write_text("slurmstepd: error: *** JOB 9 CANCELLED DUE TO TIME LIMIT ***\n")
    queue = {"9_0": ("RUNNING", "None"), "9_2": ("PENDING", "PartitionConfig")}
    cancelled = []
    monkeypatch.setattr(slurm_executor, "queue_states", lambda: queue)
    monkeypatch.setattr(slurm_executor, "_command", lambda argv: cancelled.extend(argv))
    stuck = dataclasses.replace(runs[0], key="stuck", id="stuck")
    with Store(tmp_path / "s.sqlite") as store:
        store.add_jobs([job_entry(r, f"9_{i}", logs) for i, r in enumerate([runs[0], runs[1], stuck])])
        monkeypatch.setattr(slurm_executor, "accounting_states", lambda ids: {"9_1": "TIMEOUT"})
        assert slurm_executor.settle_jobs(store, results) == {runs[0].key: "RUNNING"}
        lost, never = store.records()
        assert lost["run_key"] == runs[1].key and lost["status"] == "failed"
        assert "TIMEOUT" in lost["error"] and "time_min" in lost["error"] and "TIME LIMIT" in lost["traceback"]
        assert cancelled == ["scancel", "9_2"] and "could not start (PENDING: PartitionConfig)" in never["error"]
        monkeypatch.setattr(slurm_executor, "queue_states", lambda: None)  # controller down: decide nothing
        assert slurm_executor.settle_jobs(store, results) == {runs[0].key: "UNKNOWN"}
        late = {**lost, "status": "ok", "error": None, "finished_at": "later"}  # a result that arrives late wins
        (results / f"{runs[1].key}.json").write_text(json.dumps(late))
        slurm_executor.settle_jobs(store, results)
        assert store.statuses()[runs[1].key] == "ok"
