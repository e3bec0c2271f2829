"""Compared runs in the window: never drawn on the axes of another kind of task; a sweep's seeds
drawn in the colour of their run-list swatch."""

import numpy as np
from PySide6.QtGui import QColor

from core.trained.loaded_model import AdaptationSnapshot
from maml_gui.session.overlays import run_color
from .support import tiny


STEPS = np.arange(11)


def add_run(window, family: str, level: float, n: int = 200, scored: bool = True):
    """A finished run of ``family`` in the window's session, as if read back from its project."""
    session = window.session
    run = session.runs.create(tiny(family=family))
    its = np.arange(1, n + 1)
    loss = level + 1 / its
    run.history.append(its, loss, np.ones(n), np.full(n, 0.01), np.column_stack([loss * 2, loss]))
    if scored:
        metric = "accuracy" if family in ("glyphs", "blobs") else "mse"
        mean = 0.2 + 0.05 * STEPS if metric == "accuracy" else level + 1 / (1 + STEPS)
        run.adaptation = AdaptationSnapshot(n, metric, STEPS, {"meta-learned": (mean, np.full(11, 0.01))})
    run.status = "completed"
    session.run_added.emit(run)
    return run


def test_runs_of_another_family_kind_leave_the_axes_and_the_table_says_so(qtbot, make_window):
    window = make_window()
    session, plots = window.session, window.plots
    sines = [add_run(window, "sinusoid", level) for level in (1.0, 3.0, 6.0)]
    session.set_compared([r.run_id for r in sines])
    names = [r.name for r in sines]
    qtbot.waitUntil(lambda: list(plots.loss.overlay_data()) == names and list(plots.steps.overlay_data()) == names)
    assert list(plots.adaptation.overlay_data()) == names

    session.set_editing(tiny(family="glyphs"))   # "Procedural glyphs" picked: cross-entropy and accuracy axes
    assert plots.loss.y_label() == "query loss (cross-entropy)"
    qtbot.waitUntil(lambda: plots.loss.overlay_data() == {} and plots.steps.overlay_data() == {})
    assert plots.adaptation.overlay_data() == {}
    assert plots.scores.not_plotted() == names
    assert "Grey rows: regression runs (MSE), not drawn on the plots' accuracy" in plots.scores.caption.text()
    assert plots.score_tabs.tabText(1) == "Compared runs (3 not plotted)"
    assert [r[0] for r in plots.scores.rows()[1:]] == names   # their numbers stay in the table, greyed
    assert plots.scores.table.item(0, 0).foreground().color() != QColor("black")

    glyphs = add_run(window, "glyphs", 0.5)
    other = add_run(window, "glyphs", 0.8)
    session.set_compared([*(r.run_id for r in sines), other.run_id])
    session.set_current(glyphs.run_id)
    qtbot.waitUntil(lambda: list(plots.loss.overlay_data()) == [other.name])
    assert list(plots.adaptation.overlay_data()) == [other.name]
    y = plots.adaptation.drawn()["meta-learned"][1]
    assert 0.2 <= y.min() and y.max() <= 0.7   # the accuracy curve on its own axis, not squashed under MSE
    assert plots.adaptation.vb.viewRange()[1][1] < 1.5
    assert plots.scores.not_plotted() == names

    session.set_current(sines[0].run_id)   # back on a sine: the glyph run is the one left out
    qtbot.waitUntil(lambda: list(plots.loss.overlay_data()) == names[1:])
    assert plots.scores.not_plotted() == [other.name]
    unscored = add_run(window, "glyphs", 0.3, scored=False)   # no row in the table: the caption names it
    session.set_compared([*(r.run_id for r in sines), other.run_id, unscored.run_id])
    qtbot.waitUntil(lambda: plots.scores.not_plotted() == [other.name, unscored.name])
    assert unscored.name in plots.scores.caption.text() and other.name not in plots.scores.caption.text()


def test_a_sweeps_seeds_have_the_swatch_of_the_colour_they_are_drawn_in(qtbot, make_window, tmp_path, monkeypatch):
    window = make_window()
    session, plots = window.session, window.plots
    sweep = tmp_path / "sweep" / "runs"
    folders = {2: sweep / "lr0.01-seed1", 3: sweep / "lr0.01-seed2", 4: sweep / "lr0.1-seed1"}
    monkeypatch.setattr(session.follower, "folder_of", lambda run_id: folders.get(run_id))
    runs = [add_run(window, "sinusoid", level) for level in (1.0, 2.0, 3.0, 4.0)]
    ids = [r.run_id for r in runs]
    assert ids == [1, 2, 3, 4]
    session.set_compared(ids)
    qtbot.waitUntil(lambda: len(plots.loss.band_data()) == 1)
    (band, fill), = plots.loss.band_items().items()
    band_color = fill.brush().color().name()
    assert band_color == run_color(2)
    swatches = {i: window.run_list.color(i) for i in ids}
    assert swatches[2] == swatches[3] == band_color   # both seeds of the band show its colour
    assert swatches[1] == run_color(1) and swatches[4] == run_color(4)   # a run alone keeps its own
    curves = plots.loss.overlay_curves()
    assert {n: c.opts["pen"].color().name() for n, c in curves.items()} == {runs[0].name: swatches[1],
                                                                             runs[3].name: swatches[4]}
    session.set_compared([3])   # one seed alone is a curve, still in its swatch's colour
    qtbot.waitUntil(lambda: list(plots.loss.overlay_curves()) == [runs[2].name])
    assert plots.loss.overlay_curves()[runs[2].name].opts["pen"].color().name() == swatches[3]
