"""Experiment files: expansion into runs, stable keys, and errors that name the right line."""
import dataclasses
import json
import textwrap

import pytest

from quantbench.cli.main import main
from quantbench.errors import UserError
from quantbench.spec import CompareSpec
from quantbench.sweep import load_experiment
from quantbench.sweep.experiment import SWEEPABLE
from quantbench.sweep.runs import run_key

EXAMPLE = """\
name: demo
fixed:
  hidden: [16]
  memory: false
tasks:
  - {task: tabular, dataset: wine}
  - {task: tabular, dataset: breast_cancer}
grid:
  seed: [0, 1]
  batch_sizes: [[1, 32]]
methods:
  - fp32
  - ptq-dynamic
  - ptq-static: {observer: [minmax, histogram]}
"""


def load_text(tmp_path, text: str, name: str = "e.yaml", **options):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return load_experiment(path, **options)


def error_of(tmp_path, text: str, name: str = "e.yaml") -> str:
    with pytest.raises(UserError) as info:
        load_text(tmp_path, text, name)
    return str(info.value)


def test_grid_expands_tasks_seeds_and_method_options(tmp_path):
    runs = load_text(tmp_path, EXAMPLE).runs
    assert len(runs) == 2 * 2 * 4
    assert len({r.key for r in runs}) == len(runs) == len({r.id for r in runs})
    first = runs[0].compare_spec()
    assert (first.dataset, first.seed, first.hidden, first.batch_sizes) == ("wine", 0, (16,), (1, 32))
    assert first.memory is False and first.progress is False and first.out is None
    assert {r.spec["methods"] for r in runs} == {"fp32", "ptq-dynamic", "ptq-static:observer=minmax",
                                                  "ptq-static"}  # histogram is the default observer
    assert runs[3].id == "dataset=wine,seed=0/ptq-static"
    assert runs[3].config == {"name": "ptq-static", "version": 1,
                              "options": {**runs[3].config["options"], "observer": "histogram"}}


def test_run_keys_are_stable_and_ignore_where_outputs_go(tmp_path):
    keys = [r.key for r in load_text(tmp_path, EXAMPLE).runs]
    moved = EXAMPLE.replace("memory: false", "memory: false\n  cache_dir: /somewhere/else")
    assert [r.key for r in load_text(tmp_path, moved, "moved.yaml").runs] == keys
    changed = EXAMPLE.replace("hidden: [16]", "hidden: [32]")
    assert not set(keys) & {r.key for r in load_text(tmp_path, changed, "changed.yaml").runs}
    run = load_text(tmp_path, EXAMPLE).runs[0]
    spelled_out = EXAMPLE.replace("memory: false", "memory: false\n  data: null\n  threads: 0")  # = the defaults
    assert [r.key for r in load_text(tmp_path, spelled_out, "defaults.yaml").runs] == keys
    dropped = {k: v for k, v in run.spec.items() if k != "threads"}  # as if 'threads' did not exist yet
    assert run_key(dropped, run.config) == run.key


def test_toml_gives_the_same_runs(tmp_path):
    toml = """\
    name = "demo"
    methods = ["fp32", "ptq-dynamic", {ptq-static = {observer = ["minmax", "histogram"]}}]
    tasks = [{task = "tabular", dataset = "wine"}, {task = "tabular", dataset = "breast_cancer"}]
    [fixed]
    hidden = [16]
    memory = false
    [grid]
    seed = [0, 1]
    batch_sizes = [[1, 32]]
    """
    from_toml = load_text(tmp_path, toml, "e.toml").runs
    assert [r.key for r in from_toml] == [r.key for r in load_text(tmp_path, EXAMPLE).runs]


def non_default(name: str, default):
    """A value of the field's type that is not its default."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, int):
        return default + 1
    if isinstance(default, tuple):
        return [v + 1 for v in default]
    return f"not-{default}"  # str, or None for optional text


@pytest.mark.parametrize("name", SWEEPABLE)
def test_every_compare_spec_field_is_a_valid_key(tmp_path, name):
    """New CompareSpec fields are accepted with no change to the sweep code, and a value set in
    'fixed:' reaches the run's spec."""
    default = next(f.default for f in dataclasses.fields(CompareSpec) if f.name == name)
    value = non_default(name, default)
    text = f"fixed: {{{name}: {json.dumps(value)}}}\nmethods: [fp32]\n"  # YAML reads JSON
    run = load_text(tmp_path, text, validate_inputs=False).runs[0]  # keys and types; inputs: test_inputs.py
    assert getattr(run.compare_spec(), name) == (tuple(value) if isinstance(value, list) else value) != default


@pytest.mark.parametrize("text, line, message", [
    (EXAMPLE.replace("  - ptq-dynamic", "  - ptq-dynamc"), 13, "did you mean 'ptq-dynamic'"),
    (EXAMPLE.replace("  - ptq-static: {", "  - ptq-statc: {"), 14, "did you mean 'ptq-static'"),
    (EXAMPLE.replace("{observer:", "{observr:"), 14, "did you mean 'observer'"),
    (EXAMPLE.replace("[minmax, histogram]", "[minmax, histgram]"), 14, "did you mean 'histogram'"),
    (EXAMPLE.replace("  seed: [0, 1]", "  seeds: [0, 1]"), 9, "unknown key 'seeds' (did you mean 'seed'?)"),
    (EXAMPLE.replace("  memory: false", "  memroy: false"), 4, "did you mean 'memory'"),
    (EXAMPLE.replace("grid:", "gird:"), 8, "unknown section 'gird' (did you mean 'grid'?)"),
    (EXAMPLE.replace("dataset: breast_cancer}", "datset: breast_cancer}"), 7, "did you mean 'dataset'"),
    (EXAMPLE.replace("{task: tabular, dataset: wine}", "{task: tabuler, dataset: wine}"), 6,
     "did you mean 'tabular'"),
    (EXAMPLE.replace("seed: [0, 1]", "seed: 0"), 9, "list of alternatives"),
    (EXAMPLE.replace("seed: [0, 1]", "seed: [0, one]"), 9, "'seed' takes an integer"),
    (EXAMPLE.replace("  memory: false", "  memory: false\n  seed: 3"), 10, "'seed' is in grid and in fixed (line 5)"),
    (EXAMPLE.replace("  memory: false", "  out: somewhere"), 4, "set by the sweep"),
    (EXAMPLE.replace("  memory: false", "  hidden: [8]"), 4, "given twice"),
    (EXAMPLE + "  - fp32\n", 15, "appears twice"),
    (EXAMPLE + "executor: slrum\n", 15, "did you mean 'slurm'"),
    (EXAMPLE + "slurm: {cpus_per_tsk: 4}\n", 15, "did you mean 'cpus_per_task'"),
])
def test_errors_name_the_line(tmp_path, text, line, message):
    error = error_of(tmp_path, text)
    assert f"e.yaml:{line}:" in error and message in error, error


def test_a_dry_run_refuses_a_misspelt_executor(write_experiment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    experiment = write_experiment()
    assert main(["sweep", str(experiment), "--dry-run", "--executor", "slurmm"]) == 2
    printed = capsys.readouterr()
    assert "unknown executor 'slurmm' (did you mean 'slurm'?)" in printed.err and "Traceback" not in printed.err
    assert printed.out == ""  # refused before any plan is listed
    assert list(tmp_path.iterdir()) == [experiment]


def test_toml_errors_name_the_line(tmp_path):
    toml = 'methods = ["fp32"]\n\n[grid]\nseed = [0, 1]\nhiden = [[16]]\n'
    assert "e.toml:5: unknown key 'hiden' (did you mean 'hidden'?)" in error_of(tmp_path, toml, "e.toml")
    toml = 'methods = [\n  "fp32",\n  "ptq-statc",\n]\n'
    assert "e.toml:1:" in error_of(tmp_path, toml, "e.toml")  # array items have no key: the list's line


def test_invalid_yaml_names_the_line(tmp_path):
    assert "e.yaml:3: not valid YAML" in error_of(tmp_path, "methods:\n  - fp32\n  bad: [\n")


@pytest.mark.parametrize("runtime", ["all", "torch-cpu,onnxruntime"])
def test_a_run_measures_one_runtime(tmp_path, runtime):
    """A run stores one row: several runtimes in one run would keep only the first; a grid is the way."""
    assert "a sweep run measures one runtime" in error_of(tmp_path, f"fixed: {{runtime: '{runtime}'}}\n"
                                                                     f"methods: [fp32]\n")
    runs = load_text(tmp_path, "grid: {runtime: [torch-cpu, onnxruntime]}\nmethods: [fp32]\n").runs
    assert [r.spec["runtime"] for r in runs] == ["torch-cpu", "onnxruntime"]
