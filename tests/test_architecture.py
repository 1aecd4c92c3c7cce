"""The shape of the library: runtimes execute formats and never ask which method made them; methods
never import a runtime; measure/ imports neither; no import circle among the packages."""
import ast
from pathlib import Path

import quantbench
from quantbench.config import METHODS

SRC = Path(quantbench.__file__).parent
PACKAGES = ("methods", "runtimes", "tasks", "measure", "formats", "kernels")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every quantbench module ``path`` imports, at module level or inside functions."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if (SRC.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                          or (SRC.parent / Path(*candidate.split("."))).is_dir() else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("quantbench")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports_of(p) for p in SRC.rglob("*.py")}


def package_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in PACKAGES else None


def test_no_runtime_names_a_method():
    """No string in runtimes/ is a method's name (or a method name with options), no identifier a
    method's config class: a runtime cannot branch on which method made a format."""
    names = set(METHODS.names())
    classes = {cls.__name__ for cls in map(METHODS.get, METHODS.names())}
    for path in (SRC / "runtimes").glob("*.py"):
        tree = ast.parse(path.read_text())
        strings = {n.value.split(":")[0] for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
        identifiers = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | \
                      {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
        assert not strings & names and not identifiers & classes, (path.name, strings & names, identifiers & classes)


def test_methods_import_no_runtime_and_measure_imports_neither():
    for module, imported in graph().items():
        targets = {package_of(m) for m in imported}
        if package_of(module) == "methods":
            assert "runtimes" not in targets, module
        if package_of(module) in ("measure", "formats", "kernels"):
            assert not targets & {"methods", "runtimes"}, (module, imported)


def test_no_import_circle_among_the_packages():
    """Package-level: an edge A -> B when a module of A imports one of B (inside functions too)."""
    edges = {}
    for module, imported in graph().items():
        source = package_of(module)
        for target in filter(None, map(package_of, imported)):
            if source and target != source:
                edges.setdefault(source, set()).add(target)

    def reaches(start, goal, seen=()):
        return any(t == goal or (t not in seen and reaches(t, goal, (*seen, t))) for t in edges.get(start, ()))

    circles = [p for p in PACKAGES if reaches(p, p)]
    assert not circles, {p: sorted(edges.get(p, ())) for p in circles}
