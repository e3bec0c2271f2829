"""What a first-time user trips over: wheel scrolling that edits settings, panels that do not fit
1280×800, names and captions that say the wrong thing, a missing Help menu."""

from __future__ import annotations

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QTextBrowser

from core.storage.checkpoint import save_run
from core.config import FamilySpec
from core.trained.export import export_weights
from core.training.trainer import MetaTrainer
from maml_gui.window.help_menu import shortcut_rows, usage_text
from maml_gui.session.runs import data_name
from maml_gui.session.session import WeightsSource

from .support import tiny


def wheel(widget, steps: int = -1) -> None:
    """One notch of the mouse wheel over ``widget`` (negative: towards the user, i.e. scroll down)."""
    pos = QPointF(widget.rect().center())
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_the_wheel_scrolls_the_panel_instead_of_changing_an_unfocused_field(qtbot, make_window):
    window = make_window()
    window.show()
    qtbot.waitExposed(window)
    box = window.hyper_panel.meta_batch
    bar = window.experiment_scroll.verticalScrollBar()
    before, position = box.value(), bar.value()
    wheel(box)
    assert box.value() == before, "an unfocused spin box ignores the wheel"
    assert bar.value() > position or bar.maximum() == 0, "the panel scrolls instead"
    box.setFocus()
    qtbot.waitUntil(box.hasFocus)
    wheel(box, steps=1)
    assert box.value() == before + 1, "once focused, the wheel edits it"
    combo = window.hyper_panel.algorithm
    index = combo.currentIndex()
    wheel(combo)
    assert combo.currentIndex() == index


def test_every_family_fits_the_experiment_panel_and_the_window_fits_1280x800(qtbot, make_window, tmp_path):
    window = make_window()
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    for name in ("sinusoid", "linear", "polynomial", "step", "formula", "blobs"):
        window.family_editor.set_spec(FamilySpec(name))
        scroll = window.experiment_scroll
        qtbot.waitUntil(lambda: scroll.width() >= scroll.minimumWidth() and scroll.horizontalScrollBar().maximum() == 0,
                        timeout=3000)
    trainer = MetaTrainer(tiny(5))
    trainer.step()
    save_run(tmp_path / "run", trainer.config, trainer.weights(), [])
    assert window.weights.open_weights(tmp_path / "run")
    view = window.weights.show_adapt_view()
    for kind in ("held_out", "csv", "points"):
        view.set_source_kind(kind)
        hint = window.minimumSizeHint()
        assert hint.width() <= 1280 and hint.height() <= 800, f"{kind}: the window would need {hint}"
    assert window.size().width() <= 1280 and window.size().height() <= 800
    qtbot.waitUntil(lambda: view.result() is not None or not view.is_busy(), timeout=20_000)


def test_the_runs_list_shows_several_rows(qtbot, make_window):
    window = make_window()
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    table = window.run_list.table
    assert table.viewport().height() >= 4 * table.verticalHeader().defaultSectionSize()


def test_titles_names_and_captions_say_the_right_thing(qtbot, make_window, tmp_path):
    window = make_window()
    assert "MAML Explorer" not in window.windowTitle(), "Qt adds the application name once itself"
    csv = tiny(family="csv").replace("family", params={"paths": ["/data/pk_study.csv"], "task_column": "s"})
    assert data_name(csv) == "pk_study" and data_name(tiny()) == "sinusoid"

    trainer = MetaTrainer(tiny(5))
    trainer.step()
    save_run(tmp_path / "run", trainer.config, trainer.weights(), [])
    pt = export_weights(tmp_path / "run", "pt", tmp_path / "run1.pt")
    assert window.weights.open_weights(pt)
    qtbot.waitUntil(lambda: "the weights of run1.pt" in window.plots.task_caption.text(), timeout=5000)
    assert "iteration 0" not in window.plots.task_caption.text()

    source = window.weights.current_weights()
    adapted = WeightsSource(source.config, source.weights, source.family,
                            f"{source.label}, adapted to held-out task #1 (5 steps)")
    dialog = window.weights.choose_export_weights(adapted)
    assert dialog.path().name == "run1.safetensors"
    dialog.reject()


def test_changing_the_meta_learning_rate_while_training_says_so(qtbot, make_window):
    window = make_window()
    window.start()
    qtbot.waitUntil(lambda: window.session.active is not None and window.session.active.iteration > 2, timeout=10_000)
    window.hyper_panel.meta_lr.setValue(0.0042)
    assert "0.0042" in window.statusBar().currentMessage()
    window.stop()
    qtbot.waitUntil(lambda: not window.session.is_training(), timeout=10_000)


def test_the_help_menu_has_the_guide_the_shortcuts_and_about(qtbot, make_window):
    window = make_window()
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert [a.text() for a in menus["Help"].actions() if a.text()] == [
        "Using MAML Explorer", "Keyboard shortcuts", "About MAML Explorer"]
    assert "Task family" in usage_text()
    rows = dict(shortcut_rows(window.actions))
    assert rows["Start"] and rows["Step"] and rows["Stop"]
    menus["Help"].actions()[1].trigger()
    text = window.help_dialog.findChild(QTextBrowser).toPlainText()
    assert "Start" in text and rows["Start"] in text
    window.help_dialog.reject()
