"""An experiment file (YAML or TOML) read into plain data plus the line of every key and item,
so that a validation error can say where the mistake is."""
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UserError

KeyPath = tuple  # where a value is in the document: ("methods", 2, "ptq-static", "observer")


@dataclass
class Document:
    data: dict[str, Any]
    file: str
    lines: dict[KeyPath, int] = field(default_factory=dict)
    text: str = ""

    def line(self, path: KeyPath) -> int | None:
        """Line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def where(self, path: KeyPath) -> str:
        line = self.line(path)
        return f"{self.file}:{line}" if line else self.file

    def error(self, path: KeyPath, message: str) -> UserError:
        return UserError(f"{self.where(path)}: {message}")


def load_document(path: str | Path) -> Document:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"experiment file '{path}' not found")
    text = path.read_text()
    if path.suffix == ".toml":
        return _load_toml(text, str(path))
    if path.suffix in (".yaml", ".yml"):
        return _load_yaml(text, str(path))
    raise UserError(f"{path}: experiment files are .yaml, .yml or .toml")


def _load_yaml(text: str, file: str) -> Document:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{file}:{mark.line + 1}" if mark else file
        raise UserError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    finally:
        loader.dispose()
    doc = Document(data={}, file=file, text=text)
    data = _yaml_value(node, (), doc, loader) if node is not None else {}
    if not isinstance(data, dict):
        raise doc.error((), "the experiment must be a mapping of keys (grid, methods, ...)")
    doc.data = data
    return doc


def _yaml_value(node, path: KeyPath, doc: Document, loader) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node)
            doc.lines[path + (key,)] = key_node.start_mark.line + 1
            if key in out:
                raise doc.error(path + (key,), f"key '{key}' is given twice")
            out[key] = _yaml_value(value_node, path + (key,), doc, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_yaml_value(item, path + (i,), doc, loader) for i, item in enumerate(node.value)]
    return loader.construct_object(node)


def _load_toml(text: str, file: str) -> Document:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise UserError(f"{file}: not valid TOML: {e}") from None
    doc = Document(data=data, file=file, text=text)
    _toml_lines(data, (), 0, text.splitlines(), doc)
    return doc


def _toml_lines(value: Any, path: KeyPath, start: int, lines: list[str], doc: Document) -> None:
    """tomllib keeps no positions: find each key in the raw text, after its parent's line."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        found = _find_key(lines, key, start) if isinstance(key, str) else None
        if found is not None:
            doc.lines[path + (key,)] = found + 1
        _toml_lines(child, path + (key,), found if found is not None else start, lines, doc)


def _find_key(lines: list[str], key: str, start: int) -> int | None:
    pattern = re.compile(r'(^|[\s{,.\[])["\']?' + re.escape(key) + r'["\']?\s*(=|\]|\.)')
    return next((i for i in range(start, len(lines)) if pattern.search(lines[i].split("#", 1)[0])), None)
