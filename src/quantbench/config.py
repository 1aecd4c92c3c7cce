"""Method configs: frozen, plain-data dataclasses, parsed from short specs like
``ptq-static:observer=histogram,per_channel=false`` and serialized with a version."""
import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import UserError
from .registry import Registry, closest


def option(default, help: str, choices: tuple | None = None):
    """A config field with its help text (and allowed values), declared once for CLI, docs and checks."""
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass(frozen=True)
class MethodConfig:
    """Base of every method's config: what to do, never how (no tensors, no state)."""

    name: ClassVar[str] = ""
    version: ClassVar[int] = 1
    summary: ClassVar[str] = ""

    def __post_init__(self):
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            value = getattr(self, f.name)
            if choices and value not in choices:
                raise UserError(
                    f"{self.name}: {f.name}={value!r} is not valid{closest(str(value), map(str, choices))}; "
                    f"choose from: {', '.join(map(str, choices))}"
                )

    def options(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def label(self) -> str:
        """Short unique name: the method plus the options that differ from the defaults."""
        changed = [f"{k}={_format(v)}" for k, v in self.options().items() if v != _default(type(self), k)]
        return self.name + (":" + ",".join(changed) if changed else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "options": self.options()}


METHODS: Registry[type[MethodConfig]] = Registry("method")


def register_method(name: str, summary: str):
    """Class decorator: names a config class and adds it to the method registry."""

    def add(cls):
        cls.name, cls.summary = name, summary
        return METHODS.register(name)(cls)

    return add


def parse_methods(text: str) -> list[MethodConfig]:
    """'fp32,rtn:bits=4,group_size=64,gptq:bits=3' -> configs; an option without a method
    name continues the previous method. Methods that resolve to the same config (``rtn`` and
    ``rtn:bits=4``) are one config, at the first one's place (``duplicate_method_notes`` says so)."""
    return list(_spellings(text))


def duplicate_method_notes(text: str) -> list[str]:
    """One note per config that ``text`` names more than once (merged by ``parse_methods``)."""
    return [f"methods {', '.join(repr(s) for s in spelled)} resolve to the same config ({config.label()}): "
            f"merged into one row" for config, spelled in _spellings(text).items() if len(spelled) > 1]


def _spellings(text: str) -> dict[MethodConfig, list[str]]:
    """Each distinct config of ``text`` (in order) -> how ``text`` spelled it."""
    configs: dict[MethodConfig, list[str]] = {}
    for group in _method_groups(text):
        config = make_config(group[0], dict(_split_option(group[0], o) for o in group[1:]))
        configs.setdefault(config, []).append(group[0] + (":" + ",".join(group[1:]) if group[1:] else ""))
    return configs


def _method_groups(text: str) -> list[list[str]]:
    """'rtn:bits=4,group_size=64,fp32' -> [['rtn', 'bits=4', 'group_size=64'], ['fp32']]."""
    groups: list[list[str]] = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        head = token.split(":", 1)[0]
        if "=" in head and groups:
            groups[-1].append(token)
        else:
            name, _, first = token.partition(":")
            groups.append([name] + ([first] if first else []))
    if not groups:
        raise UserError("no methods given; try --methods fp32,ptq-dynamic")
    return groups


def make_config(name: str, raw_options: dict[str, Any]) -> MethodConfig:
    cls = METHODS.get(name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, raw in raw_options.items():
        if key not in fields:
            raise UserError(
                f"method '{name}' has no option '{key}'{closest(key, fields)}; "
                f"its options: {', '.join(fields) or 'none'}"
            )
        values[key] = _coerce(name, key, raw, type(fields[key].default))
    return cls(**values)


def config_from_dict(data: dict[str, Any]) -> MethodConfig:
    cls = METHODS.get(data["name"])
    if data.get("version", 1) != cls.version:
        raise UserError(f"{data['name']} config version {data.get('version')} != supported {cls.version}")
    return make_config(data["name"], data.get("options", {}))


def _split_option(method: str, text: str) -> tuple[str, str]:
    key, eq, value = text.partition("=")
    if not eq:
        raise UserError(f"option '{text}' of method '{method}' must look like key=value")
    return key.strip(), value.strip()


def _coerce(method: str, key: str, raw: Any, kind: type) -> Any:
    if not isinstance(raw, str):
        return raw
    try:
        if kind is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        return kind(raw)
    except ValueError:
        raise UserError(f"{method}: option {key}={raw!r} is not a valid {kind.__name__}") from None


def _default(cls, key):
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    return f.default


def _format(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
