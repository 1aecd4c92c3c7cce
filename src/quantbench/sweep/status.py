"""``quantbench sweep status``: how far a sweep is: done, failed, running, pending, not started."""
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from .api import saved_experiment, store_path
from .experiment import load_experiment
from .slurm import settle_jobs
from .store import DONE, Store

STATES = ("done", "failed", "running", "pending", "not started")


@dataclass
class SweepStatus:
    name: str
    folder: Path
    store: Path
    counts: Counter
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run id, error)
    active: list[tuple[str, str, str]] = field(default_factory=list)  # (run id, job id, queue state)
    others: int = 0  # runs in the store that the experiment file no longer lists


def sweep_status(folder: str | Path, store: str | None = None) -> SweepStatus:
    """Collects finished SLURM results first (and records jobs that died), then counts."""
    folder = Path(folder)
    experiment_file = saved_experiment(folder)
    if experiment_file is None:
        raise UserError(f"{folder} is not a sweep folder (no experiment.yaml or experiment.toml in it)")
    experiment = load_experiment(experiment_file, validate_inputs=False)
    path = store_path(folder, store)
    if not path.exists():  # reading must not create an empty store
        raise UserError(f"no store at {path}" + (" (--store names the .sqlite file that 'quantbench sweep --store' "
                                                  "wrote)" if store else ": nothing of this sweep has run"))
    with Store(path) as s:
        active = settle_jobs(s, folder / "results")
        jobs = {j["run_key"]: j["job_id"] for j in s.jobs()}
        errors = {r["run_key"]: r["error"] for r in s.records("WHERE status='failed'")}
        statuses = s.statuses()
    status = SweepStatus(experiment.name, folder, path, Counter())
    for run in experiment.runs:
        state = _state(statuses.get(run.key), active.get(run.key))
        status.counts[state] += 1
        if state == "failed":
            status.failed.append((run.id, errors.get(run.key) or ""))
        elif run.key in active:
            status.active.append((run.id, jobs.get(run.key, "?"), active[run.key]))
    status.others = len(set(statuses) - {r.key for r in experiment.runs})
    return status


def _state(stored: str | None, queue: str | None) -> str:
    if queue is not None:
        return "pending" if queue == "PENDING" else "running"
    if stored is None:
        return "not started"
    return "done" if stored in DONE else "failed"
