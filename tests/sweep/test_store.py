"""The SQLite store: one row per run, idempotent writes, queryable with plain SQL."""
import sqlite3

from quantbench.sweep.store import Store


def record(key="k1", status="ok", finished="2026-01-01T00:00:00", **kw):
    return {"run_key": key, "run_id": f"id-{key}", "sweep": "s", "status": status, "error": None,
            "spec": {"task": "tabular", "seed": 3, "methods": "fp32"}, "config": {"name": "fp32", "version": 1},
            "row": {"method": "fp32", "task": "tabular", "quality": 0.9, "size_bytes": 100},
            "env": {"host": "h", "cpu": "c"}, "hardware": "c @ h", "finished_at": finished, **kw}


def test_put_is_idempotent_and_counts_attempts(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.put(record())
        store.put(record())  # the same result ingested twice changes nothing
        assert store.records()[0]["attempts"] == 1
        store.put(record(status="failed", finished="2026-01-02T00:00:00"))
        assert store.statuses() == {"k1": "failed"}
        assert store.records()[0]["attempts"] == 2


def test_records_decode_json_and_sql_sees_indexed_columns(tmp_path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.put(record("a"))
        store.put(record("b", status="failed", error="boom", row=None))
        assert store.records()[0]["env"] == {"host": "h", "cpu": "c"}
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = db.execute("SELECT run_key, task, method, seed, quality, json_extract(env, '$.host') FROM runs "
                      "ORDER BY run_key").fetchall()
    assert rows == [("a", "tabular", "fp32", 3, 0.9, "h"), ("b", "tabular", "fp32", 3, None, "h")]


def test_a_result_clears_its_job(tmp_path):
    with Store(tmp_path / "s.sqlite") as store:
        store.add_jobs([{"run_key": "k1", "run_id": "id", "job_id": "7_0", "submitted_at": "t", "log_dir": "d",
                         "sweep": "s", "run": {"key": "k1"}}])
        assert [j["job_id"] for j in store.jobs()] == ["7_0"]
        store.put(record())
        assert store.jobs() == []
