"""What a sweep refuses before it runs anything (a dry run included): each bad input is one line
naming the file, the line and the fix ("did you mean" where there is a closest name), exit 2,
nothing written; and a sweep folder that is a file is refused the same way."""
import pytest

from quantbench.cli.main import main

CSV = "alcohol,acid,label\n" + "".join(f"{i % 7}.5,{i % 3},{i % 2}\n" for i in range(40))


def experiment(task_line: str, fixed: str = "", methods: str = "[fp32]") -> str:
    return f"fixed:\n  hidden: [16]{fixed}\ntasks:\n  - {task_line}\nmethods: {methods}\n"


REFUSALS = [  # (experiment, line, what the one line says)
    (experiment("{task: tabular, dataset: wien}"), 4, "unknown dataset 'wien' (did you mean 'wine'?)"),
    (experiment("tabular", fixed="\n  runtime: onnxruntme"), 3, "unknown runtime 'onnxruntme' "
                                                                "(did you mean 'onnxruntime'?)"),
    (experiment("{task: tabular}", fixed="\n  runtime: all"), 3, "a sweep run measures one runtime"),
    (experiment("tabuler"), 4, "unknown task 'tabuler' (did you mean 'tabular'?)"),
    (experiment("missing_task.py:build"), 4, "task file not found: missing_task.py"),
    (experiment("{task: tabular, data: missing.csv, target: label}"), 4, "data file not found: missing.csv"),
    (experiment("{task: tabular, data: table.csv, target: lable}"), 4, "'lable' not in table.csv "
                                                                       "(did you mean 'label'?)"),
    (experiment("{task: tabular, data: table.csv}"), 4, "--target is required with --data"),
    (experiment("tabular", methods="[fp32, ptq-dynamc]"), 5, "unknown method 'ptq-dynamc' "
                                                             "(did you mean 'ptq-dynamic'?)"),
]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # paths in experiment files are relative to where quantbench runs
    (tmp_path / "table.csv").write_text(CSV)
    return tmp_path


@pytest.mark.parametrize("text, line, message", REFUSALS, ids=[m.split(" (")[0] for _, _, m in REFUSALS])
@pytest.mark.parametrize("mode", [["--dry-run"], []])
def test_bad_inputs_are_one_line_before_anything_runs(workdir, capsys, text, line, message, mode):
    (workdir / "e.yaml").write_text(text)
    assert main(["sweep", "e.yaml", "--out", "out", *mode]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [printed.err.strip()] and printed.out == ""  # one line, no plan, no traceback
    assert f"e.yaml:{line}: " in printed.err and message in printed.err, printed.err
    assert not (workdir / "out").exists()


def test_good_inputs_pass_the_dry_run(workdir, capsys):
    (workdir / "e.yaml").write_text(experiment("{task: tabular, data: table.csv, target: label}",
                                               fixed="\n  runtime: onnxruntime\n  dataset: not-read-with-data"))
    assert main(["sweep", "e.yaml", "--dry-run"]) == 0
    assert "1 runs, 1 to run" in capsys.readouterr().out


def test_options_a_task_does_not_read_are_not_checked(workdir, capsys):
    """The cnn task reads no dataset: a fixed dataset shared with tabular tasks is no error for it."""
    (workdir / "e.yaml").write_text(experiment("cnn", fixed="\n  dataset: iris"))
    assert main(["sweep", "e.yaml", "--dry-run"]) == 0


@pytest.mark.parametrize("option, message", [
    ("--out", "--out a_file is a file; the sweep folder (store, results, logs) must be a folder"),
    ("--store", "--store a_dir is a folder; name the .sqlite file"),
])
@pytest.mark.parametrize("mode", [["--dry-run"], []])
def test_an_output_path_of_the_wrong_kind_is_one_line(workdir, capsys, option, message, mode):
    (workdir / "e.yaml").write_text(experiment("tabular"))
    (workdir / "a_file").write_text("keep me\n")
    (workdir / "a_dir").mkdir()
    target = "a_file" if option == "--out" else "a_dir"
    assert main(["sweep", "e.yaml", option, target, *mode]) == 2
    printed = capsys.readouterr()
    assert printed.err.splitlines() == [f"quantbench: error: {message}" + printed.err.split(message)[1].rstrip()]
    assert (workdir / "a_file").read_text() == "keep me\n" and list((workdir / "a_dir").iterdir()) == []


def test_an_unwritable_sweep_folder_is_one_line(workdir, capsys):
    (workdir / "e.yaml").write_text(experiment("tabular"))
    (workdir / "a_file").write_text("")
    assert main(["sweep", "e.yaml", "--out", "a_file/sub"]) == 2
    assert capsys.readouterr().err.startswith("quantbench: error: cannot create the sweep folder a_file/sub: ")
