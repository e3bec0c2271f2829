"""The CSV reader against a corpus of messy and broken files: what it reads, and what it says when it cannot."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from core.data.csv_reader import CsvCancelled, CsvError, clear_cache, read_csv
from core.errors import MamlError

CORPUS = Path(__file__).parents[1] / "data" / "csv"
_spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
make_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_corpus)


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    return make_corpus.write_binary(tmp_path_factory.mktemp("binary"))


def read(name: str):
    return read_csv(CORPUS / name)


def test_committed_corpus_is_what_the_script_writes():
    for name, data in make_corpus.TEXT.items():
        assert (CORPUS / name).read_bytes() == data, f"{name} differs: run python tests/data/csv/make_corpus.py"


# -- messy but readable ---------------------------------------------------------------------------
def test_semicolons_decimal_commas_windows_line_endings_blank_lines_and_trailing_delimiters():
    t = read("semicolon_decimal_comma.csv")
    assert t.delimiter == ";" and t.has_header and t.columns == ("subject", "age", "height")
    assert t.numeric("age").tolist() == [1.5, 2.5, 1.5, 2.5]
    assert t.numeric("height").tolist() == [80.25, 90.5, 79.0, 88.75]
    assert t.lines.tolist() == [2, 3, 5, 6]  # physical lines, the blank one counted
    assert "decimal mark" in t.number_note("age")


def test_tab_delimited():
    t = read("tab.csv")
    assert t.delimiter == "\t" and t.columns == ("subject", "age", "height") and t.n_rows == 48


def test_rfc4180_quoting_with_commas_newlines_and_doubled_quotes():
    t = read("quoted.csv")
    assert t.text("comment") == ["plain", "with, comma", "two\nlines", 'say "hi"']
    assert t.numeric("value").tolist() == [1.5, 2.5, 3.5, 4.5]
    assert t.lines.tolist() == [2, 3, 4, 6]  # the record after the two-line value starts on line 6


def test_utf8_with_bom_and_latin1_fallback():
    t = read("utf8_bom.csv")
    assert t.columns == ("name", "größe", "wert") and t.encoding == "utf-8-sig" and t.text("name") == ["ä", "ö"]
    t = read("latin1.csv")
    assert t.columns == ("city", "température") and t.text("city") == ["Zürich", "Montréal"]
    assert any("not UTF-8" in w and "CSV UTF-8" in w for w in t.warnings)


@pytest.mark.parametrize("name", ["utf16_bom.csv", "utf16_no_bom.csv"])
def test_utf16(binary, name):
    t = read_csv(binary[name])
    assert t.columns == ("subject", "age", "height") and t.n_rows == 48
    assert t.numeric("height")[0] == 102.5
    assert t.text("subject")[0] == ("Süd" if name == "utf16_bom.csv" else "S1")


def test_crlf_blank_lines_rows_of_empty_cells_and_trailing_delimiters():
    t = read("crlf_blank_trailing.csv")
    assert t.columns == ("subject", "age", "height")
    assert t.text("subject") == ["A", "A", "B", "B"] and t.numeric("height").tolist() == [10, 20, 11, 21]
    assert t.lines.tolist() == [3, 4, 7, 8]


def test_task_ids_that_look_like_numbers_stay_text():
    assert read("numeric_ids.csv").text("subject") == ["007", "7", "007", "7.0", "7"]


def test_no_header_names_columns_by_position():
    t = read("no_header.csv")
    assert not t.has_header and t.columns == ("column_1", "column_2", "column_3")
    assert t.numeric("column_3").tolist() == [10, 12, 20, 22] and t.lines.tolist() == [1, 2, 3, 4]


def test_thousands_separators_and_decimal_commas_are_read_per_column():
    t = read("thousands_tab.csv")
    assert t.numeric("area").tolist() == [1234.5, 999.5, 12] and t.numeric("count").tolist() == [12, 1e6, 3]
    assert "thousands separator" in t.number_note("area")
    assert read("decimal_comma_tab.csv").numeric("area").tolist() == [1.5, 2.25, 3]


def test_duplicate_column_names_are_renamed_with_a_warning():
    t = read("duplicate_columns.csv")
    assert t.columns == ("id", "height", "height_2", "weight")
    assert t.numeric("height_2").tolist() == [11, 21]
    (warning,) = t.warnings
    assert "duplicate_columns.csv" in warning and "'height'" in warning and "columns 2, 3" in warning


def test_nan_reads_as_missing_not_as_an_error():
    values = read("nan_is_missing.csv").numeric("height")
    assert values[0] == 10 and np.isnan(values[1])


def test_preview_rows():
    assert read("quoted.csv").preview(2) == [["1", "plain", "1.5"], ["2", "with, comma", "2.5"]]


# -- bad values: file, line, column and what to do ------------------------------------------------
@pytest.mark.parametrize("name,column,line,words", [
    ("nonfinite_inf.csv", "height", 3, ["'inf' is not a finite number", "leave the cell empty"]),
    ("nonfinite_overflow.csv", "age", 3, ["'1e400' is not a finite number"]),
    ("text_in_numeric.csv", "age", 4, ["'three' is not a number", "leave this column out"]),
    ("units.csv", "weight", 2, ["'12 kg' has a unit ('kg')", "weight_kg", "1 more such value"]),
    ("percent.csv", "share", 2, ["'%' sign", "remove it"]),
    ("mixed_marks.csv", "age", 3, ["'2.5' uses '.' as the decimal mark", "one decimal mark"]),
])
def test_bad_values_are_named_by_file_line_and_column(name, column, line, words):
    with pytest.raises(CsvError) as info:
        read(name).numeric(column)
    err = info.value
    assert (err.path.name, err.line, err.column) == (name, line, column)
    assert str(err).startswith(f"{name}, line {line}, column '{column}': ")
    for w in words:
        assert w in str(err)


def test_a_value_with_a_newline_still_gives_a_one_line_message(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('id,w\n1,"12\nkg"\n2,3\n')
    with pytest.raises(CsvError) as info:
        read_csv(path).numeric("w")
    assert "\n" not in str(info.value) and info.value.line == 2


# -- refused files ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name,line,words", [
    ("empty.csv", None, ["is empty (0 bytes)", "export the data again"]),
    ("blank_only.csv", None, ["only blank lines"]),
    ("header_only.csv", None, ["has a header ('subject', 'age', 'height') but no data rows"]),
    ("ragged.csv", 3, ["more values than the header has columns (3)", "a comma must be quoted"]),
    ("unclosed_quote.csv", 3, ["closing quote", "written twice"]),
])
def test_unusable_text_files_are_refused_with_the_reason(name, line, words):
    with pytest.raises(CsvError) as info:
        read(name)
    assert info.value.path.name == name and info.value.line == line
    assert str(info.value).startswith(name)
    for w in words:
        assert w in str(info.value)


@pytest.mark.parametrize("name,words", [
    ("excel.csv", ["Excel workbook (.xlsx)", "Save As", "CSV"]),
    ("old_excel.csv", ["Excel workbook (.xls)", "Save As"]),
    ("garbage.csv", ["does not look like a text file", "export your data as CSV"]),
    ("gzipped.csv", ["gzip", "unpack"]),
    ("zipped.csv", ["zip archive", "unpack"]),
    ("nul_bytes.csv", ["NUL bytes"]),
    ("huge.csv", ["is 250.0 MB", "larger than 200.0 MB are refused", "subset"]),
])
def test_binary_and_huge_files_are_refused(binary, name, words):
    with pytest.raises(CsvError) as info:
        read_csv(binary[name])
    assert str(info.value).startswith(f"{name}: ") and isinstance(info.value, MamlError)
    for w in words:
        assert w in str(info.value)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(CsvError, match="nope.csv: cannot read the file"):
        read_csv(tmp_path / "nope.csv")
    with pytest.raises(CsvError, match="is a folder"):
        read_csv(tmp_path)


def test_header_detection():
    assert read("tab.csv").has_header and not read("no_header.csv").has_header
    assert read("classification.csv").has_header  # text label column, numeric features


# -- large files: progress, cancel, cache --------------------------------------------------------
def test_progress_rises_to_one_and_cancel_stops_reading(binary):
    clear_cache()
    seen = []
    table = read_csv(binary["big.csv"], progress=lambda f: seen.append(f))
    assert table.n_rows == 100_000 and len(seen) > 3
    assert seen == sorted(seen) and seen[-1] == 1.0 and 0 <= seen[0]
    clear_cache()
    with pytest.raises(CsvCancelled, match="cancelled"):
        read_csv(binary["big.csv"], progress=lambda f: f > 0.5)
    assert read_csv(binary["big.csv"]).n_rows == 100_000  # a cancelled read leaves nothing behind


def test_tables_are_cached_until_the_file_changes(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n")
    first = read_csv(path)
    assert read_csv(path) is first
    path.write_text("a,b\n1,2\n3,4\n")
    assert read_csv(path).n_rows == 2


def test_no_raw_error_escapes_on_mangled_files(tmp_path):
    """Random damage to a good file either still reads or raises CsvError; never csv/Unicode/numpy errors."""
    rng = np.random.default_rng(0)
    good = make_corpus.TEXT["quoted.csv"] + make_corpus.TEXT["semicolon_decimal_comma.csv"]
    junk = [b'"', b",", b";", b"\t", b"\n", b"\r", b"\x00", b"\xff", b"\xc3", b"inf", b"1e999", b"  ", b"\xef\xbb\xbf"]
    for i in range(150):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 6))):
            pos = int(rng.integers(0, len(data)))
            data[pos:pos + int(rng.integers(0, 3))] = junk[int(rng.integers(0, len(junk)))]
        path = tmp_path / f"m{i}.csv"
        path.write_bytes(bytes(data))
        try:
            table = read_csv(path)
            for column in table.columns:
                if table.is_numeric(column):
                    table.numeric(column)
        except CsvError as exc:
            assert str(exc).startswith(f"m{i}.csv") and "\n" not in str(exc)


# -- sizes that would take the memory, and cells past the csv module's limit ------------------------
def test_a_huge_header_is_refused_in_little_memory(tmp_path):
    """A 50 MB header of 25 million columns reached 9.2 GB before MemoryError; in a child process
    capped at 1.5 GiB of address space it is one line naming the line, from read_csv and from train."""
    import os
    import subprocess
    import sys

    path = tmp_path / "wide.csv"
    path.write_bytes(b"a," * 25_000_000 + b"\n" + b"1," * 10 + b"\n")
    code = ("import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (3 << 29, 3 << 29)); "
            "from core.data.csv_reader import CsvError, read_csv\n"
            "try:\n    read_csv(sys.argv[1])\nexcept CsvError as exc:\n    print(exc)\n"
            "from core.cli.main import main\nsys.exit(main(['train', '--csv', sys.argv[1], '--target', 'a', '--out', "
            "sys.argv[2]]))")
    result = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "run")], capture_output=True,
                            text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    says = "wide.csv, line 1: this line is longer than 8 MB, the most a line may hold"
    assert result.stdout.startswith(says) and result.returncode == 2
    assert says in result.stderr and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("fast_first", [False, True])
def test_too_many_columns_and_long_lines_name_the_line(tmp_path, monkeypatch, fast_first):
    from core.data import csv_fast, csv_table

    monkeypatch.setattr(csv_fast, "FAST_MIN_BYTES", 0 if fast_first else float("inf"))
    clear_cache()
    path = tmp_path / "cols.csv"
    path.write_text(",".join(["a"] * 100_001) + "\n" + ",".join(["3"] * 100_001) + "\n")
    with pytest.raises(CsvError) as info:
        read_csv(path)
    assert info.value.line == 1 and "this record has 100,001 values, more than the 100,000 columns" in str(info.value)
    clear_cache()
    path.write_text("a,b\n1,2\n" + ",".join(["3"] * 100_001) + "\n")
    with pytest.raises(CsvError) as info:
        read_csv(path)
    assert info.value.line == 3 and "this record has 100,001 values, more than the 100,000 columns" in str(info.value)
    monkeypatch.setattr(csv_table, "MAX_LINE_BYTES", 1000)   # a long line past the first chunk's first line
    clear_cache()
    path.write_text("a,b\n" * 600 + "1," * 600 + "\n")
    with pytest.raises(CsvError) as info:
        read_csv(path)
    assert info.value.line == 601 and "longer than" in str(info.value)


def test_a_long_unquoted_cell_is_not_called_a_missing_quote(tmp_path):
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n3," + "x" * 200_000 + "\n")
    with pytest.raises(CsvError) as info:
        read_csv(path)
    assert info.value.line == 3 and "closing quote" not in str(info.value)
    assert "a value in this record is longer than 131,072 characters (128 KiB)" in str(info.value)
    path.write_text('a,b\n1,2\n3,"' + "x" * 200_000 + '"\n')   # quoted, closed, just as long
    with pytest.raises(CsvError, match="longer than 131,072 characters"):
        read_csv(path)
    path.write_text('a,b\n1,"2\n' + "3,4\n" * 40_000)          # the quote never closes: it swallows the rest
    with pytest.raises(CsvError) as info:
        read_csv(path)
    assert info.value.line == 2 and 'closing quote (") is missing' in str(info.value)
