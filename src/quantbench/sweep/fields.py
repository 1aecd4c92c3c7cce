"""Check keys and values of a document against a dataclass's fields and type hints, generically:
a field added to the dataclass is accepted by experiment files without any change here."""
import dataclasses
import types
import typing
from typing import Any, Iterable

from ..registry import closest
from .document import Document, KeyPath


def check_keys(doc: Document, path: KeyPath, mapping: Any, allowed: Iterable[str], what: str) -> dict:
    """``mapping`` itself, once it is a mapping whose every key is in ``allowed``."""
    allowed = list(allowed)
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise doc.error(path, f"'{_name(path)}' must be a mapping of {what}s")
    for key in mapping:
        if key not in allowed:
            raise doc.error(path + (key,), f"unknown {what} '{key}'{closest(str(key), allowed)}; "
                                           f"valid: {', '.join(allowed)}")
    return mapping


def field_hints(cls) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def coerce(doc: Document, path: KeyPath, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` asks for, or an error naming the line. Types this does
    not know are passed through unchanged (the dataclass may check them itself)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return coerce(doc, path, value, next(a for a in args if a is not type(None)))
    if origin in (tuple, list):
        element = args[0] if args else Any
        items = [value] if isinstance(value, str) and element is str else _items(value)
        return origin(coerce(doc, path, v, element) for v in items)
    if origin is dict:
        if not isinstance(value, dict):
            raise doc.error(path, f"'{_name(path)}' takes a mapping, got {value!r}")
        return value
    check = _SCALARS.get(hint)
    if check is None:
        return value
    try:
        return check(value)
    except (TypeError, ValueError):
        raise doc.error(path, f"'{_name(path)}' takes {_NAMES[hint]}, got {value!r}") from None


def _name(path: KeyPath) -> str:
    return next((p for p in reversed(path) if isinstance(p, str)), "value")


def _items(value: Any) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return value.lower() in ("true", "yes", "1", "on")
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or isinstance(value, float) or isinstance(value, (list, dict)):
        raise TypeError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, (bool, list, dict)):
        raise TypeError(value)
    return float(value)


def _to_str(value: Any) -> str:
    if isinstance(value, (bool, list, dict)) or value is None:
        raise TypeError(value)
    return str(value)


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
