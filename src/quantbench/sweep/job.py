"""Execute one run and describe it as a record: the result row plus full provenance.
The same function runs in a child process of the local executor and inside a SLURM job."""
import dataclasses
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from ..api import compare
from ..env import capture_env
from .runs import Run


def execute_run(run: Run, sweep: str, executor: str, threads: int | None = None) -> dict[str, Any]:
    """A record for the store; a run that raises is a failed record, never an exception."""
    spec = run.compare_spec(**({"threads": threads} if threads and not run.spec.get("threads") else {}))
    started, start = _now(), time.perf_counter()
    try:
        results = compare(spec)
        row, env, task_info = results.rows[0], results.env, results.task
        outcome = {"status": row.status, "error": row.error, "traceback": row.details.get("traceback"),
                   "row": dataclasses.asdict(row)}
    except Exception as e:  # a failed run is data: record it, the sweep goes on
        env, task_info = capture_env(spec.resolved_threads()), None
        outcome = {"status": "failed", "error": f"{type(e).__name__}: {e}",
                   "traceback": traceback.format_exc(limit=8), "row": None}
    return {**base_record(run, sweep, executor), **outcome, "env": env, "task_info": task_info,
            "hardware": hardware_label(env), "host": env.get("host"), "code_version": code_version(env),
            "spec": {**run.spec, "threads": spec.threads}, "started_at": started, "finished_at": _now(),
            "seconds": time.perf_counter() - start}


def run_to_file(run: dict[str, Any], sweep: str, results_dir: str, threads: int | None = None,
                executor: str = "slurm") -> str:
    """A job: run, then write <results_dir>/<run_key>.json atomically (the driver ingests it)."""
    record = execute_run(Run.from_dict(run), sweep, executor, threads)
    path = Path(results_dir) / f"{record['run_key']}.json"
    write_json_atomic(path, record)
    return str(path)


_CHILD = """import json, sys
from quantbench.sweep.job import run_to_file
run_to_file(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], executor="local")"""


def execute_in_child(run: Run, sweep: str) -> dict[str, Any]:
    """``execute_run`` in a fresh Python process, so that a run that crashes the interpreter
    (segfault, out-of-memory kill) is a failed record and not the end of the sweep. The child
    dies with this process (Linux), so a killed sweep leaves nothing running."""
    started = _now()
    with tempfile.TemporaryDirectory(prefix="quantbench-run-") as folder:
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(run.to_dict()), sweep, folder],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_die_with_parent)
        result = Path(folder) / f"{run.key}.json"
        if result.exists():
            return json.loads(result.read_text())
    tail = "\n".join(done.stderr.splitlines()[-30:]) or None
    error = f"the run's process {exit_description(done.returncode)} without a result"
    return {**result_lost(run, sweep, "local", error, tail), "started_at": started}


def result_lost(run: Run, sweep: str, executor: str, error: str, log_tail: str | None) -> dict[str, Any]:
    """The failed record of a run whose process ended (or never started) without writing its result."""
    return {**base_record(run, sweep, executor), "status": "failed", "error": error, "traceback": log_tail,
            "row": None, "env": None, "finished_at": _now()}


def exit_description(returncode: int) -> str:
    """'was killed by SIGSEGV' or 'exited with status 3'."""
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGKILL when the parent dies (elsewhere: nothing)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def base_record(run: Run, sweep: str, executor: str) -> dict[str, Any]:
    return {"run_key": run.key, "run_id": run.id, "sweep": sweep, "spec": run.spec, "config": run.config,
            "executor": executor, "job_id": slurm_job_id()}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def hardware_label(env: dict[str, Any] | None) -> str:
    """What a latency was measured on: GPU name or CPU model, thread count, host."""
    if not env:
        return "unknown machine"
    device = env.get("gpu") or f"{env.get('cpu')}, {env.get('threads')} threads"
    return f"{device} @ {env.get('host')}"


def code_version(env: dict[str, Any] | None) -> str | None:
    if not env:
        return None
    return f"quantbench {env.get('versions', {}).get('quantbench')} (git {env.get('git_sha')})"


def slurm_job_id() -> str | None:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID")


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
