"""Following a run folder another process writes: new rows only, partial lines held back, a
replaced file read again from the start."""

from __future__ import annotations

import os

import numpy as np

from core.storage.follow import MetricsTail, file_stamp

HEADER = "iteration,meta_loss,grad_norm,seconds,step_loss_0,step_loss_1\n"


def row(i: int) -> str:
    return f"{i},{1.0 / i!r},0.5,{0.01 * i!r},2.0,{1.0 / i!r}\n"


def test_appended_rows_arrive_once_and_a_partial_line_waits(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + row(1) + row(2))
    tail = MetricsTail(tmp_path)
    first = tail.read()
    assert first.reset and first.rows[:, 0].tolist() == [1, 2]
    np.testing.assert_allclose(first.rows[1], [2, 0.5, 0.5, 0.02, 2.0, 0.5, np.nan])   # no wall_time column: NaN
    with path.open("a") as f:
        f.write(row(3) + row(4)[:5])            # row 4 is half written
    update = tail.read()
    assert not update.reset and update.rows[:, 0].tolist() == [3]
    with path.open("a") as f:
        f.write(row(4)[5:])
    assert tail.read().rows[:, 0].tolist() == [4]
    assert tail.read().rows.shape[0] == 0       # nothing new


def test_a_replaced_file_is_read_again_from_its_start(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(HEADER + "".join(row(i) for i in range(1, 6)))
    tail = MetricsTail(tmp_path)
    assert tail.read().rows.shape[0] == 5
    replacement = tmp_path / "tmp.csv"          # a checkpoint rewrites it atomically, cut at iteration 3
    replacement.write_text(HEADER + "".join(row(i) for i in range(1, 4)))
    os.replace(replacement, path)
    update = tail.read()
    assert update.reset and update.rows[:, 0].tolist() == [1, 2, 3]


def test_the_streaming_file_before_the_first_save(tmp_path):
    tail = MetricsTail(tmp_path)
    assert tail.read().rows.shape[0] == 0
    (tmp_path / ".metrics.csv.partial").write_text(HEADER + row(1))
    assert tail.read().rows[:, 0].tolist() == [1]
    assert file_stamp(tmp_path / "weights.safetensors") is None
    (tmp_path / "weights.safetensors").write_bytes(b"123")
    assert file_stamp(tmp_path / "weights.safetensors")[1] == 3
