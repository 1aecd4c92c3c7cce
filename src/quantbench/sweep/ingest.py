"""Result files written by jobs -> the store. Only the driver writes the store: SQLite on a
shared cluster filesystem is unsafe, so jobs write one JSON file each and never touch it."""
import contextlib
import json
import os
from pathlib import Path

from .store import Store


def ingest_results(store: Store, results_dir: Path) -> int:
    """Move every finished result into the store (one transaction each); returns how many.
    Safe to run from two processes at once (a driver and 'sweep status'): a file taken by one
    is skipped by the other, and storing the same record twice changes nothing."""
    count = 0
    for path in sorted(Path(results_dir).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            continue
        except (OSError, json.JSONDecodeError) as e:
            _set_aside(path, results_dir / "unreadable")
            print(f"quantbench: result file {path.name} is unreadable ({type(e).__name__}: {e}); "
                  f"moved to {results_dir / 'unreadable'}")
            continue
        store.put(record)
        _set_aside(path, results_dir / "ingested")
        count += 1
    return count


def pending_results(results_dir: Path) -> int:
    """Result files written by jobs and not yet in the store."""
    return len(list(Path(results_dir).glob("*.json")))


def _set_aside(path: Path, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, folder / path.name)
