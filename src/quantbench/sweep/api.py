"""``run_sweep``: an experiment file -> validated runs -> an executor -> one store, resumable."""
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from ..errors import UserError
from ..spec import spec_field
from .experiment import Experiment, check_executor, load_experiment
from .local import run_locally
from .runs import Run
from .slurm import settle_jobs, submit_runs
from .store import DONE, Store

STORE_NAME = "store.sqlite"
STORE_POINTER = "store-path.txt"  # written when --store puts the store outside the sweep folder
EXECUTOR_FILE = "executor.json"  # where the sweep ran: its --resume runs there too


@dataclass
class SweepOptions:
    out: str | None = spec_field(None, "sweep folder: store, result files, logs (default: sweeps/NAME)", "DIR")
    executor: str | None = spec_field(None, "local (one run at a time) or slurm; overrides the file's 'executor'",
                                      "NAME")
    store: str | None = spec_field(None, "SQLite store (default DIR/store.sqlite); keep it on local disk", "FILE")
    dry_run: bool = spec_field(False, "list the runs (and which are already in the store), run nothing")
    resume: bool = spec_field(False, "continue an interrupted sweep: EXPERIMENT may be its folder")
    rerun: bool = spec_field(False, "run again the runs already in the store")
    retry_failed: bool = spec_field(False, "run again the runs that failed (including SLURM timeouts)")
    wait: bool = spec_field(True, "slurm: wait for the jobs and ingest results as they arrive")
    progress: bool = spec_field(True, "show a progress bar")


@dataclass
class SweepPlan:
    experiment: Experiment
    folder: Path
    store: Path
    todo: list[Run]
    skipped: list[Run]
    in_store: dict[str, str]  # run key -> status, for the experiment's runs already stored
    executor: str  # --executor, else where the sweep ran (resuming), else the experiment file's
    queued: set[str] = field(default_factory=set)  # keys of the experiment's runs whose SLURM jobs are active


@dataclass
class SweepSummary:
    plan: SweepPlan
    finished: list[dict] = field(default_factory=list)  # {run_id, status, error} of runs finished now
    submitted: int = 0
    unfinished: int = 0  # runs left queued or running on SLURM when the driver returned
    interrupted: bool = False


def plan_sweep(target: str, options: SweepOptions) -> SweepPlan:
    """Validate the experiment and decide which runs to do. Finished SLURM results are collected
    into the store first, except in a dry run, which changes nothing."""
    experiment_file, given = _locate(target, options)
    executor = check_executor(options.executor) if options.executor else None
    experiment = load_experiment(experiment_file)
    folder = _checked_folder(given or Path(options.out or Path("sweeps") / experiment.name))
    store = store_path(folder, options.store)
    if options.resume and not store.exists():
        raise UserError(f"nothing to resume: no store at {store}")
    if store.is_dir():
        raise UserError(f"--store {store} is a folder; name the .sqlite file (new or existing)")
    resuming = options.resume or Path(target).is_dir()
    executor = executor or (resuming and stored_executor(folder)) or experiment.executor
    in_store, active = _stored_state(store, experiment, folder, settle=not options.dry_run)
    todo, skipped = [], []
    for run in experiment.runs:
        status = in_store.get(run.key)
        redo = status is None or options.rerun or (options.retry_failed and status not in DONE)
        (todo if redo and run.key not in active else skipped).append(run)
    queued = {r.key for r in experiment.runs} & active
    return SweepPlan(experiment, folder, store, todo, skipped, in_store, executor, queued)


def run_sweep(target: str, options: SweepOptions) -> SweepSummary:
    plan = plan_sweep(target, options)
    _save_sweep(plan, options)
    summary = SweepSummary(plan, unfinished=len(plan.queued))
    with Store(plan.store) as store:
        try:
            if plan.executor == "local":
                run_locally(plan.todo, store, plan.experiment.name, summary.finished, options.progress)
            elif plan.todo or plan.queued:
                _run_on_slurm(plan, store, summary, options)
        except KeyboardInterrupt:
            summary.interrupted = True
    return summary


def store_path(folder: Path, explicit: str | None = None) -> Path:
    if explicit:
        return Path(explicit)
    pointer = folder / STORE_POINTER
    return Path(pointer.read_text().strip()) if pointer.exists() else folder / STORE_NAME


def stored_executor(folder: Path) -> str | None:
    """Where the sweep in ``folder`` ran (None before its first run); its slurm options are in
    the experiment file kept in the folder."""
    path = folder / EXECUTOR_FILE
    return json.loads(path.read_text())["executor"] if path.is_file() else None


def saved_experiment(folder: Path) -> Path | None:
    return next((p for p in (folder / f"experiment{s}" for s in (".yaml", ".yml", ".toml")) if p.exists()), None)


def _locate(target: str, options: SweepOptions) -> tuple[Path, Path | None]:
    path = Path(target)
    if not path.is_dir():
        return path, Path(options.out) if options.out else None
    experiment = saved_experiment(path)
    if experiment is None:
        raise UserError(f"{path} is not a sweep folder (no experiment.yaml or experiment.toml in it)")
    return experiment, path


def _checked_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} is a file; the sweep folder (store, results, logs) must be a folder: "
                        f"name a new or existing one")
    return folder


def _stored_state(store: Path, experiment: Experiment, folder: Path, settle: bool) -> tuple[dict[str, str], set[str]]:
    """Statuses of the experiment's runs in the store, and the runs whose SLURM jobs are still active
    (after ingesting finished results, unless ``settle`` is false)."""
    if not store.exists():
        return {}, set()
    with Store(store) as s:
        jobs = {j["run_key"] for j in s.jobs()}
        active = set(settle_jobs(s, folder / "results")) if settle else jobs
        keys = {r.key for r in experiment.runs}
        return {k: v for k, v in s.statuses().items() if k in keys}, active


def _save_sweep(plan: SweepPlan, options: SweepOptions) -> None:
    """The experiment file (with its slurm options), the executor and the store's path, kept in
    the sweep folder so that 'quantbench sweep DIR --resume' continues the same sweep in the same place."""
    try:
        plan.folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the sweep folder {plan.folder}: {e.strerror}; choose another --out") from None
    source = Path(plan.experiment.file)
    copy = plan.folder / f"experiment{source.suffix}"
    if not (copy.exists() and copy.samefile(source)):
        old = saved_experiment(plan.folder)
        if old:
            old.unlink()
        shutil.copyfile(source, copy)
    if options.store:
        (plan.folder / STORE_POINTER).write_text(str(Path(options.store).resolve()) + "\n")
    (plan.folder / EXECUTOR_FILE).write_text(json.dumps({"executor": plan.executor}) + "\n")


def _run_on_slurm(plan: SweepPlan, store: Store, summary: SweepSummary, options: SweepOptions) -> None:
    """Submit the runs to do, then (unless --no-wait) wait for them and for the runs of this sweep
    that were already queued (submitted by a driver that was killed, say)."""
    resources = plan.experiment.slurm
    if plan.todo:
        job = submit_runs(plan.todo, plan.folder, plan.experiment.name, resources, store)
        summary.submitted = len(plan.todo)
        print(f"submitted {len(plan.todo)} runs to SLURM (job {job}); logs in {plan.folder / 'slurm'}")
    if plan.queued:
        print(f"{len(plan.queued)} runs of this sweep are already queued or running on SLURM")
    if options.wait:
        keys = {r.key for r in plan.todo} | plan.queued
        _wait_for_jobs(store, plan.folder / "results", keys, resources.poll_seconds, options.progress)
        summary.finished = _finished(store, keys)
    summary.unfinished = len(plan.todo) + len(plan.queued) - len(summary.finished)


def _finished(store: Store, keys: set[str]) -> list[dict]:
    """{run_id, status, error} of each of these runs in the store."""
    records = store.records(f"WHERE run_key IN ({','.join('?' * len(keys))})", tuple(keys))
    return [{"run_id": r["run_id"], "status": r["status"], "error": r["error"]} for r in records]


def _wait_for_jobs(store: Store, results: Path, keys: set[str], poll_seconds: float, progress: bool) -> None:
    bar = tqdm(total=len(keys), desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    while True:
        active = settle_jobs(store, results)
        pending = keys & set(active)
        bar.n = len(keys) - len(pending)
        states = [active[k] for k in pending]
        bar.set_postfix_str(", ".join(f"{states.count(s)} {s.lower()}" for s in sorted(set(states))), refresh=True)
        if not pending:
            break
        time.sleep(poll_seconds)
    bar.close()
