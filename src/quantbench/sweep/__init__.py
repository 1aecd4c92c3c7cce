"""Sweeps: an experiment file -> runs (one CompareSpec with one method each) -> an executor
(local, SLURM) -> one SQLite store, resumable after any crash."""
from .api import SweepOptions, SweepPlan, SweepSummary, plan_sweep, run_sweep
from .experiment import Experiment, load_experiment
from .runs import Run
from .status import SweepStatus, sweep_status
from .store import Store

__all__ = ["Experiment", "Run", "Store", "SweepOptions", "SweepPlan", "SweepStatus", "SweepSummary",
           "load_experiment", "plan_sweep", "run_sweep", "sweep_status"]
