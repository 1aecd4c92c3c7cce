"""The SLURM executor: runs go out as job arrays through submitit (no sbatch templates); each job
writes its result file; the driver follows the queue, ingests results and records jobs that
died without one (timeout, out of memory, node failure, cancelled)."""
import datetime
import getpass
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..errors import UserError
from .ingest import ingest_results
from .job import result_lost, run_to_file
from .resources import SlurmResources
from .runs import Run
from .store import Store

ACTIVE = {"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "SIGNALING", "STAGE_OUT", "STOPPED", "RESV_DEL_HOLD"}
HINTS = {"TIMEOUT": "raise slurm.time_min", "OUT_OF_MEMORY": "raise slurm.mem_gb",
         "NODE_FAIL": "the node failed; resubmit with --retry-failed",
         "PENDING": "the cluster can never grant what the slurm section asks (partition, account, qos, cpus_per_task, "
                    "mem_gb, gpus_per_node, time_min, constraint); change it, then --resume --retry-failed"}
# Pending reasons that no amount of waiting resolves: the request exceeds what the cluster allows.
NEVER_STARTS = re.compile(r"(PartitionConfig|BadConstraints|PartitionNodeLimit|PartitionTimeLimit|InvalidAccount"
                          r"|InvalidQOS|(QOS|Assoc)Max\w*PerJob\w*)$")
MAX_ARRAY = 1000  # SLURM's default MaxArraySize is 1001


def submit_runs(runs: list[Run], sweep_dir: Path, sweep: str, resources: SlurmResources, store: Store) -> str | None:
    """Submit the runs as job arrays, recording each array's jobs in the store as soon as SLURM
    accepts it; returns the first array's job id."""
    if not shutil.which("sbatch"):
        raise UserError("--executor slurm needs SLURM's sbatch here (run the sweep on a login node); not found")
    import submitit

    folder, results = sweep_dir / "slurm", sweep_dir / "results"
    results.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    executor.update_parameters(**resources.submitit_parameters(f"quantbench-{sweep}"))
    first = None
    for chunk in (runs[i:i + MAX_ARRAY] for i in range(0, len(runs), MAX_ARRAY)):
        n = len(chunk)
        try:
            jobs = executor.map_array(run_to_file, [r.to_dict() for r in chunk], [sweep] * n, [str(results)] * n,
                                      [resources.cpus_per_task] * n)
        except Exception as e:  # sbatch's own message says what is wrong (partition, account, ...)
            raise UserError(f"SLURM refused the job array: {e}") from None
        store.add_jobs([_job_entry(run, job.job_id, sweep, folder) for run, job in zip(chunk, jobs)])
        first = first or jobs[0].job_id.split("_")[0]
    return first


def settle_jobs(store: Store, results_dir: Path) -> dict[str, str]:
    """Ingest finished results and record as failed the jobs that left the queue without one, or
    that SLURM can never start; returns the queue state (PENDING, RUNNING, ...) of each run whose
    job is still active."""
    ingest_results(store, results_dir)
    unrecorded = _unrecorded_submissions(store, Path(results_dir).parent / "slurm")
    if not (store.jobs() or unrecorded):
        return {}
    queue = queue_states()
    if queue is None:  # the controller did not answer: decide nothing
        return {j["run_key"]: "UNKNOWN" for j in store.jobs()}
    _adopt(store, {job_id: path for job_id, path in unrecorded.items() if queue.get(job_id, ("",))[0] in ACTIVE})
    ingest_results(store, results_dir)  # a job may have written its file just before leaving the queue
    jobs, active = store.jobs(), {}
    ended = _ended_jobs(jobs, queue)
    for job in jobs:
        if job["job_id"] in ended:
            store.put(lost_record(job, ended[job["job_id"]]))
        else:
            active[job["run_key"]] = queue[job["job_id"]][0]
    return active


def _unrecorded_submissions(store: Store, folder: Path) -> dict[str, Path]:
    """job id -> submitit's pickle of its run, for the jobs of this sweep's folder that the store knows
    nothing of: SLURM accepted them just before the driver was killed."""
    known = store.job_ids()
    pickles = {p.name.removesuffix("_submitted.pkl"): p for p in folder.glob("*_submitted.pkl")}
    return {job_id: path for job_id, path in pickles.items() if job_id not in known}


def _adopt(store: Store, pickles: dict[str, Path]) -> None:
    """Record the still active jobs that a killed driver had not recorded, so that they are waited for
    and not submitted a second time."""
    from submitit.core.utils import DelayedSubmission

    for job_id, path in pickles.items():
        run, sweep = DelayedSubmission.load(path).args[:2]
        store.add_jobs([_job_entry(Run.from_dict(run), job_id, sweep, path.parent)])


def _ended_jobs(jobs: list[dict[str, Any]], queue: dict[str, tuple[str, str]]) -> dict[str, str]:
    """job id -> final state, for jobs no longer active; jobs that can never start are cancelled."""
    stuck = {j["job_id"]: queue[j["job_id"]][1] for j in jobs
             if j["job_id"] in queue and NEVER_STARTS.match(queue[j["job_id"]][1])}
    if stuck:
        _command(["scancel", *stuck])
    gone = [j["job_id"] for j in jobs if j["job_id"] not in stuck and queue.get(j["job_id"], ("",))[0] not in ACTIVE]
    accounting = accounting_states([job_id for job_id in gone if job_id not in queue])
    ended = {job_id: queue.get(job_id, ("",))[0] or accounting.get(job_id) or "ENDED" for job_id in gone}
    return {**ended, **{job_id: f"PENDING: {reason}" for job_id, reason in stuck.items()}}


def queue_states() -> dict[str, tuple[str, str]] | None:
    """job id (array elements as 1234_5) -> (state, reason), for this user's jobs the controller remembers."""
    out = _command(["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T|%r"])
    if out is None:
        return None
    fields = (line.split("|") for line in out.splitlines() if line.count("|") == 2)
    return {job: (state, reason) for job, state, reason in fields}


def accounting_states(job_ids: list[str]) -> dict[str, str]:
    """Final states from sacct, where the cluster keeps accounting (many small ones do not)."""
    if not job_ids:
        return {}
    out = _command(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)]) or ""
    states = (line.split("|", 1) for line in out.splitlines() if "|" in line)
    return {job: state.split()[0] for job, state in states if state}


def lost_record(job: dict[str, Any], state: str) -> dict[str, Any]:
    """A failed record for a job that ended, or can never start, without writing its result."""
    log = _log_file(Path(job["log_dir"]), job["job_id"])
    what = "could not start" if state.startswith("PENDING") else "ended without a result"
    hint = HINTS.get(state.split(":")[0], "")
    error = f"SLURM job {job['job_id']} {what} ({state}){'; ' + hint if hint else ''}; log: {log or job['log_dir']}"
    return {**result_lost(Run.from_dict(job["run"]), job["sweep"], "slurm", error, _tail(log)), "job_id": job["job_id"]}


def _job_entry(run: Run, job_id: str, sweep: str, folder: Path) -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {"run_key": run.key, "run_id": run.id, "job_id": job_id, "submitted_at": now, "log_dir": str(folder),
            "sweep": sweep, "run": run.to_dict()}


def _command(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _log_file(folder: Path, job_id: str) -> Path | None:
    return next(iter(sorted(folder.glob(f"{job_id}_*log.err"))), None)


def _tail(path: Path | None, lines: int = 30) -> str | None:
    if path is None or not path.exists():
        return None
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
