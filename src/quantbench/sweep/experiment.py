"""An experiment file -> validated runs: tasks x grid x methods, each run one ``CompareSpec``
with a single method. Every key is checked before anything runs; errors name the line."""
import dataclasses
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import methods as _registers_methods  # noqa: F401
from ..config import METHODS, MethodConfig, make_config, parse_methods
from ..errors import UserError
from ..registry import closest
from ..spec import CompareSpec
from .document import Document, KeyPath, load_document
from .fields import check_keys, coerce, field_hints
from .inputs import INPUTS, check_inputs
from .resources import SlurmResources
from .runs import Run, make_run

SECTIONS = ("name", "description", "fixed", "tasks", "grid", "methods", "executor", "slurm")
EXECUTORS = ("local", "slurm")
SET_BY_SWEEP = ("out", "progress")
SPEC_HINTS = field_hints(CompareSpec)
SWEEPABLE = [k for k in SPEC_HINTS if k not in ("methods", *SET_BY_SWEEP)]

Located = dict[str, tuple[Any, KeyPath]]  # spec field -> (value, where it was written)


@dataclass
class Experiment:
    name: str
    file: str
    description: str
    runs: list[Run]
    executor: str
    slurm: SlurmResources


def load_experiment(path: str | Path, validate_inputs: bool = True) -> Experiment:
    """The experiment's runs, once every key and value is valid and (``validate_inputs``) the names of
    tasks, datasets and runtimes, task and CSV files and target columns too: ``sweep status`` only
    reads a sweep, whose files may have moved since it ran."""
    doc = load_document(path)
    data = check_keys(doc, (), doc.data, SECTIONS, "section")
    configs = _method_configs(doc)
    runs = _expand(doc, _spec_values(doc, ("fixed",), data.get("fixed")), _tasks(doc), _grid(doc), configs,
                   validate_inputs)
    return Experiment(name=str(data.get("name") or Path(path).stem), file=str(path),
                      description=str(data.get("description") or ""), runs=runs,
                      executor=_executor(doc), slurm=_slurm(doc))


def _spec_keys(doc: Document, path: KeyPath, mapping: Any) -> dict:
    for key in mapping if isinstance(mapping, dict) else ():
        if key == "methods":
            raise doc.error(path + (key,), "methods go in the top-level 'methods:' list")
        if key in SET_BY_SWEEP:
            raise doc.error(path + (key,), f"'{key}' is set by the sweep (use 'quantbench sweep --out')")
    return check_keys(doc, path, mapping, SWEEPABLE, "key")


def _spec_values(doc: Document, path: KeyPath, mapping: Any) -> Located:
    mapping = _spec_keys(doc, path, mapping)
    return {k: (coerce(doc, path + (k,), v, SPEC_HINTS[k]), path + (k,)) for k, v in mapping.items()}


def _tasks(doc: Document) -> list[Located]:
    entries = doc.data.get("tasks")
    if entries is None:
        return [{}]
    if not isinstance(entries, list) or not entries:
        raise doc.error(("tasks",), "'tasks' must be a list of task names or of mappings like "
                                    "{task: tabular, dataset: wine}")
    return [{"task": (coerce(doc, ("tasks", i), e, str), ("tasks", i))} if not isinstance(e, dict)
            else _spec_values(doc, ("tasks", i), e) for i, e in enumerate(entries)]


def _grid(doc: Document) -> list[tuple[str, list[tuple[Any, KeyPath]]]]:
    axes = []
    for key, values in _spec_keys(doc, ("grid",), doc.data.get("grid")).items():
        if not isinstance(values, list) or not values:
            raise doc.error(("grid", key), f"grid values are a list of alternatives, e.g. {key}: [a, b]; "
                                           f"got {values!r}")
        axes.append((key, [(coerce(doc, ("grid", key, i), v, SPEC_HINTS[key]), ("grid", key, i))
                           for i, v in enumerate(values)]))
    return axes


def _method_configs(doc: Document) -> list[tuple[MethodConfig, KeyPath]]:
    entries = doc.data.get("methods")
    if not isinstance(entries, list) or not entries:
        raise doc.error(("methods",), "'methods' must be a non-empty list, e.g. [fp32, ptq-dynamic]")
    configs = []
    for i, entry in enumerate(entries):
        configs += [(c, ("methods", i)) for c in _entry_configs(doc, ("methods", i), entry)]
    for config, path in configs:
        if parse_methods(config.label())[0].to_dict() != config.to_dict():
            raise doc.error(path, f"method '{config.label()}' cannot be written as a method string")
    return configs


def _entry_configs(doc: Document, path: KeyPath, entry: Any) -> list[MethodConfig]:
    """'ptq-static:observer=minmax' or {ptq-static: {observer: [minmax, histogram]}} (lists multiply)."""
    if isinstance(entry, str):
        configs = _located(doc, path, parse_methods, entry)
        if len(configs) != 1:
            raise doc.error(path, f"one method per entry, got {len(configs)} in '{entry}'")
        return configs
    if not (isinstance(entry, dict) and len(entry) == 1):
        raise doc.error(path, "a method is 'name:option=value' or {name: {option: [values]}}")
    name, options = next(iter(entry.items()))
    cls = _located(doc, path + (name,), METHODS.get, name)
    options = check_keys(doc, path + (name,), options, [f.name for f in dataclasses.fields(cls)],
                         f"option of method '{name}'")
    axes = [[(k, v) for v in (vs if isinstance(vs, list) else [vs])] for k, vs in options.items()]
    return [_located(doc, path + (name,), make_config, name, dict(combo)) for combo in itertools.product(*axes)]


def _located(doc: Document, path: KeyPath, fn, *args):
    try:
        return fn(*args)
    except UserError as e:
        raise doc.error(path, str(e)) from None


def _expand(doc: Document, fixed: Located, tasks: list[Located], grid, configs, validate_inputs: bool) -> list[Run]:
    _check_overlaps(doc, fixed, tasks, grid)
    points = [{**fixed, **task, **{k: vp for k, vp in combo}}
              for task in tasks for combo in itertools.product(*[[(k, vp) for vp in vps] for k, vps in grid])]
    if validate_inputs:
        _check_inputs(doc, points)
    varying = _varying_keys(points)
    runs: dict[str, Run] = {}
    for point in points:
        for config, path in configs:
            run = _located(doc, path, make_run, {k: v for k, (v, _) in point.items()}, config, varying)
            if run.key in runs:
                raise doc.error(path, f"run '{run.id}' appears twice in the experiment")
            runs[run.key] = run
    return list(runs.values())


def _check_overlaps(doc: Document, fixed: Located, tasks: list[Located], grid) -> None:
    for key, values in grid:
        for other, name in [(fixed, "fixed"), *[(t, "tasks") for t in tasks]]:
            if key in other:
                raise doc.error(("grid", key), f"'{key}' is in grid and in {name} "
                                               f"(line {doc.line(other[key][1])}); keep one")


def _check_inputs(doc: Document, points: list[Located]) -> None:
    """Names, files and CSV targets, once per distinct combination (not once per seed)."""
    checked = set()
    for point in points:
        values = {k: point[k][0] for k in INPUTS if k in point}
        if tuple(values.items()) not in checked:
            checked.add(tuple(values.items()))
            problem = check_inputs(values)
            if problem:
                raise doc.error(point.get(problem[0], (None, ()))[1], str(problem[1]))


def _varying_keys(points: list[Located]) -> list[str]:
    keys = list(dict.fromkeys(k for p in points for k in p))
    seen = {k: {json.dumps(p[k][0] if k in p else None, default=str) for p in points} for k in keys}
    return [k for k in keys if len(seen[k]) > 1]


def check_executor(name: str) -> str:
    """``name`` once it names an executor: the experiment file's 'executor' and --executor alike."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor '{name}'{closest(str(name), EXECUTORS)}; "
                        f"choose from: {', '.join(EXECUTORS)}")
    return name


def _executor(doc: Document) -> str:
    return _located(doc, ("executor",), check_executor, doc.data.get("executor", "local"))


def _slurm(doc: Document) -> SlurmResources:
    hints = field_hints(SlurmResources)
    section = check_keys(doc, ("slurm",), doc.data.get("slurm"), hints, "slurm option")
    return SlurmResources(**{k: coerce(doc, ("slurm", k), v, hints[k]) for k, v in section.items()})
