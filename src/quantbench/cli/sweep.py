"""``quantbench sweep`` and ``quantbench report``: thin commands over quantbench.sweep and quantbench.report."""
import argparse
from pathlib import Path

from ..errors import UserError
from .spec_args import add_dataclass_options, spec_from_args

SWEEP_HELP = "run an experiment file (tasks x methods x options x seeds) locally or on SLURM, into one store"
SWEEP_EXAMPLES = """examples:
  quantbench sweep examples/sweep.yaml --dry-run        # validate, list the runs
  quantbench sweep examples/sweep.yaml                  # run them one at a time into sweeps/tabular-demo
  quantbench sweep sweeps/tabular-demo --resume         # continue after a crash; done runs are skipped
  quantbench sweep examples/sweep.yaml --executor slurm # same runs as a SLURM job array (see docs/sweeps.md)
  quantbench sweep status sweeps/tabular-demo           # done / failed / running / pending
  quantbench report sweeps/tabular-demo                 # tables, report.html, report.md, report.csv
"""
STATUS_HELP = "how far a sweep is: done, failed, running, pending and not started runs"
STATUS_DESCRIPTION = """How far a sweep is. Finished SLURM results are collected into the store first, and
jobs that left the queue without a result are recorded as failed; then each run of the sweep's
experiment file is counted as done, failed, running, pending (queued) or not started. Failed runs
are listed with their errors, running and pending ones with their SLURM job ids."""
REPORT_HELP = "compare the runs of one or more stores: tables, HTML with Pareto plots, markdown, CSV"


def add_sweep_commands(sub) -> None:
    from ..report.sweep_report import ReportOptions
    from ..sweep import SweepOptions

    sweep = sub.add_parser("sweep", help=SWEEP_HELP, description=SWEEP_HELP, epilog=SWEEP_EXAMPLES,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    sweep.add_argument("target", metavar="EXPERIMENT", help="experiment file (.yaml, .toml) or a sweep folder "
                                                            "to resume; 'quantbench sweep status DIR' shows progress")
    sweep.add_argument("misplaced", nargs="?", help=argparse.SUPPRESS)  # 'sweep --opt X status DIR': see _sweep
    add_dataclass_options(sweep, SweepOptions)
    sweep.set_defaults(func=_sweep)
    _add_status_command(sub)
    report = sub.add_parser("report", help=REPORT_HELP, description=REPORT_HELP)
    report.add_argument("stores", nargs="+", metavar="STORE", help="sweep folders or .sqlite stores")
    add_dataclass_options(report, ReportOptions)
    report.set_defaults(func=_report)


def _add_status_command(sub) -> None:
    """'quantbench sweep status DIR': a command of two words (see main._Commands)."""
    status = sub.add_parser("sweep status", help=STATUS_HELP, description=STATUS_DESCRIPTION)
    status.add_argument("folder", metavar="DIR", nargs="?", help="the sweep folder (what 'quantbench sweep --out' "
                                                                 "named)")
    status.add_argument("--out", dest="folder_option", metavar="DIR", help=argparse.SUPPRESS)  # older spelling
    status.add_argument("--store", metavar="FILE", help="the SQLite store (default: DIR/store.sqlite, or the one "
                                                        "'quantbench sweep --store' put elsewhere)")
    status.set_defaults(func=_status)


def _sweep(args) -> int:
    from ..sweep import SweepOptions, plan_sweep, run_sweep

    if args.target == "status" or args.misplaced:
        raise UserError(f"{'status' if args.target == 'status' else repr(args.misplaced)}: 'quantbench sweep' takes "
                        f"one EXPERIMENT; to see a sweep's progress, 'status' comes right after 'sweep': "
                        f"quantbench sweep status DIR [--store FILE]")
    options = spec_from_args(SweepOptions, args)
    if options.dry_run:
        _print_plan(plan_sweep(args.target, options))
        return 0
    summary = run_sweep(args.target, options)
    _print_summary(summary)
    if summary.interrupted:
        return 130
    return 1 if any(f["status"] == "failed" for f in summary.finished) else 0


def _status(args) -> int:
    from ..sweep import sweep_status
    from ..sweep.status import STATES

    folder = args.folder or args.folder_option
    if not folder:
        raise UserError("which sweep? usage: quantbench sweep status DIR [--store FILE]")
    status = sweep_status(folder, args.store)
    total = sum(status.counts.values())
    print(f"sweep '{status.name}' ({status.folder}): {total} runs: "
          + ", ".join(f"{status.counts[s]} {s}" for s in STATES if status.counts[s]))
    for run_id, job_id, state in status.active:
        print(f"  {state.lower():9} {run_id}  (job {job_id})")
    for run_id, error in status.failed:
        print(f"  failed    {run_id}: {error}")
    if status.others:
        print(f"  ({status.others} other runs in the store are not in the experiment file)")
    if status.failed:
        print(f"resubmit the failed runs: quantbench sweep {status.folder} --resume --retry-failed")
    print(f"store: {status.store}")
    return 0


def _print_plan(plan) -> None:
    print(f"sweep '{plan.experiment.name}' ({plan.experiment.file}): {len(plan.experiment.runs)} runs, "
          f"{len(plan.todo)} to run, {len(plan.skipped)} already in the store -> {plan.folder}")
    todo = {r.key for r in plan.todo}
    for run in plan.experiment.runs:
        state = "run" if run.key in todo else plan.in_store.get(run.key, "queued")
        print(f"  {state:11} {run.key}  {run.id}")


def _print_summary(summary) -> None:
    plan, finished = summary.plan, summary.finished
    ok = sum(f["status"] != "failed" for f in finished)
    parts = [f"{len(finished)} finished now ({ok} ok, {len(finished) - ok} failed)"]
    if summary.submitted:
        parts.insert(0, f"{summary.submitted} submitted to SLURM")
    parts.append(f"{len(plan.skipped)} skipped (already in the store or queued)")
    print(f"sweep '{plan.experiment.name}': {len(plan.experiment.runs)} runs: " + ", ".join(parts))
    for f in finished:
        if f["status"] == "failed":
            print(f"  failed: {f['run_id']}: {f['error']}")
    print(f"store: {plan.store}")
    if summary.interrupted or summary.unfinished:
        print(f"interrupted: continue with 'quantbench sweep {plan.folder} --resume' "
              f"(see 'quantbench sweep status {plan.folder}')")
    else:
        print(f"next: quantbench report {plan.folder}")


def _report(args) -> int:
    from ..report.sweep_report import ReportOptions, report_stores

    options = spec_from_args(ReportOptions, args)
    written = report_stores([Path(s) for s in args.stores], options)
    print("wrote " + ", ".join(str(p) for p in written))
    return 0

