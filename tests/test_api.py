"""compare(): the method list is read once, and a typo in it stops the run before anything loads."""
import pytest

from quantbench import api
from quantbench.errors import UserError


class _Stop(Exception):
    """Raised where compare would start training: everything before it has run."""


@pytest.fixture
def parses(monkeypatch):
    """The texts compare gives parse_methods, up to the point where it would train the model."""
    seen = []

    def counting(text):
        seen.append(text)
        return real(text)

    def stop(*args, **kwargs):
        raise _Stop

    real = api.parse_methods
    monkeypatch.setattr(api, "parse_methods", counting)
    monkeypatch.setattr(api, "trained_fp32", stop)
    return seen


@pytest.mark.parametrize("methods,expected", [("fp32,rtn:bits=4", "fp32,rtn:bits=4"), (None, "default")])
def test_methods_are_parsed_once(methods, expected, parses, small_spec, monkeypatch):
    small_spec.methods = methods
    with pytest.raises(_Stop):
        api.compare(small_spec)
    task = api.build_task(small_spec.task, **small_spec.task_options())
    assert parses == [task.default_methods if expected == "default" else expected]


def test_a_typo_in_the_methods_fails_before_the_task_is_built(parses, small_spec, monkeypatch):
    def no_task(*args, **kwargs):
        raise AssertionError("the task was built before the methods were checked")

    monkeypatch.setattr(api, "build_task", no_task)
    small_spec.methods = "fp32,ptq-statc"
    with pytest.raises(UserError, match="did you mean 'ptq-static'"):
        api.compare(small_spec)
