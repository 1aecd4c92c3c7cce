"""Read a user's CSV into numeric features and integer class labels, or say exactly why not."""
import csv
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..registry import closest


def load_csv(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Features, labels, a description, and notes on what was imputed or encoded."""
    header, rows = _read_rows(path)
    if not target:
        raise UserError(f"--target is required with --data; columns in {path}: {', '.join(header)}")
    if target not in header:
        raise UserError(f"target column '{target}' not in {path}{closest(target, header)}; columns: {', '.join(header)}")
    col = header.index(target)
    labels = [r[col] for r in rows]
    if any(v == "" for v in labels):
        raise UserError(f"target column '{target}' has {labels.count('')} empty values; fill or drop those rows")
    features = [h for h in header if h != target]
    if not features:
        raise UserError(f"{path} has no feature columns besides '{target}'")
    columns, notes = [], []
    for h in features:
        values, note = _encode_column(h, [r[header.index(h)] for r in rows])
        columns.append(values)
        notes += [note] if note else []
    x = np.stack(columns, axis=1)
    classes, y = np.unique(np.asarray(labels), return_inverse=True)
    if len(classes) < 2:
        raise UserError(f"target column '{target}' has a single class ({classes[0]}); nothing to classify")
    source = f"{Path(path).name} (target '{target}', {len(classes)} classes)"
    return x.astype(np.float32), y.astype(np.int64), source, notes


def _read_rows(path: str) -> tuple[list[str], list[list[str]]]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"data file not found: {path}")
    try:
        with p.open(newline="", encoding="utf-8") as f:
            table = [row for row in csv.reader(f) if row]
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"cannot read {path} as a UTF-8 CSV: {e}") from None
    if not table:
        raise UserError(f"{path} is empty")
    header, rows = [h.strip() for h in table[0]], table[1:]
    if not rows:
        raise UserError(f"{path} has a header but no data rows")
    bad = [i + 2 for i, r in enumerate(rows) if len(r) != len(header)]
    if bad:
        raise UserError(
            f"{path} is malformed: {len(bad)} rows do not have {len(header)} fields (first: line {bad[0]})"
        )
    return header, [[v.strip() for v in r] for r in rows]


def _encode_column(name: str, values: list[str]) -> tuple[np.ndarray, str | None]:
    """Numbers stay numbers (missing -> column median); text becomes one integer code per
    category (missing -> its own code) since an MLP needs numbers."""
    present = [v for v in values if v != ""]
    if not present:
        raise UserError(f"column '{name}' has no values")
    try:
        numbers = np.array([float(v) if v != "" else np.nan for v in values])
    except ValueError:
        codes = {v: i for i, v in enumerate(sorted(set(values)))}
        note = f"column '{name}' is text: encoded as {len(codes)} integer categories"
        return np.array([codes[v] for v in values], dtype=np.float64), note
    if np.isinf(numbers).any():
        raise UserError(f"column '{name}' contains infinite values")
    missing = int(np.isnan(numbers).sum())
    note = f"column '{name}': {missing} missing values imputed with the median" if missing else None
    return np.where(np.isnan(numbers), np.nanmedian(numbers), numbers), note
