"""Image families in the window: the image folder import dialog (load, cancel, refusals), applying
an imported folder (family + Conv-4 suggestion), the glyphs preview grid, and the model settings.

Folders are written by the tests (tiny PNGs); tests wait on signals or conditions, never sleep,
and a fixture fails any test that leaves a thread running.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from core.config import ExperimentConfig, FamilySpec, ModelSpec
from core.tasks import image_folder
from maml_gui.widgets.hyper_panel import HyperPanel


SMALL_GLYPHS = {"n_alphabets": 6, "characters": 4, "examples": 12, "image_size": 12, "n_way": 3}


def write_folder(root, classes: int = 8, per_class: int = 6, side: int = 10, extra=()):
    """``root/class_NN/img_MM.png``: each class a different grey level, so classes look different."""
    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c:02d}"
        folder.mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(c * 25 + rng.integers(0, 20, (side, side)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(folder / f"img_{i:03d}.png")
    for name, content in extra:
        (root / name).write_bytes(content)
    return root


def settled(qtbot, dialog):
    qtbot.waitUntil(dialog.is_settled, timeout=20_000)
    return dialog


def mime_for(path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return mime


# -- the import dialog -------------------------------------------------------------------------
def test_import_dialog_reads_a_folder_and_ok_applies_images_and_conv4(qtbot, make_window, tmp_path):
    folder = write_folder(tmp_path / "shapes", extra=[("class_00/notes.txt", b"hello"),
                                                      ("class_01/broken.png", b"not a png")])
    window = make_window()
    assert window.hyper_panel.model_spec().name == "mlp"
    dialog = window.images.import_images(folder)
    assert not dialog.ok_button.isEnabled()   # nothing read yet
    settled(qtbot, dialog)
    assert "fewer than the 5 ways" in dialog.problem() and not dialog.ok_button.isEnabled()   # 8 classes: 5 / 1 / 2
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        dialog.n_way.setValue(2)
    settled(qtbot, dialog)
    assert "shots + query = 10 images" in dialog.problem()   # the window's 5 + 5; classes hold 5 or 6
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        dialog.query.setValue(1)
    settled(qtbot, dialog)
    assert dialog.problem() is None and dialog.ok_button.isEnabled()
    assert "ImageFolder" in dialog.layout_label.text()
    assert "8 in the folder" in dialog.splits_label.text() and "meta-train" in dialog.splits_label.text()
    sizes = dialog.family().split_sizes()
    assert sum(sizes.values()) == 8 and sizes["train"] >= 5
    warnings = [dialog.warnings_list.item(i).text() for i in range(dialog.warnings_list.count())]
    assert any("skipped 1" in w and "broken.png" in w for w in warnings)
    assert any("notes.txt" in w for w in warnings)
    assert "MB" in dialog.memory_label.text()
    rows = dialog.grid.rows()
    assert 2 <= len(rows) <= 6 and rows[0][1][1:] == (1, 28, 28)   # resized to the default 28×28

    with qtbot.waitSignal(dialog.updated, timeout=20_000):   # a new size reads the folder again
        dialog.image_size.setValue(16)
    settled(qtbot, dialog)
    assert dialog.grid.rows()[0][1][1:] == (1, 16, 16) and dialog.problem() is None

    dialog.ok_button.click()
    editor = window.family_editor
    qtbot.waitUntil(lambda: editor.family() is not None, timeout=20_000)
    spec = editor.spec()
    assert spec.name == "images" and spec.params["path"] == str(folder.resolve()) and spec.params["image_size"] == 16
    assert window.hyper_panel.model_spec().name == "conv4"
    assert window.hyper_panel.train_spec().query == 1 and window.start_problem() is None   # ready to train
    assert not editor.image_panel.isHidden() and "shapes/" in editor.image_panel.summary.text()
    assert "8 classes" in editor.image_panel.summary.text()
    qtbot.waitUntil(lambda: len(editor.preview_data()["images"]) > 0, timeout=5000)

    window.hyper_panel.model.setCurrentIndex(window.hyper_panel.model.findData("mlp"))   # the user may change it
    assert window.hyper_panel.model_spec().name == "mlp" and editor.spec().name == "images"


def test_cancel_stops_the_reading(qtbot, make_window, tmp_path, monkeypatch):
    """Decoding waits at the second chunk until the test has cancelled: the third chunk is never read."""
    folder = write_folder(tmp_path / "big", classes=10, per_class=70, side=8)   # 700 images: 3 chunks of 256
    decode, calls, gate = image_folder.decode_image, [], threading.Event()

    def held(path, size, channels):
        calls.append(path)
        if len(calls) > image_folder.CHUNK:
            gate.wait(10)
        return decode(path, size, channels)

    monkeypatch.setattr(image_folder, "decode_image", held)
    window = make_window()
    dialog = window.images.import_images(folder)
    try:
        qtbot.waitUntil(lambda: len(calls) > image_folder.CHUNK, timeout=20_000)   # reading the second chunk
        assert dialog.is_loading() and dialog.progress_bar.isVisibleTo(dialog)
        dialog.cancel_read_button.click()
    finally:
        gate.set()
    qtbot.waitUntil(lambda: not dialog.is_loading(), timeout=20_000)
    assert len(calls) <= 2 * image_folder.CHUNK < 700
    assert "cancelled" in dialog.problem() and not dialog.ok_button.isEnabled()
    assert dialog.error_label.isVisibleTo(dialog) and not dialog.progress_bar.isVisibleTo(dialog)
    dialog.reject()
    assert window.family_editor.spec().name == "sinusoid"


@pytest.mark.parametrize("make, expected", [
    (lambda root: root.mkdir() or root, "is empty"),
    (lambda root: (root.write_text("x"), root)[1], "is a file"),
    (lambda root: write_folder(root, classes=3, per_class=4), "fewer than the 5 ways"),
])
def test_a_bad_folder_gives_a_readable_message_and_no_ok(qtbot, make_window, tmp_path, make, expected):
    window = make_window()
    dialog = settled(qtbot, window.images.import_images(make(tmp_path / "data")))
    assert expected in dialog.problem() and expected in dialog.error_label.text()
    assert "Traceback" not in dialog.error_label.text() and not dialog.ok_button.isEnabled()
    dialog.ok_button.click()   # disabled: nothing applied
    assert window.family_editor.spec().name == "sinusoid"
    dialog.reject()


def test_n_way_is_checked_against_the_classes(qtbot, make_window, tmp_path):
    window = make_window()
    dialog = window.images.import_images(write_folder(tmp_path / "f", classes=10, per_class=3))
    dialog.shots.setValue(1)
    dialog.query.setValue(2)
    settled(qtbot, dialog)
    assert "meta-test split has 2 classes" in dialog.problem()   # 10 classes, 20 % for meta-test
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        dialog.rotations.setChecked(True)   # four times the classes: 8 meta-test classes, enough
    settled(qtbot, dialog)
    assert dialog.problem() is None and dialog.params()["rotations"]
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        dialog.rotations.setChecked(False)
    settled(qtbot, dialog)
    with qtbot.waitSignal(dialog.updated, timeout=20_000):
        dialog.split_test.setValue(50)   # half the classes for meta-test: 5, enough for 5-way
    settled(qtbot, dialog)
    assert "meta-train split has 3 classes" in dialog.problem()   # and meta-train is now too small
    assert dialog.params()["split"][2] == 0.5
    dialog.reject()


# -- drag and drop -----------------------------------------------------------------------------
def test_a_dropped_image_folder_opens_the_image_import(qtbot, make_window, tmp_path):
    folder = write_folder(tmp_path / "drop", classes=6, per_class=2)
    window = make_window()
    assert window.images.drop_target(mime_for(folder)) == folder
    assert window.images.drop_target(mime_for(folder / "class_00")) is None   # images, but no class folders
    csv_folder = tmp_path / "tables"
    csv_folder.mkdir()
    (csv_folder / "a.csv").write_text("x,y\n1,2\n")
    assert window.images.drop_target(mime_for(csv_folder)) is None   # left to the CSV import
    mime = mime_for(folder)   # kept: the events do not own it
    enter = QDragEnterEvent(QPoint(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    enter.setAccepted(False)
    QApplication.sendEvent(window, enter)
    assert enter.isAccepted() and "drop/" in window.statusBar().currentMessage()
    drop = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window, drop)
    dialog = settled(qtbot, window.images.dialog)
    assert dialog.path == str(folder.resolve()) and window.csv.dialog is None
    dialog.reject()


# -- the family editor -------------------------------------------------------------------------
def test_the_combo_offers_glyphs_and_images_through_the_import(qtbot, make_window, monkeypatch):
    window = make_window()
    combo = window.family_editor._combo
    offered = [combo.itemData(i) for i in range(combo.count())]
    assert "glyphs" in offered and "labelled_csv" not in offered
    asked = []
    monkeypatch.setattr(window.images, "choose_import_images", lambda: asked.append(True))
    combo.setCurrentIndex(combo.findData("images"))   # nothing imported: ask for a folder, stay on sinusoid
    assert asked == [True] and window.family_editor.spec().name == "sinusoid"


def test_glyphs_preview_is_an_image_grid_built_off_the_gui_thread(qtbot, make_window):
    window = make_window()
    editor = window.family_editor
    with qtbot.waitSignal(editor.built, timeout=30_000):
        editor.set_spec(FamilySpec("glyphs", SMALL_GLYPHS))
        assert editor.is_building() and "drawing the glyphs" in window.start_problem()   # Start waits for it
    assert window.hyper_panel.model_spec().name == "conv4"   # the network followed the data
    window.hyper_panel.conv_depth.setValue(3)   # 12×12 glyphs allow three blocks
    assert editor.error() is None and window.start_problem() is None
    rows = editor.preview_data()["images"]
    assert len(rows) == 3 and all(shape == (4, 1, 12, 12) for _, shape in rows)
    assert rows[0][0].startswith("0: alphabet")
    assert editor.image_grid.isVisibleTo(editor) and not editor.preview.isVisibleTo(editor)
    first = editor.image_grid.pixels(0).copy()
    assert first.min() < 128 < first.max()   # dark strokes on white, not a blank or saturated tile
    editor._new_tasks.click()
    assert not np.array_equal(editor.image_grid.pixels(0), first)
    rotations = editor.form.field_widgets["family.rotations"][0]
    rotations.setChecked(True)   # a cheap change: rebuilt at once from the drawn glyphs
    assert not editor.is_building() and editor.spec().params["rotations"] and editor.error() is None
    n_way = editor.form.field_widgets["family.n_way"][0]
    n_way.setValue(40)
    assert "ways" in editor.error() and n_way.property("invalid")


# -- the model settings ------------------------------------------------------------------------
def test_hyper_panel_conv_fields_round_trip_and_show_only_for_conv4(qtbot):
    panel = HyperPanel()
    qtbot.addWidget(panel)
    panel.show()
    assert panel.hidden.isVisible() and not panel.conv_channels.isVisible()
    model = ModelSpec(name="conv4", conv_channels=32, conv_depth=3, downsample="stride", batch_norm="per_step")
    config = ExperimentConfig(model=model)
    panel.set_config(config)
    assert panel.model_spec() == model
    assert panel.conv_channels.isVisible() and panel.batch_norm.isVisible() and not panel.hidden.isVisible()
    assert "stride" in panel.downsample.currentText() and "MAML++" in panel.batch_norm.currentText()
    assert "MAML paper" in panel.model.toolTip() and panel.conv_depth.toolTip()
    with qtbot.waitSignal(panel.validity_changed) as blocker:   # per-step statistics need a differentiated inner loop
        panel.algorithm.setCurrentIndex(panel.algorithm.findData("reptile"))
    assert blocker.args == [False] and "per-step batch norm" in panel.error()
    assert panel.batch_norm.property("invalid")
    panel.batch_norm.setCurrentIndex(panel.batch_norm.findData("batch"))
    assert panel.error() is None and not panel.batch_norm.property("invalid")
    panel.hidden.setText("oops")   # not used by Conv-4: no error, and the spec stays valid
    assert panel.error() is None and panel.model_spec().hidden == ModelSpec().hidden
    panel.model.setCurrentIndex(panel.model.findData("mlp"))
    assert "not a whole number" in panel.error() and panel.hidden.isVisible()
