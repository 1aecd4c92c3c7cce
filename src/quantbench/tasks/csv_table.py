"""Read a user's CSV into numeric features and integer class labels, or say exactly why not."""
import csv
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import UserError
from ..registry import closest

MISSING = {"", "na", "n/a", "nan", "-nan", "null", "<na>", "#n/a", "#na", "?"}
"""Cells read as missing, compared in lower case: pandas' defaults but 'none' (a class name as often as
a gap), and UCI's '?'."""
MAX_MEASUREMENT_CLASSES = 20
"""A numeric target with more distinct non-integer values than this is a measurement, not a class."""
SNIFF_LINES = 50


def load_csv(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Features, labels, a description, and notes on what was read, imputed or encoded."""
    header, rows, notes = _read_rows(path)
    if not target:
        raise UserError(f"--target is required with --data; columns in {path}: {', '.join(header)}")
    if target not in header:
        raise UserError(f"target column '{target}' not in {path}{closest(target, header)}; columns: {', '.join(header)}")
    col = header.index(target)
    labels = [r[col] for r in rows]
    empty = sum(is_missing(v) for v in labels)
    if empty:
        raise UserError(f"target column '{target}' has {empty} empty values (blank or a missing marker such as NA); "
                        "fill or drop those rows")
    features = [h for h in header if h != target]
    if not features:
        raise UserError(f"{path} has no feature columns besides '{target}'")
    columns = []
    for h in features:
        values, note = _encode_column(h, [r[header.index(h)] for r in rows])
        columns.append(values)
        notes += [note] if note else []
    classes, y = class_labels(labels, f"target column '{target}'")
    source = f"{Path(path).name} (target '{target}', {len(classes)} classes)"
    return np.stack(columns, axis=1).astype(np.float32), y, source, notes


def class_labels(values: Sequence, name: str) -> tuple[list[str], np.ndarray]:
    """The classes in index order and each row's class index. Numbers are compared as numbers, so '1'
    and '1.0' are one class; a target with many distinct non-integer numbers is a measurement and is
    refused with how to make it a class (quantbench compares classifiers)."""
    numbers = _numbers_or_none(values)
    if numbers is not None:
        _check_class_numbers(numbers, name)
    classes, y = np.unique(numbers if numbers is not None else [str(v) for v in values], return_inverse=True)
    shown = [f"{c:g}" if numbers is not None else str(c) for c in classes]
    if len(classes) < 2:
        raise UserError(f"{name} has a single class ({shown[0]}); nothing to classify")
    if len(classes) > len(values) / 2:
        raise UserError(f"{name} has {len(classes)} distinct values in {len(values)} rows: most classes have one "
                        "row, nothing to learn; group the values into fewer classes")
    return shown, y.astype(np.int64)


def _check_class_numbers(numbers: np.ndarray, name: str) -> None:
    if not np.isfinite(numbers).all():
        raise UserError(f"{name} has {int((~np.isfinite(numbers)).sum())} values that are not finite; "
                        "fill or drop those rows")
    distinct = np.unique(numbers)
    if len(distinct) > MAX_MEASUREMENT_CLASSES and (distinct != np.round(distinct)).any():
        examples = ", ".join(f"{c:g}" for c in distinct[:: len(distinct) // 3][:3])
        raise UserError(f"{name} looks continuous ({len(distinct)} distinct numbers such as {examples}) and "
                        "quantbench compares classifiers: make it a class, e.g. bin it into quartiles in a new "
                        "column (pandas.qcut(values, 4, labels=False)) and use that as the target")


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING


def _numbers_or_none(values: Sequence) -> np.ndarray | None:
    try:
        return np.asarray([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        return None


def _read_rows(path: str) -> tuple[list[str], list[list[str]], list[str]]:
    p = Path(path)
    if p.is_dir():
        raise UserError(f"--data {path} is a directory; give the CSV file inside it")
    if not p.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            dialect = _sniff(f)
            table = [row for row in csv.reader(f, dialect) if row]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} as a UTF-8 CSV: {e}") from None
    if not table:
        raise UserError(f"{path} is empty")
    header, rows = [h.strip() for h in table[0]], table[1:]
    _check_unique(header, path)
    if not rows:
        raise UserError(f"{path} has a header but no data rows")
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise UserError(
            f"{path} is malformed: {len(bad)} rows do not have {len(header)} fields (first: line {bad[0]})"
        )
    notes = [] if dialect.delimiter == "," else [f"{p.name} read as {_DELIMITER_NAMES[dialect.delimiter]}-separated"]
    return header, [[v.strip() for v in r] for r in rows], notes


_DELIMITER_NAMES = {"\t": "tab", ";": "semicolon", "|": "pipe", ",": "comma"}


def _sniff(f) -> type[csv.Dialect] | csv.Dialect:
    """The file's delimiter (comma, tab, semicolon or pipe) and quoting, from its first lines; comma
    when they do not tell (a single column). Leaves ``f`` at its start."""
    sample = "".join(f.readline() for _ in range(SNIFF_LINES))
    f.seek(0)
    try:
        return csv.Sniffer().sniff(sample, delimiters="".join(_DELIMITER_NAMES))
    except csv.Error:
        return csv.excel


def _check_unique(header: list[str], path: str) -> None:
    repeated = [h for h, n in Counter(header).items() if n > 1]
    if repeated:
        where = "; ".join(f"'{h}' is columns {', '.join(str(i + 1) for i, x in enumerate(header) if x == h)}"
                          for h in repeated)
        raise UserError(f"the header of {path} repeats column names ({where}); give each column its own name")


def _encode_column(name: str, values: list[str]) -> tuple[np.ndarray, str | None]:
    """Numbers stay numbers (missing -> column median); text becomes one integer code per
    category (missing -> its own code) since an MLP needs numbers."""
    if all(map(is_missing, values)):
        raise UserError(f"column '{name}' has no values (every cell is empty or a missing marker such as NA); drop it")
    numbers = _numbers_or_none([np.nan if is_missing(v) else v for v in values])
    if numbers is None:
        values = ["" if is_missing(v) else v for v in values]
        codes = {v: i for i, v in enumerate(sorted(set(values)))}
        note = f"column '{name}' is text: encoded as {len(codes)} integer categories"
        return np.array([codes[v] for v in values], dtype=np.float64), note
    _check_float32_range(name, numbers)
    missing = int(np.isnan(numbers).sum())
    note = f"column '{name}': {missing} missing values imputed with the median" if missing else None
    return np.where(np.isnan(numbers), np.nanmedian(numbers), numbers), note


def _check_float32_range(name: str, numbers: np.ndarray) -> None:
    bad = ~np.isnan(numbers) & not_finite_in_float32(numbers)
    if bad.any():
        row = int(bad.argmax())
        raise UserError(f"column '{name}' has {int(bad.sum())} values that are infinite or beyond float32's range "
                        f"(+-3.4e38), e.g. {numbers[row]:g} on line {row + 2}; rescale the column (e.g. log10) "
                        "or drop it")


def not_finite_in_float32(values: np.ndarray) -> np.ndarray:
    """Where ``values`` are not finite once cast to float32, the dtype the model computes in: NaN, inf,
    and finite numbers beyond its range (1e39 becomes inf)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return ~np.isfinite(np.asarray(values, dtype=np.float64).astype(np.float32))
