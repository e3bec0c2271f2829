"""The corpus of messy and broken CSV files the reader is tested against.

    python tests/data/csv/make_corpus.py          # rewrite the committed text files here

Text files are committed next to this script (``.gitattributes`` keeps their bytes exact, CRLF
and Latin-1 included) so a person can open them; a test checks they still equal what this
script writes. Binary ones (Excel, UTF-16, garbage, huge) are only written at test time by
:func:`write_binary`, into a temporary folder.
"""

from __future__ import annotations

import gzip
import io
import os
import sys
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _long(n_subjects: int = 6, rows: int = 8, sep: str = ",") -> str:
    """A clean long-format table: subject, age, height (straight lines per subject)."""
    out = [sep.join(("subject", "age", "height"))]
    for s in range(n_subjects):
        for r in range(rows):
            out.append(sep.join((f"S{s + 1}", f"{r + 1}", f"{100 + 5 * s + 2.5 * (r + 1):.1f}")))
    return "\n".join(out) + "\n"


def _labels() -> str:
    """Classification: 5 writers (tasks), 2 features, letters a..d as classes, 6 rows per class."""
    rng = np.random.default_rng(0)
    out = ["writer,width,slant,letter"]
    for w in range(5):
        for c, letter in enumerate("abcd"):
            for _ in range(6):
                out.append(f"w{w},{c + rng.normal(0, 0.1):.3f},{w + rng.normal(0, 0.1):.3f},{letter}")
    return "\n".join(out) + "\n"


TEXT: dict[str, bytes] = {
    # -- messy but readable -----------------------------------------------------------------
    "semicolon_decimal_comma.csv": "subject;age;height;\r\n1;1,5;80,25;\r\n1;2,5;90,5;\r\n\r\n2;1,5;79,0;\r\n"
                                   "2;2,5;88,75;\r\n".encode(),
    "tab.csv": _long(sep="\t").encode(),
    "quoted.csv": b'id,comment,value\n1,"plain",1.5\n2,"with, comma",2.5\n3,"two\nlines",3.5\n'
                  b'4,"say ""hi""",4.5\n',
    "utf8_bom.csv": "\ufeffname,größe,wert\nä,1,2\nö,3,4\n".encode("utf-8"),
    "latin1.csv": "city,température\nZürich,12.5\nMontréal,-3.0\n".encode("cp1252"),
    "crlf_blank_trailing.csv": b"subject,age,height,\r\n\r\nA,1,10,\r\nA,2,20,\r\n  \r\n,,,\r\nB,1,11\r\n"
                               b"B,2,21,\r\n\r\n",
    "numeric_ids.csv": b"subject,x,y\n007,1,2\n7,2,3\n007,3,4\n7.0,4,5\n7,5,6\n",
    "no_header.csv": b"1,0.5,10\n1,1.5,12\n2,0.5,20\n2,1.5,22\n",
    "thousands_tab.csv": b"site\tarea\tcount\nA\t\"1,234.5\"\t12\nB\t999.5\t\"1,000,000\"\nC\t12\t3\n",
    "decimal_comma_tab.csv": b"site\tarea\nA\t1,5\nB\t2,25\nC\t3\n",
    "duplicate_columns.csv": b"id,height,height,weight\n1,10,11,5\n2,20,21,6\n",
    "constant_column.csv": _long().replace("subject,age,height", "subject,age,height,batch")
                                  .replace("\n", ",1\n").replace("batch,1\n", "batch\n").encode(),
    "classification.csv": _labels().encode(),
    # -- rejected (each test asserts the message) -------------------------------------------
    "missing_values.csv": b"subject,age,height\nA,1,10\nA,,20\nA,3,NA\nB,1,11\nB,2,\nB,3,31\nC,1,1\nC,2,2\n",
    "nonfinite_inf.csv": b"subject,age,height\nA,1,10\nA,2,inf\nB,1,3\n",
    "nonfinite_overflow.csv": b"subject,age,height\nA,1,10\nA,1e400,20\nB,1,3\n",
    "nan_is_missing.csv": b"subject,age,height\nA,1,10\nA,2,nan\nB,1,3\n",
    "text_in_numeric.csv": b"subject,age,height\nA,1,10\nA,2,20\nA,three,30\nB,1,11\n",
    "units.csv": b"subject;age;weight\nA;1;12 kg\nA;2;13 kg\nB;1;14\n",
    "percent.csv": b"subject,age,share\nA,1,12%\nA,2,13%\nB,1,14%\n",
    "mixed_marks.csv": b"subject\tage\theight\nA\t1,5\t10\nA\t2.5\t20\nB\t1\t30\n",
    "single_column.csv": b"height\n10\n20\n30\n",
    "empty.csv": b"",
    "blank_only.csv": b"\n\r\n   \n\n",
    "header_only.csv": b"subject,age,height\n",
    "ragged.csv": b"name,age,height\nAnna,1,10\nSmith, John,2,20\n",
    "unclosed_quote.csv": b'subject,age,height\nA,1,10\nA,"2,20\nB,1,11\nB,2,12\n',
    "small_tasks.csv": (_long(n_subjects=8, rows=12) + "tiny,1,1\ntiny,2,2\ntiny,3,3\n").encode(),
    # per-task folders: same columns (in another order), and one file missing a column
    "per_task/site_a.csv": b"x,y\n1,2\n2,4\n3,6\n4,8\n5,10\n",
    "per_task/site_b.csv": b"y,x\n3,1\n6,2\n9,3\n12,4\n15,5\n",
    "per_task/site_c.csv": b"x,y,note\n1,1,ok\n2,2,ok\n3,3,ok\n4,4,ok\n5,5,ok\n",
    "mismatch/site_a.csv": b"age,weight,height\n1,2,3\n2,3,4\n",
    "mismatch/site_b.csv": b"height,weight\n1,2\n2,3\n",
}


def write_text(dest: Path = HERE) -> list[Path]:
    paths = []
    for name, data in TEXT.items():
        path = dest / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def _xlsx() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/workbook.xml", "<workbook/>")
    return buf.getvalue()


def write_binary(dest: Path) -> dict[str, Path]:
    """Files that should not be committed: spreadsheets, UTF-16, garbage, compressed, huge (sparse)."""
    rng = np.random.default_rng(1)
    files = {
        "excel.csv": _xlsx(),
        "old_excel.csv": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
        "garbage.csv": rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
        "gzipped.csv": gzip.compress(_long().encode(), mtime=0),
        "zipped.csv": b"PK\x03\x04" + bytes(60),
        "utf16_bom.csv": _long().replace("S1", "Süd").encode("utf-16"),
        "utf16_no_bom.csv": _long().encode("utf-16-le"),
        "nul_bytes.csv": b"a,b\n1,2\x00\x00\n",
    }
    out = {}
    for name, data in files.items():
        (dest / name).write_bytes(data)
        out[name] = dest / name
    huge = dest / "huge.csv"
    with open(huge, "wb") as f:
        f.write(b"a,b\n")
        f.truncate(250 * 1000 * 1000)  # sparse: no disk space used, never read
    out["huge.csv"] = huge
    big = dest / "big.csv"  # a few MB, for progress and cancel
    big.write_bytes(_long(n_subjects=200, rows=500).encode())
    out["big.csv"] = big
    return out


if __name__ == "__main__":
    for p in write_text(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE):
        print(os.path.relpath(p))
