"""A run: one ``CompareSpec`` with one method, a stable key and a readable id."""
import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..config import METHODS, MethodConfig
from ..errors import UserError
from ..spec import CompareSpec

NOT_IN_KEY = ("out", "progress", "cache_dir", "methods")  # where outputs go, not what is measured
KEY_VERSION = 1


@dataclass(frozen=True)
class Run:
    key: str
    id: str
    spec: dict[str, Any]  # every CompareSpec field, JSON-ready
    config: dict[str, Any]  # the method config: {name, version, options}

    def compare_spec(self, **changes) -> CompareSpec:
        names = {f.name for f in dataclasses.fields(CompareSpec)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in self.spec.items() if k in names}
        return CompareSpec(**{**values, **changes})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Run":
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def make_run(values: dict[str, Any], config: MethodConfig, varying: list[str]) -> Run:
    try:
        spec = CompareSpec(**{**values, "methods": config.label(), "out": None, "progress": False})
    except (TypeError, ValueError) as e:
        raise UserError(str(e)) from None
    spec_dict = spec_to_dict(spec)
    return Run(key=run_key(spec_dict, config.to_dict()), id=run_id(values, varying, config.label()),
               spec=spec_dict, config=config.to_dict())


def spec_to_dict(spec: CompareSpec) -> dict[str, Any]:
    return {f.name: plain_value(getattr(spec, f.name)) for f in dataclasses.fields(spec)}


def spec_defaults() -> dict[str, Any]:
    """Every CompareSpec field's default, JSON-ready: what a field a stored run predates counts as."""
    return {f.name: plain_value(f.default) for f in dataclasses.fields(CompareSpec)}


def run_key(spec: dict[str, Any], config: dict[str, Any]) -> str:
    """Stable across processes, machines and versions: what is measured (never where outputs go),
    as the fields and options that differ from their defaults, so a version that adds a field keeps
    every key. (Which code ran, and so which defaults, is recorded with each result.)"""
    defaults = spec_defaults()
    spec = {k: v for k, v in spec.items() if k not in NOT_IN_KEY and (k not in defaults or v != defaults[k])}
    identity = {"v": KEY_VERSION, "spec": spec, "method": _changed_options(config)}
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_id(values: dict[str, Any], varying: list[str], label: str) -> str:
    """'dataset=wine,seed=1/ptq-static:observer=minmax': only what differs between runs."""
    parts = ",".join(f"{k}={short_text(values[k])}" for k in varying if k in values)
    return f"{parts}/{label}" if parts else label


def _changed_options(config: dict[str, Any]) -> dict[str, Any]:
    defaults = {f.name: f.default for f in dataclasses.fields(METHODS.get(config["name"]))}
    options = {k: v for k, v in config.get("options", {}).items() if k not in defaults or v != defaults[k]}
    return {"name": config["name"], "version": config.get("version", 1), "options": options}


def plain_value(value: Any) -> Any:
    """``value`` as JSON reads it back: tuples become lists."""
    return list(value) if isinstance(value, tuple) else value


def short_text(value: Any) -> str:
    """A spec value as run ids and report labels write it: '16x16', 'false', 'wine'."""
    if isinstance(value, (list, tuple)):
        return "x".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) or value is None else str(value)
