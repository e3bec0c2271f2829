"""``maml-gui train --csv PATH ...``: the command-line way to meta-learn on your own CSV data.

Kept apart from ``cli.py`` so the CSV options live in one place; ``cli.py`` adds them to the
``train`` parser and asks :func:`family_spec_from_args` for the family. A file that cannot be
used raises :class:`~core.data.csv_reader.CsvError` (a ``MamlError``), which ``cli.main`` prints as
one line and turns into exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from core.config import FamilySpec
from core.errors import ConfigError

_CSV_FLAGS = ("task_column", "target", "features", "classification", "drop_missing", "split", "split_seed",
              "no_normalize", "split_by")   # --ways (n_way) also serves the other classification families


def add_csv_arguments(train: argparse.ArgumentParser) -> None:
    group = train.add_argument_group("your own data (instead of --family)")
    group.add_argument("--csv", action="append", metavar="PATH",
                       help="a CSV file, or a folder of CSV files with one task per file; repeat for several files")
    group.add_argument("--task-column", metavar="C", help="the column that names the task (one long-format file)")
    group.add_argument("--target", metavar="T", help="the column to predict (the class label with --classification)")
    group.add_argument("--features", type=_names, metavar="A,B,...",
                       help="input columns (default: every numeric column except task and target)")
    group.add_argument("--classification", action="store_true",
                       help="N-way K-shot episodes over the target's classes; without --task-column, one file's rows "
                            "labelled by the target become episodes over its labels")
    group.add_argument("--ways", "--n-way", dest="n_way", type=int, metavar="N",
                       help="classes per episode (default 5; for a CSV: min(5, classes))")
    group.add_argument("--drop-missing", action="store_true", help="drop rows with missing values instead of stopping")
    group.add_argument("--split", type=_fractions, metavar="TRAIN,VAL,TEST",
                       help="fractions of the tasks for meta-train, validation and test (default 0.7,0.15,0.15)")
    group.add_argument("--split-seed", type=int, metavar="S", help="which tasks land in which split (default 0)")
    group.add_argument("--split-by", choices=("labels", "rows"),
                       help="labelled rows: split the labels (default; meta-test episodes tell apart labels never "
                            "trained on) or each label's rows (for a file with few labels: every episode uses the "
                            "same labels, meta-test episodes only held-out rows)")
    group.add_argument("--no-normalize", action="store_true", help="do not standardize inputs and target")


def family_spec_from_args(args: argparse.Namespace) -> FamilySpec | None:
    """The CSV family the flags describe (read and checked now), or None without ``--csv``.

    The returned spec carries absolute paths and the normalization statistics, so the run folder
    rebuilds the same family wherever ``evaluate`` is started.
    """
    from core.tasks.csv_family import cached_family

    if not getattr(args, "csv", None):
        given = [f"--{name.replace('_', '-')}" for name in _CSV_FLAGS
                 if getattr(args, name, None) is not None and getattr(args, name) is not False]
        if given:
            raise ConfigError("family.paths", f"{given[0]} needs --csv PATH (the file or folder with your data)")
        return None
    if getattr(args, "family", None) not in (None, "csv"):
        raise ConfigError("family.name", "give either --family or --csv, not both")
    if args.classification and args.task_column is None and len(args.csv) == 1 and not Path(args.csv[0]).is_dir():
        return _labelled_rows_spec(args)
    if args.split_by is not None:
        raise ConfigError("family.split_rows", "--split-by applies to one labelled file (--classification and "
                                               "--target, no --task-column)")
    params = {"paths": [str(Path(p).expanduser().resolve()) for p in args.csv], "task_column": args.task_column,
              "target": args.target, "features": args.features, "classification": args.classification,
              "drop_missing": args.drop_missing, "normalize": not args.no_normalize}
    for key in ("split", "split_seed", "n_way"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    return cached_family(params).spec()  # kept: the trainer's build_family(spec) then finds it built


def _labelled_rows_spec(args: argparse.Namespace) -> FamilySpec:
    """One file whose rows carry a class label: N-way episodes over the labels (no task column)."""
    from core.tasks import build_family

    if args.target is None:
        raise ConfigError("family.target", "--classification without --task-column needs --target LABEL (the class "
                                           "column)")
    for flag in ("drop_missing", "no_normalize"):
        if getattr(args, flag):
            raise ConfigError(f"family.{flag}", f"--{flag.replace('_', '-')} does not apply to labelled rows "
                                                "(rows with a missing value are skipped and counted)")
    params = {"path": str(Path(args.csv[0]).expanduser().resolve()), "target": args.target}
    for key in ("features", "split", "split_seed", "n_way"):
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.split_by == "rows":
        params["split_rows"] = True
        if args.n_way is None:   # every episode can use every label: as many ways as labels, at most 5
            params["n_way"] = max(2, min(5, _label_count(params["path"], args.target)))
    spec = FamilySpec("labelled_csv", params)
    build_family(spec)   # read and checked now: a bad file is one line before training starts
    return spec


def _label_count(path: str, target: str) -> int:
    """Distinct non-empty values of ``target`` (0 when there is no such column: the family says why)."""
    from core.data.csv_reader import read_csv

    table = read_csv(path)
    return sum(1 for name in table.labels(target)[0] if name) if target in table.columns else 0


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"invalid column list {text!r}; expected e.g. age,weight")
    return names


def _fractions(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"invalid split {text!r}; expected three fractions, e.g. 0.7,0.15,0.15")
    return values
