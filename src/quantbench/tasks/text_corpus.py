"""Text that is on every machine: the docstrings of Python's standard library, as sentences
(for embedding tasks) or as running text (for language-model perplexity). Real English
technical prose, no download; it varies slightly across Python versions, which the task
fingerprint records. A local text file or a `datasets` corpus can be used instead."""
import hashlib
import importlib
import inspect
import re
import warnings
from pathlib import Path

from ..errors import UserError

_MODULES = ("argparse", "asyncio", "calendar", "collections", "contextlib", "csv", "dataclasses", "datetime",
            "decimal", "difflib", "email.message", "enum", "fractions", "functools", "heapq", "http.client",
            "inspect", "json", "logging", "pathlib", "pickle", "random", "shutil", "socket", "sqlite3",
            "statistics", "string", "subprocess", "tarfile", "tempfile", "textwrap", "threading", "traceback",
            "typing", "unittest", "urllib.parse", "uuid", "zipfile")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def stdlib_paragraphs() -> list[str]:
    """Docstring paragraphs of a fixed list of stdlib modules and their public members, in order."""
    seen, paragraphs = set(), []
    for doc in _docstrings():
        for para in re.split(r"\n\s*\n", doc):
            text = " ".join(para.split())
            if len(text.split()) >= 6 and text not in seen and not _looks_like_code(text):
                seen.add(text)
                paragraphs.append(text)
    return paragraphs


def stdlib_sentences(min_words: int = 6, max_words: int = 40) -> list[str]:
    sentences, seen = [], set()
    for para in stdlib_paragraphs():
        for s in _SENTENCE_END.split(para):
            if min_words <= len(s.split()) <= max_words and s not in seen and s[0].isupper():
                seen.add(s)
                sentences.append(s)
    return sentences


def read_text(source: str) -> str:
    """'stdlib-docs', a path to a UTF-8 text file, or 'wikitext2' (needs the `datasets` package and network)."""
    if source == "stdlib-docs":
        return "\n\n".join(stdlib_paragraphs())
    if source in ("wikitext2", "wikitext-2"):
        return _wikitext2()
    path = Path(source)
    if not path.is_file():
        raise UserError(f"corpus not found: {source} (use a text file, 'stdlib-docs' or 'wikitext2')")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"cannot read {source} as UTF-8 text: {e}") from None
    if not text.strip():
        raise UserError(f"{source} is empty")
    return text


def text_sha256(text: str) -> str:
    """sha256 (16 hex digits) of a corpus's text as read: equal hashes mean the same evaluation text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _wikitext2() -> str:
    try:
        from datasets import load_dataset

        data = load_dataset("wikitext", "wikitext-2-raw-v1", split="test")
    except Exception as e:  # no package, no network, hub error: all are the user's to fix
        raise UserError(f"wikitext2 needs the 'datasets' package and network access ({type(e).__name__}: {e}); "
                        "pass a local text file with --corpus instead") from None
    return "\n\n".join(data["text"])


def _docstrings():
    with warnings.catch_warnings():  # typing.io and similar warn when touched
        warnings.simplefilter("ignore")
        yield from _module_docstrings()


def _module_docstrings():
    for name in _MODULES:
        module = importlib.import_module(name)
        yield inspect.getdoc(module) or ""
        for attr, member in sorted(vars(module).items()):
            if not attr.startswith("_") and (inspect.isclass(member) or inspect.isfunction(member)) \
                    and getattr(member, "__module__", None) == module.__name__:
                yield inspect.getdoc(member) or ""


def _looks_like_code(text: str) -> bool:
    return text.startswith((">>>", "...")) or sum(c in "()[]{}=_<>:" for c in text) > len(text) / 12
