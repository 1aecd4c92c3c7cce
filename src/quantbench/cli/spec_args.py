"""argparse options generated from a dataclass: each option is declared once, in the spec."""
import argparse
import dataclasses
import typing

from ..errors import UserError


def add_dataclass_options(parser: argparse.ArgumentParser, cls) -> None:
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        default = f.default
        help_text = f.metadata.get("help", "").replace("%", "%%")  # argparse formats help with %
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=default, help=help_text)
            continue
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        suffix = "" if default is None or "default" in help_text else f" (default: {shown})"
        parser.add_argument(flag, type=_parser_for(f.name, kind), default=default, metavar=f.metadata.get("metavar"),
                            help=help_text + suffix)


def spec_from_args(cls, args: argparse.Namespace):
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def _parser_for(name: str, kind):
    if typing.get_origin(kind) is tuple:
        return lambda text: _int_list(name, text)
    base = next((a for a in typing.get_args(kind) if a is not type(None)), kind)
    return base


def _int_list(name: str, text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} takes comma-separated integers, got '{text}'")
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} needs positive integers, got '{text}'")
    return values


__all__ = ["UserError", "add_dataclass_options", "spec_from_args"]
