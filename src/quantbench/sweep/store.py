"""The results store: one SQLite file, one row per run (JSON columns for the full record,
plain indexed columns to query with SQL). Every write is its own transaction, so killing the
sweep at any moment loses at most the run in flight."""
import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1
COLUMNS = ["run_key", "run_id", "sweep", "status", "error", "task", "method", "seed", "hardware", "host",
           "executor", "job_id", "code_version", "started_at", "finished_at", "seconds", "quality",
           "size_bytes", "spec", "config", "row", "task_info", "env", "traceback"]
JSON_COLUMNS = ("spec", "config", "row", "task_info", "env")
DONE = ("ok", "unsupported")  # settled: another try would give the same answer

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_key TEXT PRIMARY KEY, run_id TEXT NOT NULL, sweep TEXT, status TEXT NOT NULL, error TEXT,
    task TEXT, method TEXT, seed INTEGER, hardware TEXT, host TEXT, executor TEXT, job_id TEXT,
    code_version TEXT, started_at TEXT, finished_at TEXT, seconds REAL, quality REAL, size_bytes INTEGER,
    spec TEXT NOT NULL, config TEXT NOT NULL, row TEXT, task_info TEXT, env TEXT, traceback TEXT,
    attempts INTEGER NOT NULL DEFAULT 1);
CREATE INDEX IF NOT EXISTS runs_task ON runs(task);
CREATE INDEX IF NOT EXISTS runs_method ON runs(method);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE INDEX IF NOT EXISTS runs_hardware ON runs(hardware);
CREATE TABLE IF NOT EXISTS jobs (
    run_key TEXT PRIMARY KEY, run_id TEXT NOT NULL, job_id TEXT NOT NULL, submitted_at TEXT NOT NULL,
    log_dir TEXT, sweep TEXT, run TEXT NOT NULL);
"""


class Store:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        with self.transaction():
            for statement in _statements():
                self._db.execute(statement)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def put(self, record: dict[str, Any]) -> None:
        """Insert or replace the run's row and forget its job, in one transaction. Putting the
        same record twice (same finished_at) changes nothing."""
        values = _columns(record)
        names = ", ".join(values)
        updates = ", ".join(f"{k}=excluded.{k}" for k in values if k != "run_key")
        with self.transaction() as db:
            db.execute(f"INSERT INTO runs ({names}) VALUES ({', '.join('?' * len(values))}) "
                       f"ON CONFLICT(run_key) DO UPDATE SET {updates}, attempts=runs.attempts+1 "
                       f"WHERE excluded.finished_at IS NOT runs.finished_at", list(values.values()))
            db.execute("DELETE FROM jobs WHERE run_key=?", (record["run_key"],))

    def statuses(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT run_key, status FROM runs").fetchall())

    def records(self, where: str = "", params: tuple = ()) -> list[dict[str, Any]]:
        rows = self._db.execute(f"SELECT * FROM runs {where} ORDER BY rowid", params).fetchall()
        return [_decoded(dict(r)) for r in rows]

    def add_jobs(self, jobs: list[dict[str, Any]]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO jobs (run_key, run_id, job_id, submitted_at, log_dir, sweep, run) "
                           "VALUES (:run_key, :run_id, :job_id, :submitted_at, :log_dir, :sweep, :run)",
                           [{**j, "run": json.dumps(j["run"])} for j in jobs])

    def jobs(self) -> list[dict[str, Any]]:
        rows = self._db.execute("SELECT * FROM jobs ORDER BY rowid").fetchall()
        return [{**dict(r), "run": json.loads(r["run"])} for r in rows]

    def job_ids(self) -> set[str]:
        """The SLURM jobs the store knows: those expected, and those whose runs it holds."""
        rows = self._db.execute("SELECT job_id FROM jobs UNION SELECT job_id FROM runs WHERE job_id IS NOT NULL")
        return {r[0] for r in rows.fetchall()}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


def _columns(record: dict[str, Any]) -> dict[str, Any]:
    """The record as column values: indexed columns derived from it, JSON for the nested parts."""
    row, spec = record.get("row") or {}, record.get("spec") or {}
    derived = {"task": row.get("task") or spec.get("task"), "method": row.get("method") or spec.get("methods"),
               "seed": spec.get("seed"), "quality": row.get("quality"), "size_bytes": row.get("size_bytes")}
    values = {**derived, **{k: record[k] for k in COLUMNS if k in record}}
    return {k: json.dumps(v, default=str) if k in JSON_COLUMNS and v is not None else v for k, v in values.items()}


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: json.loads(v) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
