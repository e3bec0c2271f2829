"""The settings panels as a user meets them (issue 20): the network follows the data, selecting a
run loads its settings, the layout holds still under banners and family changes, invalid fields
are marked at the field, and messages name fields as the panel labels them, uncut.

Windows get a temporary QSettings file and tiny configs; tests wait on signals or conditions.
"""

from __future__ import annotations

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec

from .gui_support import tiny
from .gui_support import make_window, no_dangling_threads, private_default_settings, settings  # noqa: F401  (fixtures)

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
