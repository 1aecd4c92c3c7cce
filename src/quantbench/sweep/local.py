"""The local executor: one run after another, each in a fresh child process (a crash is a failed
record, not the end of the sweep), so no latency is ever measured while another run competes
for the cores. Each record is committed as soon as it exists."""
from tqdm.auto import tqdm

from .job import execute_in_child
from .runs import Run
from .store import Store


def run_locally(runs: list[Run], store: Store, sweep: str, finished: list[dict], progress: bool = True) -> None:
    """Runs in order, appending {run_id, status, error} to ``finished`` as each is committed;
    on Ctrl-C every finished run is already in the store."""
    bar = tqdm(runs, desc="runs", unit="run", disable=not progress, dynamic_ncols=True)
    for run in bar:
        bar.set_postfix_str(run.id, refresh=True)
        record = execute_in_child(run, sweep)
        store.put(record)
        finished.append({"run_id": run.id, "status": record["status"], "error": record["error"]})
        if record["status"] == "failed":
            bar.write(f"failed: {run.id}: {record['error']}")
