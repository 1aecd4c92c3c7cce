import sqlite3
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).parent
FAILING_TASK = f"{HERE / 'broken_tasks.py'}:failing"
CRASHING_TASK = f"{HERE / 'broken_tasks.py'}:crashing"


def tiny_experiment(cache_dir: str, datasets=("wine",), methods=("fp32", "ptq-dynamic"), seeds=(0,),
                    extra_tasks: tuple[str, ...] = (), tail: str = "", threads: int = 1) -> str:
    """YAML for the fastest real sweep: a 16-wide MLP, batch 1, no memory probe, one thread (so
    timing stays quick while other processes keep the other core busy)."""
    tasks = "".join(f"\n  - {{task: tabular, dataset: {d}}}" for d in datasets)
    tasks += "".join(f"\n  - {{task: '{t}'}}" for t in extra_tasks)
    return textwrap.dedent(f"""\
        name: tiny
        fixed:
          hidden: [16]
          batch_sizes: [1]
          memory: false
          threads: {threads}
          cache_dir: {cache_dir}
        tasks:""") + tasks + textwrap.dedent(f"""
        grid:
          seed: {list(seeds)}
        methods: [{", ".join(methods)}]
        """) + tail


@pytest.fixture
def write_experiment(tmp_path, cache_dir):
    def write(text: str | None = None, name: str = "experiment.yaml", **kw) -> Path:
        path = tmp_path / name
        path.write_text(text if text is not None else tiny_experiment(cache_dir, **kw))
        return path

    return write


def read_store(path, sql: str) -> dict:
    """The two columns ``sql`` selects, as a dict, read-only (a driver may be writing); {} before the
    store exists."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10) as db:
            return dict(db.execute(sql).fetchall())
    except sqlite3.OperationalError:  # not created yet
        return {}
