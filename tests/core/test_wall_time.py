"""``metrics.csv``'s ``wall_time`` column: written by every writer, read by every reader, and files of the
versions before it (no such column) still read, continued and followed."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import numpy as np

from core.cli.main import main
from core.storage.follow import MetricsTail
from core.storage.metrics import METRICS_FILE, MetricsLog, append_metrics_table, read_metrics
from core.training.trainer import StepMetrics

OLD_PROJECT = Path(__file__).resolve().parents[1] / "data" / "project-0567a30"
OLD_HEADER = "iteration,meta_loss,grad_norm,seconds,step_loss_0,step_loss_1\n"


def old_file(folder: Path, rows: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / METRICS_FILE
    path.write_text(OLD_HEADER + "".join(f"{i},{1 / i!r},0.5,0.010000,2.0,{1 / i!r}\n" for i in range(1, rows + 1)))
    return path


def test_a_command_line_run_writes_each_rows_clock_time(tmp_path, capsys):
    out = tmp_path / "run"
    before = time.time()
    assert main(["train", "--iterations", "12", "--meta-batch", "2", "--inner-steps", "1", "--out", str(out)]) == 0
    after = time.time()
    assert (out / METRICS_FILE).read_text().splitlines()[0].endswith(",step_loss_1,wall_time")
    table = read_metrics(out)
    wall = table[:, -1]
    assert table.shape == (12, 4 + 2 + 1) and table[:, 0].tolist() == list(range(1, 13))
    assert before - 0.01 <= wall[0] and wall[-1] <= after + 0.01 and np.all(np.diff(wall) >= 0), wall
    assert np.isfinite(table[:, 4:-1]).all()   # the step losses stay where they were


def test_the_versions_before_it_read_with_no_clock_time():
    for folder in sorted((OLD_PROJECT / "runs").iterdir()):
        table = read_metrics(folder)
        assert table is not None and table.shape[1] == 4 + 2 + 1, folder
        assert np.isnan(table[:, -1]).all() and np.isfinite(table[:, :-1]).all()
        tail = MetricsTail(folder).read()   # a window following such a folder gets the same table
        np.testing.assert_array_equal(tail.rows, table)


def test_a_followed_file_with_the_column_keeps_it(tmp_path):
    log = MetricsLog(tmp_path, 2)
    for i in range(1, 4):
        log.write(StepMetrics(i, 1.0 / i, (2.0, 1.0 / i), 0.5, 0.01, wall_time=1.8e9 + i))
    log.close()
    rows = MetricsTail(tmp_path).read().rows
    assert rows[:, -1].tolist() == [1.8e9 + 1, 1.8e9 + 2, 1.8e9 + 3] and rows.shape == (3, 7)
    np.testing.assert_array_equal(rows, read_metrics(tmp_path))


def test_resuming_a_run_of_an_older_version_adds_the_column(tmp_path, capsys):
    """The old rows get NaN (their time is unknown), the resumed ones their clock time: one table."""
    out = tmp_path / "old"
    shutil.copytree(OLD_PROJECT / "runs" / "001-maml-sinusoid", out)
    assert main(["train", "--resume", str(out), "--iterations", "26"]) == 0
    assert (out / METRICS_FILE).read_text().splitlines()[0].endswith(",wall_time")
    table = read_metrics(out)
    assert table[:, 0].tolist() == list(range(1, 27))
    assert np.isnan(table[:20, -1]).all() and np.isfinite(table[20:, -1]).all()


def test_a_window_appending_to_an_old_file_rewrites_it_once_with_the_column(tmp_path):
    path = old_file(tmp_path, 5)
    new = np.array([[i, 1 / i, 0.5, 0.01, 2.0, 1 / i, 1.8e9 + i] for i in (4, 5, 6)])   # 4, 5: a crash left them
    append_metrics_table(tmp_path, new)
    assert path.read_text().splitlines()[0] == OLD_HEADER.strip() + ",wall_time"
    table = read_metrics(tmp_path)
    assert table[:, 0].tolist() == [1, 2, 3, 4, 5, 6]
    assert np.isnan(table[:3, -1]).all() and table[3:, -1].tolist() == [1.8e9 + 4, 1.8e9 + 5, 1.8e9 + 6]
    inode = path.stat().st_ino
    append_metrics_table(tmp_path, np.array([[7, 0.1, 0.5, 0.01, 2.0, 0.1, 1.8e9 + 7]]))
    assert path.stat().st_ino == inode   # once it has the column, appends only append (no rewrite)
    assert read_metrics(tmp_path)[:, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]


def test_a_row_without_a_clock_time_reads_as_nan(tmp_path):
    log = MetricsLog(tmp_path, 1)
    log.write(StepMetrics(1, 0.5, (0.4,), 0.1, 0.01))   # a row made without one: "nan", not a crash
    log.close()
    assert (tmp_path / METRICS_FILE).read_text().splitlines()[1].endswith(",nan")
    assert math.isnan(read_metrics(tmp_path)[0, -1])
