import numpy as np
import pytest

from quantbench.errors import UserError
from quantbench.tasks.csv_table import class_labels, load_csv


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_numeric_text_and_missing_values_are_encoded_and_reported(tmp_path):
    rows = "\n".join(f"{i},{'red' if i % 2 else 'blue'},{'' if i == 3 else i * 2},{i % 2}" for i in range(30))
    x, y, source, notes = load_csv(write(tmp_path, "a,color,b,label\n" + rows + "\n"), "label")
    assert x.shape == (30, 3) and x.dtype == np.float32
    assert set(y) == {0, 1}
    assert x[3, 2] == np.median([i * 2 for i in range(30) if i != 3])
    assert any("color" in n and "text" in n for n in notes)
    assert any("'b'" in n and "1 missing" in n for n in notes)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_csv(str(tmp_path / "nope.csv"), "y")


def test_target_absent_lists_columns(tmp_path):
    with pytest.raises(UserError, match="columns: a, b, labl"):
        load_csv(write(tmp_path, "a,b,labl\n1,2,0\n"), "label")


def test_target_absent_suggests_closest(tmp_path):
    with pytest.raises(UserError, match="did you mean 'labl'"):
        load_csv(write(tmp_path, "a,b,labl\n1,2,0\n"), "label")


@pytest.mark.parametrize("text, message", [
    ("", "is empty"),
    ("a,b,label\n", "no data rows"),
    ("a,b,label\n1,2,0\n1,2\n", "malformed"),
    ("a,label\n1,0\n2,0\n", "single class"),
    ("a,label\n1,\n2,1\n", "empty values"),
    ("a,label\ninf,0\n2,1\n", "infinite"),
])
def test_bad_tables_are_refused_with_the_reason(tmp_path, text, message):
    with pytest.raises(UserError, match=message):
        load_csv(write(tmp_path, text), "label")


def test_binary_garbage_is_a_clear_error(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(UserError, match="UTF-8"):
        load_csv(str(path), "label")


def test_target_required(tmp_path):
    with pytest.raises(UserError, match="--target is required"):
        load_csv(write(tmp_path, "a,b\n1,2\n"), None)


def test_numeric_labels_are_compared_as_numbers_and_text_labels_as_text():
    classes, y = class_labels(["2", "10", "1.0", "1", "02", "10"], "target")
    assert classes == ["1", "2", "10"] and list(y) == [1, 2, 0, 0, 1, 2]
    classes, y = class_labels(["none", "mild", "none", "severe", "mild", "none"], "target")
    assert classes == ["mild", "none", "severe"]  # 'none' is a class here, not a missing value


def test_missing_markers_in_a_numeric_column_are_imputed(tmp_path):
    rows = "\n".join(f"{i},{['NA', '?', 'nan'][i] if i < 3 else i},{i % 2}" for i in range(30))
    x, _, _, notes = load_csv(write(tmp_path, "a,b,label\n" + rows + "\n"), "label")
    assert notes == ["column 'b': 3 missing values imputed with the median"] and x[0, 1] == 16
