"""Methods that resolve to the same config are one row, and the comparison says they were merged."""
from rich.console import Console

from quantbench import api
from quantbench.report.table import render
from quantbench.config import duplicate_method_notes, parse_methods


def test_same_resolved_config_is_parsed_once_at_the_first_place():
    assert [c.label() for c in parse_methods("rtn,fp32,rtn:bits=4,gptq,rtn")] == ["rtn", "fp32", "gptq"]


def test_the_merge_note_names_every_spelling():
    notes = duplicate_method_notes("rtn,fp32,rtn:bits=4,group_size=128,gptq")
    assert len(notes) == 1
    assert "'rtn'" in notes[0] and "'rtn:bits=4,group_size=128'" in notes[0] and "merged" in notes[0]


def test_different_configs_are_kept_without_a_note():
    text = "rtn,rtn:bits=3,ptq-static:observer=minmax,ptq-static"
    assert len(parse_methods(text)) == 4
    assert duplicate_method_notes(text) == []


def test_compare_measures_a_duplicate_once_and_notes_it(small_spec, tmp_path):
    small_spec.methods, small_spec.batch_sizes, small_spec.out = "fp32,rtn,rtn:bits=4", (1,), str(tmp_path)
    results = api.compare(small_spec)
    assert [r.label for r in results.rows] == ["fp32", "rtn"]
    assert any("'rtn:bits=4'" in n for n in results.task["notes"])
    console = Console(record=True, width=200)
    render(results, console)
    assert "resolve to the same config" in console.export_text()
