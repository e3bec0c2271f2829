"""How the plots look: the shown run in its own colour, readable log axes and labels, legends the
user can move, a one-click reset of zoom and pan."""

import numpy as np
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor
from PySide6.QtTest import QTest

from core.loaded_model import AdaptationSnapshot
from maml_gui.panels import PlotsArea
from maml_gui.runs import History

STEPS = np.arange(11)


def history(n: int, inner_steps: int = 3) -> History:
    h = History()
    its = np.arange(1, n + 1)
    loss = 0.5 + 1 / its
    h.append(its, loss, 2 / np.sqrt(its), np.full(n, 0.5), np.column_stack([loss * (inner_steps + 1 - s) for s in range(inner_steps + 1)]))
    return h


def area(qtbot, width=1000, height=700) -> PlotsArea:
    plots = PlotsArea()
    plots.resize(width, height)
    qtbot.addWidget(plots)
    plots.show()
    qtbot.waitExposed(plots)
    return plots


def test_the_per_step_plot_draws_the_shown_run_in_its_colour_dotted_before_adaptation(qtbot):
    plots = area(qtbot)
    green = "#2ca02c"
    plots.set_history(history(50), "run 2", green)
    qtbot.waitUntil(lambda: [len(x) for x, _ in plots.steps.data()] == [50] * 4)
    curves = plots.steps._curves
    pens = [c.opts["pen"] for c in curves]
    assert len(pens) == 4
    hue = QColor(green).hsvHue()
    assert all(abs(p.color().hsvHue() - hue) <= 2 for p in pens), [p.color().name() for p in pens]
    assert pens[0].style() == Qt.PenStyle.DotLine and pens[0].color().name() == green
    assert pens[-1].style() == Qt.PenStyle.SolidLine and pens[-1].color().name() == green   # the adapted curve
    assert all(p.style() == Qt.PenStyle.SolidLine for p in pens[1:])
    lightness = [p.color().lightness() for p in pens[1:]]
    assert lightness == sorted(lightness, reverse=True) and lightness[0] > lightness[-1]   # darker with each step
    plots.set_history(plots.steps.history(), "run 4", "#9467bd")   # another run: its colour
    assert all(abs(c.opts["pen"].color().hsvHue() - QColor("#9467bd").hsvHue()) <= 2 for c in curves)
    assert curves[-1].opts["pen"].color().name() == "#9467bd"
    assert [n for _, n in plots.steps.legend.entries()] == ["before adaptation", "after 1 step", "after 3 steps"]


def test_a_pretrain_baseline_of_one_update_is_singular(qtbot):
    plots = area(qtbot)
    mean = 1 / (1 + STEPS)
    series = {"meta-learned": (mean, mean * 0.1), "pretrain": (mean * 2, mean * 0.1)}
    plots.show_adaptation(AdaptationSnapshot(1, "mse", STEPS, series, baseline_iterations=1))
    assert [n for _, n in plots.adaptation.legend.entries()] == ["meta-learned", "pretrain (1 update)"]
    plots.show_adaptation(AdaptationSnapshot(1, "mse", STEPS, series, baseline_iterations=1200))
    assert [n for _, n in plots.adaptation.legend.entries()] == ["meta-learned", "pretrain (1,200 updates)"]
