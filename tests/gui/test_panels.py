"""The settings panels as a user meets them (issue 20): the network follows the data, selecting a
run loads its settings, the layout holds still under banners and family changes, invalid fields
are marked at the field, and messages name fields as the panel labels them, uncut.

Windows get a temporary QSettings file and tiny configs; tests wait on signals or conditions.
"""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import QPoint, QRect
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication, QDockWidget, QLabel

from core.config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.tasks import FAMILIES
from maml_gui.widgets.field_names import readable
from maml_gui.widgets.hyper_panel import HyperPanel
from maml_gui.widgets.family_editor import BUILDING, IMPORTED

from .support import tiny


SMALL_GLYPHS = {"n_alphabets": 6, "characters": 4, "examples": 12, "image_size": 16, "n_way": 3}


def glyphs_config() -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec("glyphs", SMALL_GLYPHS), model=ModelSpec(name="conv4", conv_channels=4),
                            train=TrainSpec(meta_batch=2, shots=1, query=1, iterations=50))


# -- item 7: the network follows the data -------------------------------------------------------
def test_switching_to_images_selects_conv4_and_back_the_mlp_with_a_status_line(qtbot, make_window):
    window = make_window()
    editor, hyper = window.family_editor, window.hyper_panel
    with qtbot.waitSignal(editor.built, timeout=30_000):
        editor.set_spec(FamilySpec("glyphs", SMALL_GLYPHS))
    assert hyper.model_spec().name == "conv4"
    assert "network is now Conv-4" in window.statusBar().currentMessage()
    assert window.start_problem() is None, window.start_problem()

    editor.set_spec(FamilySpec("sinusoid", {}))
    assert hyper.model_spec().name == "mlp"
    assert "network is now the MLP" in window.statusBar().currentMessage()
    assert window.start_problem() is None and window.actions.start.isEnabled()


def test_a_loaded_config_keeps_its_network_and_leaving_images_switches_it(qtbot, make_window):
    """Settings loaded as a whole (a file, a run) keep their network; only a change of family switches."""
    window = make_window()
    window.set_config(glyphs_config().replace("model", name="mlp"))
    assert window.hyper_panel.model_spec().name == "mlp"   # an MLP on glyphs is allowed: images are flattened
    qtbot.waitUntil(lambda: not window.family_editor.is_building(), timeout=30_000)
    window.set_config(glyphs_config())
    qtbot.waitUntil(lambda: not window.family_editor.is_building(), timeout=30_000)
    window.family_editor.set_spec(FamilySpec("linear", {}))   # as a CSV import or the combo does
    assert window.hyper_panel.model_spec().name == "mlp"
    assert window.start_problem() is None


def test_the_task_view_drops_the_conv4_error_once_the_mlp_is_chosen(qtbot, make_window):
    window = make_window()
    qtbot.waitUntil(lambda: window.plots.task_page() == "plot", timeout=10_000)
    window.hyper_panel.suggest_model("conv4")   # the user picks Conv-4 for sinusoids
    qtbot.waitUntil(lambda: window.plots.task_page() == "note", timeout=10_000)
    assert "image inputs" in window.plots.no_view.text()
    assert window.start_problem() is not None
    window.hyper_panel.suggest_model("mlp")
    qtbot.waitUntil(lambda: window.plots.task_page() == "plot", timeout=10_000)
    assert window.start_problem() is None


# -- item 10: selecting a run loads its settings ---------------------------------------------------
def run_to_end(qtbot, window, algorithm: str):
    window.set_config(tiny(iterations=3).replace("algorithm", name=algorithm))
    window.start()
    qtbot.waitUntil(lambda: not window.session.is_training(), timeout=20_000)
    return window.session.current


def test_selecting_a_run_loads_its_settings_and_start_uses_them(qtbot, make_window):
    window = make_window()
    maml = run_to_end(qtbot, window, "maml")
    reptile = run_to_end(qtbot, window, "reptile")
    assert window.hyper_panel.algorithm_spec().name == "reptile"

    window.run_list.selected.emit(maml.run_id)   # as clicking its row does
    assert window.session.current is maml
    assert window.hyper_panel.algorithm_spec().name == "maml"
    assert not window.panel_config().changes(maml.config)
    assert f"Settings of {maml.name} loaded" in window.statusBar().currentMessage()
    assert maml.name in window.panel_source.text()

    window.run_list.selected.emit(reptile.run_id)
    assert window.hyper_panel.algorithm_spec().name == "reptile" and reptile.name in window.panel_source.text()
    window.run_list.selected.emit(maml.run_id)
    window.hyper_panel.inner_steps.setValue(3)   # an edit: the panel no longer shows a run's settings
    assert "New settings" in window.panel_source.text()
    window.hyper_panel.inner_steps.setValue(1)
    window.start()
    new = window.session.current
    assert new not in (maml, reptile) and new.config.algorithm.name == "maml"
    qtbot.waitUntil(lambda: not window.session.is_training(), timeout=20_000)


def test_the_panels_line_names_a_renamed_run_at_once(qtbot, make_window):
    window = make_window()
    maml = run_to_end(qtbot, window, "maml")
    assert maml.name in window.panel_source.text()
    window.session.rename(maml.run_id, "baseline maml")
    assert "Settings of <b>baseline maml</b>" in window.panel_source.text()


def test_selecting_a_run_asks_before_replacing_settings_no_run_holds(qtbot, make_window):
    window = make_window()
    reptile = run_to_end(qtbot, window, "reptile")
    window.set_config(tiny(iterations=3).replace("algorithm", name="fomaml"))   # edited, held by no run or file
    window.session.set_current(None)
    asked = []
    window.confirm = lambda title, text: asked.append(text) or False
    window.run_list.selected.emit(reptile.run_id)
    assert len(asked) == 1 and reptile.name in asked[0]
    assert window.session.current is reptile and window.hyper_panel.algorithm_spec().name == "fomaml"
    assert "New settings" in window.panel_source.text()
    window.session.set_current(None)
    window.confirm = lambda title, text: True
    window.run_list.selected.emit(reptile.run_id)
    assert window.hyper_panel.algorithm_spec().name == "reptile" and reptile.name in window.panel_source.text()


# -- item 12: the layout holds still ---------------------------------------------------------------
def shown_at_1280(qtbot, window):
    window.resize(1280, 800)
    window.show()
    qtbot.waitExposed(window)
    settle()
    return window


def settle() -> None:
    for _ in range(3):   # layout requests post further events; a few rounds reach a fixed point
        QApplication.sendPostedEvents()
        QApplication.processEvents()


def places(window) -> dict[str, QRect]:
    """Where the plots, the side panel and the run list are, in window coordinates."""
    widgets = {"plots": window.plots, "loss": window.plots.loss, "panel": window.experiment_scroll,
               "runs": window.run_list}
    return {name: QRect(w.mapTo(window, QPoint(0, 0)), w.size()) for name, w in widgets.items()}


def test_banners_float_over_the_plots_and_move_nothing(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    before = places(window)
    window.show_error("Training failed: " + "a long and detailed reason " * 20)
    window.hyper_panel.hidden.setText("40,x")   # and why Start is disabled, in the amber banner
    settle()
    assert window.error_banner.isVisible() and window.problem_banner.isVisible()
    assert places(window) == before
    banner = QRect(window.error_banner.mapTo(window, QPoint(0, 0)), window.error_banner.size())
    assert banner.height() > 20 and before["plots"].contains(banner.topLeft())   # drawn over the plots' top
    assert window.error_banner.label.height() >= window.error_banner.label.heightForWidth(
        window.error_banner.label.width())   # the whole text is readable
    window.error_banner.hide()
    window.hyper_panel.hidden.setText("40")
    settle()
    assert places(window) == before and window.banners.height() == 0


def test_the_panels_line_keeps_the_fields_in_place_whatever_run_it_names(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    run = run_to_end(qtbot, window, "reptile")
    family_y = lambda: window.family_editor.mapTo(window, QPoint(0, 0)).y()  # noqa: E731
    window.session.rename(run.run_id, "a run with a long name · reptile · sinusoid")   # two lines at 1280
    settle()
    assert "long name" in window.panel_source.text()
    named = family_y()
    window.session.set_current(None)
    window.hyper_panel.inner_steps.setValue(3)   # settings no run has: "New settings", one line
    settle()
    assert "New settings" in window.panel_source.text() and family_y() == named


def test_a_long_task_caption_does_not_squeeze_the_held_out_plot(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    plots = window.plots
    width = plots.adaptation.width()
    plots.task_caption.setText("task #1 · a fresh network (no run selected) · query accuracy 26% → 92% after 10 "
                               "steps and then some more words than fit beside the buttons")
    settle()
    assert plots.adaptation.width() == width
    assert plots.task_caption.height() >= plots.task_caption.heightForWidth(plots.task_caption.width())   # all shown


def test_the_settings_panel_keeps_its_width_whichever_family_is_shown(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    dock = window.findChild(QDockWidget, "experiment_dock")
    width = dock.width()
    combo = window.family_editor._combo
    for index in range(combo.count()):
        name = combo.itemData(index)
        if name in BUILDING or name in IMPORTED or name == "csv":
            continue
        combo.setCurrentIndex(index)
        settle()
        assert dock.width() == width, name
    # a form that needs more room widens the panel, and it narrows again after it
    window.family_editor.setMinimumWidth(width + 150)
    settle()
    window.fit_experiment_panel()
    settle()
    assert dock.width() >= width + 150
    window.family_editor.setMinimumWidth(0)
    settle()
    window.fit_experiment_panel()
    settle()
    assert dock.width() == width


# -- item 15: an invalid field is marked at the field, whatever kind of input it is -------------
def red_ring(widget) -> float:
    """The share of the field's outer two-pixel ring drawn in the invalid red."""
    image = widget.grab().toImage()
    w, h = image.width(), image.height()
    ring = [(x, y) for x in range(w) for y in range(h) if min(x, y, w - 1 - x, h - 1 - y) < 2]
    red = sum(1 for x, y in ring if _near_red(QColor(image.pixel(x, y))))
    return red / len(ring)


def _near_red(c) -> bool:
    return c.red() > 150 and c.green() < 120 and c.blue() < 120


def test_min_above_max_and_bad_hidden_layers_are_marked_alike(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    lo, hi = window.family_editor.form.field_widgets["family.amplitude"]
    assert red_ring(lo) < 0.1
    lo.setValue(hi.value() + 1)
    settle()
    assert window.family_editor.error_field() == "family.amplitude"
    assert red_ring(lo) > 0.6 and red_ring(hi) > 0.6   # both ends of the range, not only the text below
    hidden = window.hyper_panel.hidden
    hidden.setText("40,x")
    settle()
    assert red_ring(hidden) > 0.6
    lo.setValue(hi.value() - 1)
    hidden.setText("40")
    settle()
    assert red_ring(lo) < 0.1 and red_ring(hi) < 0.1 and red_ring(hidden) < 0.1


# -- item 6 (part): messages name fields as the panels label them ------------------------------------
def test_every_setting_has_the_label_the_panels_show(qtbot):
    """Every field of every family, and every model, algorithm and training setting, reads as its
    panel label in a message; the hyper-parameter panel's rows carry the same words."""
    for name, cls in FAMILIES.items():
        for f in cls.fields + cls.data_fields:
            text = readable(f"Cannot start: family.{f.name}: too small", name)
            assert text == f"Cannot start: {f.label}: too small", (name, f.name)
    panel = HyperPanel()
    qtbot.addWidget(panel)
    shown = {label.buddy(): label.text() for label in panel.findChildren(QLabel) if label.buddy() is not None}
    for section, spec in (("model", ModelSpec), ("algorithm", AlgorithmSpec), ("train", TrainSpec)):
        for f in dataclasses.fields(spec):
            key = f"{section}.{f.name}"
            text = readable(f"{key}: bad")
            assert "." not in text.split(":")[0], key
            assert text == f"{shown[panel._field_widgets[key]]}: bad", key
    assert readable("cannot read model.safetensors or train.csv; pick another family") == \
        "cannot read model.safetensors or train.csv; pick another family"   # file names and prose stay


def test_banners_and_the_panel_never_show_internal_keys(qtbot, make_window):
    window = make_window()
    window.hyper_panel.suggest_model("conv4")   # Conv-4 on sinusoids: Start is disabled, and says why
    assert window.problem_banner.text().startswith("Cannot start: Network: the conv4 model needs image inputs")
    assert "model.name" not in window.actions.start.toolTip()
    window.hyper_panel.suggest_model("mlp")
    window.hyper_panel.hidden.setText("40,x")
    assert "Hidden layers:" in window.hyper_panel._error_label.text() and "model." not in window.problem_banner.text()
    window.hyper_panel.hidden.setText("40")
    window.family_editor.set_spec(FamilySpec("blobs", {}))
    window.show_error("Training failed: family.n_way: the meta-train split has 1 class")
    assert window.error_banner.text() == "Training failed: classes N (ways): the meta-train split has 1 class"
    assert window.statusBar().currentMessage() == window.error_banner.text()


# -- item 16 (part): status messages are never cut mid-word ---------------------------------------
def test_a_long_status_message_is_elided_with_the_whole_text_on_hover(qtbot, make_window):
    window = shown_at_1280(qtbot, make_window())
    bar = window.statusBar()
    short = "Started run 1"
    bar.showMessage(short, 5000)
    assert bar.shown_message() == short and bar.toolTip() == ""
    long = ("Scoring the pretrain baseline again after training it to as many updates as the run had "
            "(in the background)… " * 3).strip()
    bar.showMessage(long, 5000)
    shown = bar.shown_message()
    assert shown.endswith("…") and long.startswith(shown[:-1])
    assert bar.fontMetrics().horizontalAdvance(shown) <= bar.message_room().width()
    assert bar.message_room().right() < window.current_label.mapTo(bar, QPoint(0, 0)).x()   # the readouts stay clear
    assert bar.toolTip() == long and bar.currentMessage() == long
    bar.clearMessage()
    assert bar.toolTip() == ""
