import pytest

from quantbench import methods  # noqa: F401
from quantbench.config import METHODS, config_from_dict, parse_methods
from quantbench.errors import UserError


def test_parse_methods_with_options_and_continuations():
    configs = parse_methods("fp32,ptq-static:observer=minmax,per_channel=false,qat:epochs=2")
    assert [c.name for c in configs] == ["fp32", "ptq-static", "qat"]
    assert configs[1].observer == "minmax" and configs[1].per_channel is False
    assert configs[2].epochs == 2
    assert configs[1].label() == "ptq-static:observer=minmax,per_channel=false"
    assert configs[0].label() == "fp32"


def test_unknown_method_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'ptq-static'"):
        parse_methods("fp32,ptq-statc")


def test_unknown_option_suggests_closest():
    with pytest.raises(UserError, match="did you mean 'observer'"):
        parse_methods("ptq-static:obsrver=minmax")


def test_bad_choice_and_bad_type_are_user_errors():
    with pytest.raises(UserError, match="did you mean 'minmax'"):
        parse_methods("ptq-static:observer=minmx")
    with pytest.raises(UserError, match="not a valid int"):
        parse_methods("qat:epochs=many")
    with pytest.raises(UserError, match="key=value"):
        parse_methods("qat:epochs")


@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_round_trips_through_dict(name):
    config = METHODS.get(name)()
    data = config.to_dict()
    assert data["name"] == name and data["version"] == config.version
    assert config_from_dict(data) == config
