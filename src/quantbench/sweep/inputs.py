"""What a sweep checks before anything runs, beyond its keys and types: task, dataset and runtime
names, task files, CSV files and their target column. Each check calls the function the run
itself would call (the registries, the CSV reader), so its message, "did you mean" included, is
the one the run would give, and a check added there is made here too."""
import inspect
from pathlib import Path
from typing import Any, Callable

from ..errors import UserError
from ..runtimes import RUNTIMES
from ..spec import CompareSpec
from ..tasks import TASKS
from ..tasks.csv_table import load_csv
from ..tasks.tabular import load_builtin
from ..tasks.user_file import is_user_task, load_user_task

TASK_OPTIONS = tuple(CompareSpec().task_options())  # the spec fields a task builder may read


def option_applies(task: str, field: str) -> bool:
    """Whether the spec field ``field`` matters to ``task``: every field but a task option the task's
    builder does not read (a plugin file reads only the seed; cnn its seed; tabular no model)."""
    return field not in TASK_OPTIONS or field in task_options_read(task)


def task_options_read(task: str) -> tuple[str, ...]:
    """The task options (``CompareSpec.task_options``) that ``task`` reads: the parameters of its
    builder. A builder that forwards ``**options`` may read any of them; ``**_`` ignores the rest.
    An unknown task reads them all (nothing is left out of what describes it)."""
    if is_user_task(task):
        builder = load_user_task
    elif task in TASKS:
        builder = TASKS.get(task)
    else:
        return TASK_OPTIONS
    params = inspect.signature(builder).parameters
    if any(p.kind is p.VAR_KEYWORD and name != "_" for name, p in params.items()):
        return TASK_OPTIONS
    return tuple(k for k in TASK_OPTIONS if k in params)


def _task(values: dict[str, Any]) -> None:
    name = values["task"]
    if not is_user_task(name):
        TASKS.get(name)
    elif not Path(name.partition(":")[0]).is_file():
        raise UserError(f"task file not found: {name.partition(':')[0]}")


def _runtime(values: dict[str, Any]) -> None:
    name = values["runtime"]
    if name == "all" or "," in name:
        raise UserError(f"runtime '{name}': a sweep run measures one runtime; list them instead, "
                        f"e.g. grid: {{runtime: [torch-cpu, onnxruntime]}}")
    RUNTIMES.get(name)


def _dataset(values: dict[str, Any]) -> None:
    if option_applies(values["task"], "dataset") and not values.get("data"):
        load_builtin(values["dataset"])


def _data(values: dict[str, Any]) -> None:
    if option_applies(values["task"], "data") and values.get("data"):
        load_csv(values["data"], values.get("target"))  # missing file, target not in the header, bad values


# (the field an error is reported at, the check): in order, each check may rely on those before it
CHECKS: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
    ("task", _task), ("runtime", _runtime), ("dataset", _dataset), ("data", _data)]
INPUTS = ("task", "runtime", "dataset", "data", "target")  # the spec fields the checks read


def check_inputs(values: dict[str, Any]) -> tuple[str, UserError] | None:
    """The first problem of one run's spec values (``INPUTS``; defaults fill the rest): (field, error), or None."""
    values = {**{k: getattr(CompareSpec, k) for k in INPUTS}, **values}
    for name, check in CHECKS:
        try:
            check(values)
        except UserError as e:
            return name, e
    return None
