"""The pandas fast path reads exactly what the precise reader reads, and hands every doubtful file back to it."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from core.data import csv_fast
from core.data.csv_reader import CsvCancelled, CsvError, Reporter, clear_cache, read_csv
from core.tasks.csv_family import CsvFamily

CORPUS = Path(__file__).parents[1] / "data" / "csv"
_spec = importlib.util.spec_from_file_location("bench_csv", Path(__file__).parents[2] / "scripts" / "bench_csv.py")
bench_csv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_csv)


def fast(path: Path):
    return csv_fast.read_fast(path, Reporter(path, None), None)


def precise(path: Path, monkeypatch):
    """What read_csv gave before the fast path: the table, or the message."""
    clear_cache()
    monkeypatch.setattr(csv_fast, "FAST_MIN_BYTES", float("inf"))
    try:
        return read_csv(path)
    except CsvError as exc:
        return str(exc)
    finally:
        monkeypatch.setattr(csv_fast, "FAST_MIN_BYTES", 0)
        clear_cache()


def outcome(path: Path, monkeypatch):
    """What read_csv gives with the fast path tried first (on any size)."""
    clear_cache()
    monkeypatch.setattr(csv_fast, "FAST_MIN_BYTES", 0)
    try:
        return read_csv(path)
    except CsvError as exc:
        return str(exc)


def column_result(table, column):
    try:
        return ("values", table.numeric(column).tolist())
    except CsvError as exc:
        return ("error", str(exc), exc.line, exc.column)


def assert_same(a, b):
    """Two tables hold the same cells, lines, names and numbers (or two messages are the same)."""
    if isinstance(a, str) or isinstance(b, str):
        assert a == b
        return
    assert (a.columns, a.delimiter, a.encoding, a.has_header, a.warnings) == \
           (b.columns, b.delimiter, b.encoding, b.has_header, b.warnings)
    assert a.lines.tolist() == b.lines.tolist() and a.preview(60) == b.preview(60)
    for c in a.columns:
        assert a.text(c) == b.text(c), c
        assert a.is_numeric(c) == b.is_numeric(c) and a.number_note(c) == b.number_note(c)
        ra, rb = column_result(a, c), column_result(b, c)
        assert ra[0] == rb[0] and (ra[0] == "error" or np.array_equal(ra[1], rb[1], equal_nan=True)), c
        assert ra == rb or ra[0] == "values"
        names, codes = a.labels(c)
        assert [names[k] for k in codes] == b.text(c)


GOOD = {
    "quoted.csv": 'task,x,y,note\n"a",1.5,2,"with, comma"\n"b ",2.5,3,"say ""hi"""\na,3,4,""\n"b",-4e-1,5,plain\n',
    "spaces.csv": "task , x ,y\n s1 , 1.25 , 3\ns1,  2.5,4 \n s2,3 , 5\n",
    "order.csv": "y,x2,task,x1\n1,2,t1,3\n4,5,t2,6\n7,8,t1,9\n",
    "int_float.csv": "task,x,y\n1,1,0.1\n1,2,2\n2,3,3.25\n2,4.0,1e3\n",
    "numeric_ids.csv": "subject,x,y\n007,1,2\n7,2,3\n007,3,4\n7.0,4,5\n+7,5,6\n",
    "crlf.csv": "task,x,y\r\nA,1,2\r\nB,3,4\r\nA,5,6\r\n",
    "bom.csv": "\ufefftask,größe,y\nä,1,2\nö,3,4\nä,5,6\n",
    "semicolon.csv": "task;x;y\nA;1.5;2\nB;2.5;3\n",
    "tab.csv": "task\tx\ty\nA\t1\t2\nB\t3\t4\n",
    "no_header.csv": "1,2,3\n4,5,6\n7,8,9\n",
    "duplicates.csv": "id,h,h,w\n1,2,3,4\n5,6,7,8\n",
    "no_final_newline.csv": "task,x,y\nA,1,2\nB,3,4",
    "text_only.csv": "a,b\nx,y\nz,w\n",
    "exact_digits.csv": "t,x\na,0.1000000000000000055511151231257827\nb,2.2250738585072011e-308\na,9007199254740993\n",
}


@pytest.mark.parametrize("name", sorted(GOOD))
def test_fast_path_reads_what_the_precise_reader_reads(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(GOOD[name].encode("utf-8"))
    assert fast(path) is not None, "a plain file should take the fast path"
    assert_same(outcome(path, monkeypatch), precise(path, monkeypatch))


BAD = {
    "stray_quote.csv": 'task,x\na,1\nb"c,2\n',
    "text_after_quote.csv": 'task,x\n"a" ,1\nb,2\n',
    "unclosed.csv": 'task,x\n"a,1\nb,2\n',
    "quoted_newline.csv": 'task,x\n"a\nb",1\nc,2\n',
    "blank_line.csv": "task,x\na,1\n\nb,2\n",
    "trailing_blank.csv": "task,x\na,1\nb,2\n\n",
    "empty_row.csv": "task,x\na,1\n,\nb,2\n",
    "missing.csv": "task,x\na,1\nb,\nc,3\n",
    "na.csv": "task,x\na,1\nb,NA\n",
    "nan.csv": "task,x\na,1\nb,nan\n",
    "inf.csv": "task,x\na,1\nb,inf\n",
    "overflow.csv": "task,x\na,1\nb,1e400\n",
    "true.csv": "task,x\na,1\nb,2\nc,True\n",
    "underscore.csv": "task,x\na,1\nb,1_000\n",
    "unicode_digits.csv": "task,x\na,1\nb,\u0663\n",
    "nbsp.csv": "task,x\na,1\nb,\u00a02\n",
    "decimal_comma.csv": "task;x\na;1,5\nb;2,5\n",
    "unit.csv": "task,x\na,1\nb,12 kg\n",
    "ragged.csv": "task,x\na,1\nb,2,3\n",
    "short_row.csv": "task,x,y\na,1,2\nb,2\n",
    "cr_only.csv": "task,x\ra,1\rb,2\r",
    "trailing_delimiter.csv": "task,x,\na,1,\nb,2,\n",
    "unnamed.csv": "task,,y\na,1,2\nb,3,4\n",
    "double_bom.csv": "\ufeff\ufefftask,x\na,1\n",
}
# a bad value within the first rows makes the column text, which the precise number parser then reads (and
# explains); bad values further down are test_a_token_late_in_a_number_column_...'s
TEXT_COLUMNS = {"decimal_comma.csv", "unit.csv", "inf.csv", "missing.csv", "na.csv", "nan.csv", "short_row.csv",
                "true.csv", "underscore.csv", "overflow.csv", "unicode_digits.csv", "nbsp.csv"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_doubtful_files_go_to_the_precise_reader_with_the_same_result(tmp_path, monkeypatch, name):
    path = tmp_path / name
    path.write_bytes(BAD[name].encode("utf-8"))
    if name not in TEXT_COLUMNS:
        assert fast(path) is None
    assert_same(outcome(path, monkeypatch), precise(path, monkeypatch))


def test_a_legacy_encoding_goes_to_the_precise_reader(tmp_path, monkeypatch):
    path = tmp_path / "latin1.csv"
    path.write_bytes("city,x\nZürich,1\nMontréal,2\n".encode("latin-1"))
    assert fast(path) is None
    table = outcome(path, monkeypatch)
    assert table.encoding == "cp1252" and table.text("city") == ["Zürich", "Montréal"]


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.csv")))
def test_every_corpus_file_reads_the_same_with_the_fast_path_tried_first(monkeypatch, name):
    assert_same(outcome(CORPUS / name, monkeypatch), precise(CORPUS / name, monkeypatch))


@pytest.mark.parametrize("token", ["1.", ".5", "+.5", "1E5", "1e+05", "0001", "-0", "4.9e-324", "1e-400", " 2 ",
                                   "1.5e", "0x10", "1d5", "TRUE", "false", "1,5", "--1", "½", "NaN", "-inf",
                                   "Infinity", "null", "?", "#N/A", "None", "\t3\t", "1 000", "５"])
def test_a_token_late_in_a_number_column_reads_as_the_precise_reader_reads_it(tmp_path, monkeypatch, token):
    """The head says 'numbers'; a surprise further down must not be read differently (or silently)."""
    path = tmp_path / "t.csv"
    path.write_text("task,x\n" + "".join(f"t{i},{i}.25\n" for i in range(60)) + f"late,{token}\n", encoding="utf-8")
    assert_same(outcome(path, monkeypatch), precise(path, monkeypatch))


def both_readers(params, monkeypatch) -> tuple[CsvFamily, CsvFamily]:
    """The family ``params`` describe, read by the fast reader and by the precise one."""
    families = []
    for limit in (0, float("inf")):
        clear_cache()
        monkeypatch.setattr(csv_fast, "FAST_MIN_BYTES", limit)
        families.append(CsvFamily(params))
    return families[0], families[1]


def test_families_from_both_readers_are_identical(tmp_path, monkeypatch):
    """Same task names and order, rows, split, statistics and tensors, whichever reader read the file."""
    path = bench_csv.generate(tmp_path / "long.csv", n_tasks=60, seed=3)
    text = path.read_text().replace("t00007,", "007,").replace("t00008,", "7,")  # ids that look like numbers
    path.write_text(text.replace("\n", "\r\n"))
    params = {"paths": [str(path)], "task_column": "task", "target": "y"}
    a, b = both_readers(params, monkeypatch)
    assert a.normalization == b.normalization and a.features == b.features == ["x1", "x2", "x3"]
    for split in ("train", "val", "test"):
        assert a.task_names(split) == b.task_names(split)
        assert "007" in a.task_names("train") + a.task_names("val") + a.task_names("test")
        for i in range(len(a.task_names(split))):
            (xa, ya), (xb, yb) = a.task_points(split, i), b.task_points(split, i)
            assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
    for t in range(len(a._names)):
        assert torch.equal(a._x[t], b._x[t]) and torch.equal(a._y[t], b._y[t])
    batch_a = a.sample(4, 5, 5, torch.Generator().manual_seed(1))
    batch_b = b.sample(4, 5, 5, torch.Generator().manual_seed(1))
    assert torch.equal(batch_a.support_x, batch_b.support_x) and torch.equal(batch_a.query_y, batch_b.query_y)


def test_classification_labels_and_tasks_match(monkeypatch):
    params = {"paths": [str(CORPUS / "classification.csv")], "task_column": "writer", "target": "letter",
              "classification": True, "split": [0.6, 0.2, 0.2]}
    a, b = both_readers(params, monkeypatch)
    assert a.classes == b.classes and a.normalization == b.normalization
    for t in range(len(a._names)):
        assert a._names[t] == b._names[t] and torch.equal(a._y[t], b._y[t]) and torch.equal(a._x[t], b._x[t])


def test_large_files_take_the_fast_path_and_report_progress_and_cancel(tmp_path):
    path = bench_csv.generate(tmp_path / "big.csv", n_tasks=600, seed=0)
    assert path.stat().st_size > csv_fast.FAST_MIN_BYTES
    clear_cache()
    seen = []
    table = read_csv(path, progress=seen.append)
    assert isinstance(table._cells["x1"], csv_fast._Numbers)  # read by pandas, not the csv module
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 2
    clear_cache()
    with pytest.raises(CsvCancelled):  # cancelling is not a reason to fall back
        read_csv(path, progress=lambda f: f > 0.1)
