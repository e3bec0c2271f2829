"""CSV data in the window: drag and drop, the import dialog driven by its own widgets, refusals
that leave the loaded family alone, and import → train → held-out evaluation → export.

Windows get a temporary QSettings file, tiny configs and fast worker options; tests wait on
signals or conditions (never sleeps) and a fixture fails any test that leaves a thread running.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from core.storage.checkpoint import load_run
from core.trained.evaluation import evaluate
from core.tasks import build_family
from core.training.trainer import MetaTrainer
from maml_gui.jobs.job_runner import live_jobs
from maml_gui.jobs.training import WorkerOptions

from .support import tiny


ROOT = Path(__file__).resolve().parents[2]
GROWTH = ROOT / "assets" / "examples" / "growth.csv"
SITES = ROOT / "assets" / "examples" / "sites"
BAD = ROOT / "tests" / "data" / "csv"
OPTIONS = WorkerOptions(eval_tasks=8, inspect_interval=0.3, baseline=False)
sys.path.insert(0, str(BAD))
from make_corpus import write_binary  # noqa: E402


def settled(qtbot, dialog):
    """Wait until the dialog has read its files and checked the choices."""
    qtbot.waitUntil(dialog.is_settled, timeout=20_000)
    return dialog


def drive(qtbot, dialog, change):
    """Make a change through a widget and wait for the dialog's verdict on it."""
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        change()
    settled(qtbot, dialog)


def mime_for(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([p if isinstance(p, QUrl) else QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def drag_enter(window, mime) -> bool:
    event = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    event.setAccepted(False)
    QApplication.sendEvent(window, event)
    return event.isAccepted()


# -- drag and drop -----------------------------------------------------------------------------
def test_drag_is_accepted_for_csv_files_and_folders_and_refused_for_others(make_window, tmp_path):
    window = make_window()
    assert window.acceptDrops()
    assert drag_enter(window, mime_for(GROWTH))
    assert drag_enter(window, mime_for(SITES))
    assert drag_enter(window, mime_for(SITES / "alder_creek.csv", SITES / "birch_hollow.csv"))
    notes = tmp_path / "notes.txt"
    notes.write_text("a,b\n1,2\n")
    assert not drag_enter(window, mime_for(notes))
    assert "notes.txt is not a .csv file" in window.statusBar().currentMessage()
    assert not drag_enter(window, mime_for(GROWTH, notes))   # one wrong file refuses the whole drop
    assert not drag_enter(window, mime_for(QUrl("https://example.org/data.csv")))
    assert "not a file on this computer" in window.statusBar().currentMessage()
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    assert not drag_enter(window, mime_for(empty))
    assert "holds no CSV files" in window.statusBar().currentMessage()
    text_only = QMimeData()
    text_only.setText("subject,age\n1,2\n")
    assert not drag_enter(window, text_only)


def test_drop_opens_the_import_dialog_on_the_dropped_paths(qtbot, make_window):
    window = make_window()
    mime = mime_for(GROWTH)
    assert drag_enter(window, mime)
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    assert drop.isAccepted()
    dialog = settled(qtbot, window.csv.dialog)
    assert dialog.paths == [str(GROWTH)]
    assert dialog.problem() is None
    dialog.reject()
    assert window.family_editor.spec().name == "sinusoid"   # cancelled: nothing changed


# -- the dialog --------------------------------------------------------------------------------
def test_long_format_growth_is_suggested_and_applied(qtbot, make_window):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    assert dialog.form.layout_long.isChecked() and dialog.form.task_column.isEnabled()
    assert dialog.form.task_column.currentText() == "subject"   # numeric-looking ids, a 'task' name
    assert dialog.form.target.currentText() == "height"
    assert dialog.form.feature_names() == ["age"]                # 'sex' is text, left out
    assert dialog.model.rowCount() == 50 and dialog.model.columnCount() == 4
    assert dialog.model.verticalHeaderItem(0).text() == "2"   # rows are numbered by file line
    assert "40 tasks: 28 / 6 / 6 tasks" in dialog.split_label.text()
    assert dialog.ok_button.isEnabled()

    drive(qtbot, dialog, lambda: dialog.form.split_boxes[1].setValue(20))   # validation 20 %: meta-train takes the rest
    assert dialog.form.split_boxes[0].value() == 65
    assert "40 tasks: 26 / 8 / 6 tasks" in dialog.split_label.text()
    drive(qtbot, dialog, lambda: dialog.form.split_seed.setValue(3))
    drive(qtbot, dialog, lambda: dialog.form.split_boxes[0].setValue(80))   # 80 + 20 + 15: refused, OK off
    assert not dialog.ok_button.isEnabled() and "adds up to 115 %" in dialog.error_label.text()
    drive(qtbot, dialog, lambda: dialog.form.split_boxes[0].setValue(65))
    assert dialog.ok_button.isEnabled()

    dialog.ok_button.click()
    spec = window.family_editor.spec()
    assert spec.name == "csv"
    assert spec.params["task_column"] == "subject" and spec.params["features"] == ["age"]
    assert spec.params["target"] == "height" and spec.params["split_seed"] == 3
    assert spec.params["split"] == [0.65, 0.2, 0.15]
    assert spec.params["normalization"]["features"] == ["age"]   # the statistics travel with the spec
    summary = window.family_editor.csv_panel.summary.text()
    assert "growth.csv" in summary and "40 tasks (26 / 8 / 6)" in summary and "inputs: age" in summary
    assert window.start_problem() is None
    family = window.family_editor.family()
    axis = window.family_editor.preview.getPlotItem().getAxis("bottom")
    qtbot.waitUntil(lambda: axis.labelText == "age", timeout=5_000)   # the preview is redrawn after a pause
    curves = window.family_editor.preview_data()["curves"]
    first_x, first_y = family.task_points("train", 0)
    assert len(curves) == 5 and np.allclose(curves[0][0], np.sort(first_x[:, 0]))
    assert curves[0][1].min() > 50   # heights in cm, not standardized
    qtbot.waitUntil(lambda: window.plots.task.data()["kind"] == "curve", timeout=5_000)   # the idle task view


def test_one_task_per_file_from_a_folder(qtbot, make_window):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(SITES)]))
    assert dialog.form.layout_files.isChecked() and not dialog.form.task_column.isEnabled()
    assert dialog.preview_file.count() == 12
    form = dialog.form
    assert form.feature_names() == ["rainfall_mm", "temperature_c"] and form.target.currentText() == "yield_t_ha"
    assert "12 tasks: 8 / 2 / 2 tasks" in dialog.split_label.text()
    dialog.preview_file.setCurrentIndex(4)   # elm_terrace.csv lists its columns in another order
    assert dialog.model.horizontalHeaderItem(0).text() != "plot"

    drive(qtbot, dialog, lambda: dialog.form.layout_long.setChecked(True))   # no column names the task here
    assert "choose the column that names the tasks" in dialog.problem()
    drive(qtbot, dialog, lambda: dialog.form.layout_files.setChecked(True))
    item = next(dialog.form.features.item(i) for i in range(dialog.form.features.count())
                if dialog.form.features.item(i).data(Qt.ItemDataRole.UserRole) == "temperature_c")
    drive(qtbot, dialog, lambda: item.setCheckState(Qt.CheckState.Unchecked))
    assert dialog.form.feature_names() == ["rainfall_mm"] and dialog.ok_button.isEnabled()
    drive(qtbot, dialog, lambda: item.setCheckState(Qt.CheckState.Checked))
    dialog.ok_button.click()

    spec = window.family_editor.spec()
    assert spec.params["paths"] == [str(SITES)] and spec.params["task_column"] is None
    assert spec.params["features"] == ["rainfall_mm", "temperature_c"]
    # two inputs: the task view shows predicted against true values
    qtbot.waitUntil(lambda: window.plots.task.data()["kind"] == "scatter", timeout=5_000)
    truth, before = window.plots.task.data()["rows"]
    assert len(truth) > 0 and np.isfinite(before).all()


def test_a_refused_file_shows_its_message_and_keeps_the_family(qtbot, make_window):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    dialog.ok_button.click()
    before = window.family_editor.spec()

    dialog = settled(qtbot, window.csv.import_csv([str(BAD / "text_in_numeric.csv")]))
    assert not dialog.ok_button.isEnabled()
    message = dialog.error_label.text()
    assert message.startswith("text_in_numeric.csv, line 4, column 'age': value 'three' is not a number")
    assert "Traceback" not in message and "Cannot import yet" in dialog.ok_button.toolTip()
    cell = dialog.model.item(2, 1)   # line 4, column 'age' is marked in the preview
    assert cell.text() == "three" and cell.background().color().name() == "#f4b4ae"
    dialog.reject()
    assert window.family_editor.spec() == before and window.start_problem() is None


@pytest.mark.parametrize("name, expected", [
    ("excel.csv", "is an Excel workbook (.xlsx), not a CSV file"),
    ("huge.csv", "files larger than 200.0 MB are refused"),
])
def test_unreadable_files_are_refused_by_name(qtbot, make_window, tmp_path, name, expected):
    window = make_window()
    path = write_binary(tmp_path)[name]
    dialog = settled(qtbot, window.csv.import_csv([str(path)]))
    assert dialog.error_label.text().startswith(name) and expected in dialog.error_label.text()
    assert not dialog.form.isEnabled() and not dialog.ok_button.isEnabled()
    dialog.reject()
    assert window.family_editor.spec().name == "sinusoid"


def test_missing_values_are_counted_and_can_be_dropped(qtbot, make_window):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(BAD / "missing_values.csv")]))
    assert not dialog.ok_button.isEnabled()
    assert "3 rows have missing values" in dialog.error_label.text() and "line 3 (age)" in dialog.error_label.text()
    assert dialog.form.drop_missing.isVisibleTo(dialog)
    assert dialog.form.drop_missing.text() == "drop 3 rows with missing values (line 3, line 4, line 6)"
    drive(qtbot, dialog, lambda: dialog.form.split_boxes[1].setValue(0))   # 3 small tasks: no validation split
    drive(qtbot, dialog, lambda: dialog.form.drop_missing.setChecked(True))
    assert "shots + query <= 2" in dialog.problem()   # tasks of 2 rows: nothing to train on with 5 + 5
    drive(qtbot, dialog, lambda: dialog.form.shots.setValue(1))
    drive(qtbot, dialog, lambda: dialog.form.query.setValue(1))
    assert dialog.ok_button.isEnabled(), dialog.problem()
    warnings = [dialog.warnings_list.item(i).text() for i in range(dialog.warnings_list.count())]
    assert any("dropped 3 rows with missing values" in w for w in warnings)
    dialog.reject()


def test_reading_shows_progress_and_can_be_cancelled(qtbot, make_window, tmp_path):
    window = make_window()
    big = write_binary(tmp_path)["big.csv"]
    dialog = window.csv.import_csv([str(big)])
    assert dialog.progress_bar.isVisibleTo(dialog) and not dialog.ok_button.isEnabled()
    with qtbot.waitSignal(dialog.updated):
        dialog.cancel_read_button.click()
    assert "reading was cancelled" in dialog.error_label.text()
    assert dialog.files_label.text() == "<b>Cancelled reading</b> big.csv"
    qtbot.waitUntil(lambda: not live_jobs(), timeout=10_000)
    dialog.reject()

    dialog = settled(qtbot, window.csv.import_csv([str(big)]))   # read to the end this time
    assert dialog.progress_bar.value() == 1000 and not dialog.progress_bar.isVisibleTo(dialog)
    assert "100,000 rows" in dialog.files_label.text() and dialog.problem() is None
    dialog.reject()


def test_the_family_combo_offers_csv_through_the_import(qtbot, make_window, monkeypatch):
    window = make_window()
    asked = []
    monkeypatch.setattr(window.csv, "choose_import_csv", lambda folder=False: asked.append(folder))
    editor = window.family_editor
    combo = editor._combo
    combo.setCurrentIndex(combo.findData("csv"))   # nothing imported yet: ask for files, stay on sinusoid
    assert asked == [False] and combo.currentData() == "sinusoid" and editor.spec().name == "sinusoid"

    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    drive(qtbot, dialog, lambda: dialog.form.split_seed.setValue(5))
    dialog.ok_button.click()
    combo.setCurrentIndex(combo.findData("polynomial"))
    combo.setCurrentIndex(combo.findData("csv"))   # imported before: back to that data, no dialog
    assert asked == [False] and editor.spec().params["split_seed"] == 5 and editor.error() is None

    editor.csv_panel.change.click()   # "Change…" reopens the dialog on the same choices
    dialog = settled(qtbot, window.csv.dialog)
    assert dialog.form.split_seed.value() == 5 and dialog.form.task_column.currentText() == "subject"
    dialog.reject()


def test_a_saved_experiment_keeps_the_csv_choices(qtbot, make_window, tmp_path):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(SITES)]))
    drive(qtbot, dialog, lambda: dialog.form.split_seed.setValue(2))
    dialog.ok_button.click()
    spec = window.family_editor.spec()
    path = window.files.save_experiment(tmp_path / "sites.json")
    assert path is not None
    window.files.new_experiment()
    assert window.family_editor.spec().name == "sinusoid"
    assert window.files.open_experiment(path)
    assert window.family_editor.spec() == spec and window.start_problem() is None

    moved = dict(spec.params, paths=[str(tmp_path / "gone")])   # the data moved since: said, not crashed
    window.set_config(window.panel_config().replace("family", params=moved))
    assert "gone" in window.start_problem() and "no such file" in window.start_problem()


# -- end to end ----------------------------------------------------------------------------------
def test_import_train_evaluate_on_held_out_tasks_and_export(qtbot, make_window, tmp_path):
    window = make_window(tiny().replace("train", shots=5, query=10))
    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    dialog.ok_button.click()
    spec = window.family_editor.spec()
    snapshots, previews = [], []
    window.session.controller.adaptation.connect(snapshots.append)
    window.session.controller.preview.connect(previews.append)
    window.start()
    qtbot.waitUntil(lambda: any(s.iteration >= 20 for s in snapshots), timeout=30_000)
    window.stop()
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=10_000)

    assert window.error_banner.isHidden(), window.error_banner.text()
    assert snapshots[-1].metric == "mse" and np.isfinite(snapshots[-1].series["meta-learned"][0]).all()
    steps, mean, _ = window.plots.adaptation.data()["meta-learned"]
    assert len(steps) == 11 and np.isfinite(mean).all()
    view = previews[-1].view   # a meta-test child: its rows and the curve over the age range
    family = window.family_editor.family()
    assert view.task in family.task_names("test") and view.x_label == "age" and view.y_label == "height"
    assert view.grid.min() < 3 and view.grid.max() > 17 and len(view.support_x) == 5
    assert window.plots.task.data()["kind"] == "curve"

    written = window.files.export_run_folder(tmp_path / "run")
    assert written is not None
    config, weights = load_run(written)[:2]
    assert config.family.name == "csv" and dict(config.family.params) == dict(spec.params)
    loaded = build_family(config.family)
    assert loaded.normalization == family.normalization
    trainer = MetaTrainer(config.replace("train", device="cpu"))
    trainer.load_weights(weights)
    result = evaluate(trainer.algorithm, trainer.params, trainer.rates, trainer.family, tasks=6, shots=5,
                      steps=(0, 1), query=trainer.family.held_out().max_query(5))
    assert np.isfinite(result.model.mean[1])   # scored on the run's meta-test children


def test_warnings_name_skipped_tasks_and_number_conversions(qtbot, make_window):
    window = make_window()   # shots 5 + query 5: the 3-row task 'tiny' is too small
    dialog = settled(qtbot, window.csv.import_csv([str(BAD / "small_tasks.csv")]))
    warnings = [dialog.warnings_list.item(i).text() for i in range(dialog.warnings_list.count())]
    assert any("skipped 1 of 9 tasks with fewer than shots + query = 10 rows: 'tiny'" in w for w in warnings)
    assert dialog.ok_button.isEnabled()
    dialog.reject()
    dialog = settled(qtbot, window.csv.import_csv([str(BAD / "semicolon_decimal_comma.csv")]))
    drive(qtbot, dialog, lambda: dialog.form.split_boxes[1].setValue(0))
    drive(qtbot, dialog, lambda: dialog.form.split_boxes[2].setValue(50))
    warnings = [dialog.warnings_list.item(i).text() for i in range(dialog.warnings_list.count())]
    assert any("a comma inside a number was read as the decimal mark" in w for w in warnings), warnings
    dialog.reject()


def test_importing_during_a_run_asks_before_resetting_it(qtbot, make_window):
    window = make_window()
    window.start()
    qtbot.waitUntil(lambda: window.session.active is not None and window.session.active.iteration > 0, timeout=10_000)
    answers = []
    window.confirm = lambda title, text: answers.append(text) or False
    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    dialog.ok_button.click()
    assert "stops the current run" in answers[0]
    assert window.session.controller.is_active() and window.family_editor.spec().name == "sinusoid"
    window.confirm = lambda title, text: True
    dialog = settled(qtbot, window.csv.import_csv([str(GROWTH)]))
    dialog.ok_button.click()
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=10_000)
    assert window.family_editor.spec().name == "csv"


# -- shots and query, guesses, headers -----------------------------------------------------------
def eleven_rows(tmp_path) -> Path:
    """12 subjects x 11 time points: too small for shots + query = 10 + 10."""
    rows = ["subject,time,response"] + [f"S{s:02d},{t},{np.sin(t / 3 + s):.3f}" for s in range(12) for t in range(11)]
    path = tmp_path / "eleven.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_tasks_too_small_for_shots_and_query_keep_ok_off_until_changed_in_the_dialog(qtbot, make_window, tmp_path):
    window = make_window(tiny().replace("train", shots=10, query=10))
    dialog = settled(qtbot, window.csv.import_csv([str(eleven_rows(tmp_path))]))
    assert dialog.shots_query() == (10, 10)
    assert not dialog.ok_button.isEnabled()   # all 12 tasks skipped: nothing to train on
    assert dialog.error_label.text().startswith("with shots 10 + query 10: at least 1 meta-train task")
    assert "shots + query <= 11" in dialog.error_label.text() and "shots + query <= 11" in dialog.ok_button.toolTip()
    warnings = [dialog.warnings_list.item(i).text() for i in range(dialog.warnings_list.count())]
    assert any("skipped 12 of 12 tasks" in w for w in warnings)
    assert dialog.form.sizes_hint.text() == ("shots + query = 20 keeps 0 of 12 tasks (0 of 8 meta-train) · "
                                        "every task has 11 rows")
    assert "12 tasks: 8 / 2 / 2 tasks" in dialog.split_label.text()

    drive(qtbot, dialog, lambda: dialog.form.shots.setValue(5))   # 5 + 10 = 15: still too many
    assert not dialog.ok_button.isEnabled() and "with shots 5 + query 10" in dialog.problem()
    drive(qtbot, dialog, lambda: dialog.form.query.setValue(6))
    assert dialog.ok_button.isEnabled() and dialog.problem() is None and dialog.error_label.isHidden()
    assert dialog.form.sizes_hint.text().startswith("shots + query = 11 keeps 12 of 12 tasks (8 of 8 meta-train)")
    assert window.hyper_panel.train_spec().shots == 10   # nothing changes in the window before OK

    dialog.ok_button.click()
    train = window.hyper_panel.train_spec()
    assert (train.shots, train.query) == (5, 6) and window.family_editor.spec().name == "csv"
    assert window.start_problem() is None and window.actions.start.isEnabled()
    assert window.problem_banner.isHidden()


def test_cancelling_keeps_the_windows_shots_and_query(qtbot, make_window, tmp_path):
    window = make_window(tiny().replace("train", shots=10, query=10))
    dialog = settled(qtbot, window.csv.import_csv([str(eleven_rows(tmp_path))]))
    drive(qtbot, dialog, lambda: dialog.form.shots.setValue(1))
    assert dialog.ok_button.isEnabled()
    dialog.reject()
    train = window.hyper_panel.train_spec()
    assert (train.shots, train.query) == (10, 10) and window.family_editor.spec().name == "sinusoid"


def iris_like(tmp_path) -> Path:
    """Four measurements with one decimal (values repeat a little) and a text label of 3 classes."""
    rng = np.random.default_rng(0)
    rows = ["sepal_length,sepal_width,petal_length,petal_width,label"]
    for label, centre in (("setosa", 5.0), ("versicolor", 5.9), ("virginica", 6.6)):
        rows += [",".join(f"{v:.1f}" for v in centre + rng.normal(0, 0.3, 4)) + f",{label}" for _ in range(50)]
    path = tmp_path / "iris.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_iris_like_file_proposes_the_text_label_as_target_and_says_no_column_names_tasks(qtbot, make_window,
                                                                                         tmp_path):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(iris_like(tmp_path))]))
    form = dialog.form
    assert form.layout_labels.isChecked() and form.split_by.currentText() == "by rows"   # 3 labels: proposed
    assert dialog.ok_button.isEnabled()
    drive(qtbot, dialog, lambda: dialog.form.layout_long.setChecked(True))
    assert dialog.form.task_column.currentIndex() == -1   # no float column of mostly unique values
    assert dialog.form.target.currentText() == "label" and dialog.form.classification.isChecked()
    assert dialog.form.feature_names() == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert not dialog.ok_button.isEnabled()
    message = dialog.error_label.text()
    assert message.startswith("no column names the tasks: 'sepal_length', 'sepal_width', 'petal_length', "
                              "'petal_width' hold decimal numbers")
    assert "'label' looks like the class label (3 classes)" in message
    assert "import a folder of CSV files, one task per file" in message
    dialog.reject()
    assert window.family_editor.spec().name == "sinusoid"


def test_a_text_id_is_the_task_column_and_a_class_named_column_the_target(qtbot, make_window):
    window = make_window()
    dialog = settled(qtbot, window.csv.import_csv([str(BAD / "classification.csv")]))
    assert dialog.form.task_column.currentText() == "writer"   # text ids, groups of 24 rows
    assert dialog.form.target.currentText() == "letter" and dialog.form.classification.isChecked()
    assert dialog.form.feature_names() == ["width", "slant"]
    dialog.reject()


@pytest.mark.parametrize("name", ["garbage.csv", "excel.csv", "ragged.csv", "empty.csv"])
def test_the_header_says_the_file_could_not_be_read(qtbot, make_window, tmp_path, name):
    window = make_window()
    path = write_binary(tmp_path).get(name, BAD / name)
    dialog = settled(qtbot, window.csv.import_csv([str(path)]))
    assert dialog.error_label.text().startswith(name)
    assert dialog.files_label.text() == f"<b>Could not read</b> {name}"
    assert "Reading" not in dialog.files_label.text() and not dialog.ok_button.isEnabled()
    dialog.reject()


def test_guesses_without_the_window(tmp_path):
    """Whole-number ids named like a subject name the tasks and are no input; a text column of a few
    values is the class label when nothing names the tasks, never an input or a task column."""
    from maml_gui.importing.csv_choices import read_tables

    ids = tmp_path / "ids.csv"
    ids.write_text("SubjectID,dose,response\n" + "".join(f"{s},{d * 0.5},{s + d / 7:.4f}\n"
                                                         for s in range(101, 109) for d in range(6)))
    guess = read_tables([str(ids)], lambda f: None).suggestion
    assert (guess.task_column, guess.target, guess.features, guess.classification) == \
        ("SubjectID", "response", ["dose"], False)

    colours = tmp_path / "colours.csv"
    rng = np.random.default_rng(1)
    colours.write_text("a,b,colour\n" + "".join(f"{rng.normal():.4f},{rng.normal():.4f},{c}\n"
                                                for c in ("red", "green", "blue") for _ in range(20)))
    guess = read_tables([str(colours)], lambda f: None).suggestion
    assert guess.task_column is None and guess.target == "colour" and guess.classification
    assert guess.features == ["a", "b"] and "'colour' looks like the class label (3 classes)" in guess.no_task_column


def test_labelled_row_files_get_no_task_column(tmp_path):
    """Issue 20: '3750.0' is a decimal even when every value is whole, and a count such as
    num_convex_points beside a class label names no tasks: both files are labelled rows."""
    from maml_gui.importing.csv_choices import read_tables

    from ..csv_fixtures import leaf_csv, penguins_csv

    penguins = read_tables([str(penguins_csv(tmp_path))], lambda f: None)
    guess = penguins.suggestion
    assert guess.task_column is None and guess.target == "species" and guess.classification
    assert guess.features == ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    assert guess.no_task_column.startswith("'bill_length_mm', 'bill_depth_mm', 'flipper_length_mm', 'body_mass_g' "
                                           "hold decimal numbers")
    assert penguins.label.name == "species" and penguins.label.labels == 3
    leaf = read_tables([str(leaf_csv(tmp_path))], lambda f: None)
    assert leaf.suggestion.task_column is None and leaf.suggestion.target == "species"
    assert "num_convex_points" in leaf.suggestion.features
    assert "'num_convex_points' holds whole numbers beside a class label" in leaf.suggestion.no_task_column
    assert leaf.label.name == "species" and leaf.label.labels == 32
    whole = tmp_path / "whole.csv"   # the same values written without '.0' are whole numbers
    whole.write_text("species,mass\n" + "".join(f"s{i % 3},{3000 + 50 * (i % 7)}\n" for i in range(60)))
    from maml_gui.importing.csv_columns import whole_numbers

    table = read_tables([str(whole)], lambda f: None).tables[0]
    assert whole_numbers(table, "mass") and not whole_numbers(penguins.tables[0], "body_mass_g")


def test_penguins_are_proposed_as_episodes_over_held_out_rows_and_named_in_the_panel(qtbot, make_window,
                                                                                   tmp_path):
    """Issue 20, items 3, 6 and 11: a file of 3 species is proposed as 3-way episodes over rows (3 labels
    cannot be split by label: the dialog says so in its own words), the family panel names the file
    with a Change… button and previews the rows on principal components, and the run is named after it."""
    from ..csv_fixtures import penguins_csv

    window = make_window(tiny().replace("train", shots=10, query=10))
    window.resize(1280, 800)
    window.show()   # laid out, so the preview's axis titles are placed as on screen
    qtbot.waitExposed(window)
    dialog = settled(qtbot, window.csv.import_csv([str(penguins_csv(tmp_path))]))
    assert dialog.form.layout_labels.isChecked() and dialog.form.split_by.currentText() == "by rows"
    assert dialog.form.target.currentText() == "species" and len(dialog.form.feature_names()) == 4
    assert dialog.shots_query() == (5, 5)   # the smallest species keeps 10 held-out rows
    assert dialog.problem() is None and dialog.ok_button.isEnabled()
    assert dialog.split_label.text().startswith("3 labels of 'species' in every split, rows 240 / 51 / 51")
    assert "3-way episodes over 4 inputs" in dialog.split_label.text()
    drive(qtbot, dialog, lambda: dialog.form.split_by.setCurrentIndex(0))
    message = dialog.error_label.text()
    assert message.startswith("classes per episode: penguins.csv has 3 labels of 'species'; split by label, "
                              "meta-train gets 1 and meta-test 1, and 2-way episodes need at least 2 in each")
    assert "split by rows instead of by label" in message and "family." not in message
    assert not dialog.ok_button.isEnabled()
    drive(qtbot, dialog, lambda: dialog.form.split_by.setCurrentIndex(1))
    dialog.ok_button.click()
    editor = window.family_editor
    spec = editor.spec()
    assert spec.name == "labelled_csv" and spec.params["split_rows"] is True and spec.params["n_way"] == 3
    assert window.statusBar().currentMessage() == ("Imported 342 rows of 3 labels for 3-way episodes (240 / 51 / 51) "
                                                   "from penguins.csv")
    qtbot.waitUntil(lambda: window.start_problem() is None, timeout=20_000)
    panel = editor.csv_panel
    assert not panel.isHidden() and not panel.change.isHidden()
    assert panel.summary.text().startswith("<b>penguins.csv</b> — 3-way episodes over 3 labels of 'species'")
    with qtbot.waitSignal(editor.import_requested, timeout=2_000):
        panel.change.click()
    again = settled(qtbot, window.csv.dialog)   # Change… reopens the dialog on the same choices
    assert again.form.layout_labels.isChecked() and again.form.split_by.currentText() == "by rows"
    again.reject()
    qtbot.waitUntil(lambda: len(editor.preview_data()["points"][0]) > 0, timeout=10_000)
    plot = editor.preview.getPlotItem()
    axis = plot.getAxis("bottom")
    assert axis.labelText == "principal component 1 of 4 inputs"
    assert 0 <= axis.label.pos().x() and axis.label.pos().x() + axis.label.boundingRect().width() <= axis.width()
    assert all(name in plot.titleLabel.text for name in ("Adelie", "Chinstrap", "Gentoo"))
    x, y = editor.preview_data()["points"]
    assert len(x) == 60 + 48 + 60 and np.std(x) > np.std(y) > 0.1   # at most 60 meta-train rows a species
    window.session.training.start(window.panel_config().replace("train", iterations=2, meta_batch=2))
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=60_000)
    assert window.session.current.status == "completed", window.error_banner.text()
    assert window.session.current.name.endswith("· penguins")
