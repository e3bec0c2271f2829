"""Small pieces of the main window: the error banner, the status-bar readout and the plot grid."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from PySide6.QtCore import QEvent, QRect, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget, QStatusBar, QStyle,
                               QStyleOption, QTabWidget, QToolButton, QVBoxLayout, QWidget)

from core.rl.task_views import EpisodeReturns, TrajectoryFigure
from core.trained.task_views import DataView, EpisodeView, RegionsView
from maml_gui.session.overlays import Overlay, run_color
from maml_gui.widgets.adaptation_plot import AdaptationPlot
from maml_gui.widgets.data_plot import TaskPlot
from maml_gui.widgets.episode_view import EpisodeWidget
from maml_gui.widgets.grad_norm_plot import GradNormPlot
from maml_gui.widgets.loss_plot import LossPlot
from maml_gui.widgets.return_plots import EpisodeStrip, MetaReturnPlot, StepReturnPlot
from maml_gui.widgets.rl_math import figure_caption
from maml_gui.widgets.scores_table import ScoresTable
from maml_gui.widgets.step_loss_plot import StepLossPlot
from maml_gui.widgets.trajectory_view import TrajectoryView
from maml_gui.window.episode_page import EpisodePage

BASELINE_HELP = (
    "Scores on a fixed batch of {tasks} held-out tasks after 0..M gradient steps on each task's support set "
    "(M = max(10, inner steps)); error bars are 95% confidence intervals over the tasks.\n"
    "meta-learned: the current meta-learned initialisation.\n"
    "pretrain: a baseline network trained jointly on all tasks (algorithm \"pretrain\"). While the run trains it "
    "gets about {share:.0%} of the time, so fewer updates (the legend says how many); when the run ends it is "
    "trained in the background to as many updates as the run had and scored again, so the comparison is fair.\n"
    "scratch: a fresh random initialisation fine-tuned with the same inner learning rate.\n"
    "Updated about every {interval:g} s, when paused, after a single step and at the end of a run.")


_BANNER_STYLES = {
    "error": "#banner { background: #fdecea; border: 1px solid #d62728; border-radius: 3px; } QLabel { color: #8b1a1a; }",
    "warning": "#banner { background: #fff4e0; border: 1px solid #e0a030; border-radius: 3px; } QLabel { color: #6b4500; }",
}


class ErrorBanner(QWidget):
    """A dismissible strip above the plots: errors (red) or why Start is disabled (amber) stay
    readable without blocking the window."""

    def __init__(self, parent: QWidget | None = None, kind: str = "error", closable: bool = True):
        super().__init__(parent)
        self.setObjectName("banner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.setStyleSheet(_BANNER_STYLES[kind])
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.setToolTip("Dismiss")
        close.clicked.connect(self.hide)
        close.setVisible(closable)
        self.button = QPushButton()   # an offer that goes with the message (e.g. "Continue run 3")
        self.button.hide()
        self.button.clicked.connect(self._on_button)
        self._action = None
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(close, 0, Qt.AlignmentFlag.AlignTop)
        self.hide()

    def show_message(self, text: str, action: tuple[str, object] | None = None) -> None:
        """``action`` = (button text, callable): a button beside the text; clicking it hides the banner."""
        self.label.setText(text)
        self._action = action[1] if action else None
        self.button.setText(action[0] if action else "")
        self.button.setVisible(action is not None)
        self.show()

    def _on_button(self) -> None:
        action, self._action = self._action, None
        self.hide()
        if action is not None:
            action()

    def text(self) -> str:
        return self.label.text()


class BannerOverlay(QWidget):
    """The banners float over the plots instead of taking a row of the layout: showing or hiding one
    moves nothing under the mouse (the plots and the side panels keep their places). They sit just
    below the top row's plot titles (``below``: the widgets whose titles stay readable), so every
    plot still says what it is."""

    MARGIN = 4

    def __init__(self, host: QWidget, banners: Sequence[ErrorBanner], below: Sequence = ()):
        super().__init__(host)
        self._below = list(below)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        for banner in banners:
            layout.addWidget(banner)
        host.installEventFilter(self)
        for plot in self._below:
            plot.installEventFilter(self)   # their titles move with them
        self._place()

    def eventFilter(self, watched, event) -> bool:
        if event.type() in (QEvent.Type.Resize, QEvent.Type.Move) and (
                watched is self.parentWidget() or watched in self._below):
            self._place()
        return False

    def _top(self) -> int:
        """The y (in the host) just below the lowest title of the plots in ``below``."""
        host, top = self.parentWidget(), self.MARGIN
        for plot in self._below:
            title = plot.plot.getPlotItem().titleLabel
            bottom = title.mapRectToScene(title.boundingRect()).bottom()
            at = plot.plot.mapTo(host, plot.plot.mapFromScene(0, bottom))
            top = max(top, at.y() + 1)
        return top

    def event(self, event) -> bool:
        if event.type() == QEvent.Type.LayoutRequest:   # a banner was shown, hidden or got new text
            self._place()
        return super().event(event)

    def _place(self) -> None:
        width = max(0, self.parentWidget().width() - 2 * self.MARGIN)
        layout = self.layout()
        height = layout.totalHeightForWidth(width) if layout.hasHeightForWidth() else layout.totalSizeHint().height()
        shown = any(not layout.itemAt(i).widget().isHidden() for i in range(layout.count()))
        self.setGeometry(self.MARGIN, self._top(), width, height if shown else 0)
        self.raise_()


class StatusBar(QStatusBar):
    """A status bar whose passing messages are never cut mid-word: a message longer than the room
    left of the permanent readouts ends in "…", and hovering the bar shows all of it."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.messageChanged.connect(lambda _text: self._update_tip())

    def message_room(self) -> QRect:
        """Where the message is drawn: from the left edge to the first permanent readout (as Qt does)."""
        readouts = [w.x() for w in self.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly)
                    if w.isVisible() and w.x() > 0]
        right = min(readouts, default=self.width() - 12) - 2
        return QRect(6, 0, max(0, right - 6), self.height())

    def shown_message(self) -> str:
        """The message as drawn: whole when it fits, else elided with "…"."""
        return self.fontMetrics().elidedText(self.currentMessage(), Qt.TextElideMode.ElideRight,
                                             self.message_room().width())

    def _update_tip(self) -> None:
        text = self.currentMessage()
        self.setToolTip(text if text and self.shown_message() != text else "")

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._update_tip()

    def paintEvent(self, event) -> None:
        if not self.currentMessage():
            super().paintEvent(event)
            return
        painter = QPainter(self)
        option = QStyleOption()
        option.initFrom(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_PanelStatusBar, option, painter, self)
        painter.setPen(self.palette().windowText().color())
        painter.drawText(self.message_room(), Qt.AlignmentFlag.AlignLeading | Qt.AlignmentFlag.AlignVCenter
                         | Qt.TextFlag.TextSingleLine, self.shown_message())


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds) or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class StatusReadout:
    """Iteration, iterations/s, ETA and device as permanent status-bar labels."""

    def __init__(self, status_bar):
        self.iteration = QLabel()
        self.rate = QLabel()
        self.eta = QLabel()
        self.device = QLabel()
        for label, tip in ((self.iteration, "Meta-iterations done / planned"), (self.rate, "Meta-iterations per second"),
                           (self.eta, "Estimated time to the planned iteration count"),
                           (self.device, "Where the training runs")):
            label.setToolTip(tip)
            label.setContentsMargins(8, 0, 8, 0)
            status_bar.addPermanentWidget(label)
        self.clear()

    def clear(self, device: str = "") -> None:
        self.iteration.setText("iteration –")
        self.rate.setText("– it/s")
        self.eta.setText("ETA –")
        self.device.setText(f"device {device or '–'}")

    def show(self, iteration: int, total: int, rate: float, state: str) -> None:
        """``state``: running, paused, stopped, completed, failed, or "following (…)" for a run
        another process trains (its rate is measured from its rows as they arrive)."""
        running = state == "running" or state.startswith("following")
        self.iteration.setText(f"iteration {iteration:,} / {total:,}")
        self.rate.setText((f"{rate:,.1f} it/s" + ("" if state == "running" else f" · {state}")) if running else state)
        eta = (total - iteration) / rate if running and rate > 0 else float("nan")
        self.eta.setText(f"ETA {_duration(eta)}")

    def set_device(self, device: str, gradient_path: str = "") -> None:
        self.device.setText(f"device {device}")
        self.device.setToolTip(f"Where the training runs; meta-gradient: {gradient_path}" if gradient_path
                               else "Where the training runs")


class PlotsArea(QSplitter):
    """The four live views in a 2×2 grid of splitters: the history plots on top (the meta-loss
    with the gradient norm behind a tab, and the loss after each inner step), the held-out
    scores (plot, and a table behind a tab) and the task view with its 'New task' button below.
    Compared runs appear on all three score and loss views, each run in its own colour.

    A meta-RL run (:meth:`set_rl`) shows its meta-return and its return per inner step in the places of
    the losses, its held-out returns beside the baselines, and the 2-D navigation trajectories (a click
    places a goal: ``goal_placed``) or each held-out episode's return with a few frames of one episode
    (:class:`~maml_gui.window.episode_page.EpisodePage`) in the task view's place."""

    new_task = Signal()
    goal_placed = Signal(float, float)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self.loss = LossPlot()
        self.grad = GradNormPlot()
        self.steps = StepLossPlot()
        self.adaptation = AdaptationPlot()
        self.scores = ScoresTable()
        self.task = TaskPlot()   # FunctionPlot plus CSV tasks
        self.episode = EpisodeWidget()   # image runs: one episode's images and predicted labels
        self.meta_return = MetaReturnPlot()
        self.step_returns = StepReturnPlot()
        self.trajectories = TrajectoryView()
        self.trajectories.goal_placed.connect(self.goal_placed)
        self.episode_returns = EpisodeStrip()
        self.episode_page = EpisodePage(self.episode_returns)   # the strip over a few frames of one episode
        self._rl = False
        self.no_view = QLabel()
        self.no_view.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_view.setWordWrap(True)
        self.no_view.setStyleSheet("color: #666;")
        self.task_stack = QStackedWidget()   # one page shown: the plot, the episode, or why there is none
        for page in (self.task, self.episode, self.no_view, self.trajectories, self.episode_page):
            self.task_stack.addWidget(page)
        self.new_task_button = QPushButton("New task")
        self.new_task_button.setToolTip("Show another held-out task (not used in training).")
        self.new_task_button.clicked.connect(self.new_task)
        task_box = QWidget()
        box = QVBoxLayout(task_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(2)
        box.addWidget(self.task_stack, 1)
        row = QHBoxLayout()
        self.task_caption = QLabel()
        self.task_caption.setStyleSheet("color: #555;")
        self.task_caption.setWordWrap(True)   # a long caption wraps: it never widens the column over the held-out plot
        row.addWidget(self.task_caption, 1)
        row.addWidget(self.task.reset_button)
        row.addWidget(self.new_task_button)
        box.addLayout(row)
        self.score_tabs = QTabWidget()
        self.score_tabs.setDocumentMode(True)
        self.score_tabs.setTabPosition(QTabWidget.TabPosition.South)
        self.score_tabs.addTab(self.adaptation, "Plot")
        self.score_tabs.addTab(self.scores, "Compared runs")
        self.score_tabs.setTabToolTip(1, "Held-out scores of the runs ticked in the Runs list, as numbers")
        self.loss_tabs = QTabWidget()   # TensorBoard users look for the gradient norm beside the loss
        self.loss_tabs.setDocumentMode(True)
        self.loss_tabs.setTabPosition(QTabWidget.TabPosition.South)
        self.loss_tabs.addTab(self.loss, "Meta-loss")
        self.loss_tabs.addTab(self.grad, "Gradient norm")
        self.loss_tabs.setTabToolTip(1, "The norm of each meta-iteration's meta-gradient (metrics.csv's grad_norm)")
        for plot in self.all_history_plots():   # one x axis (iteration, relative, wall-clock or training time) for all
            plot.x_axis_changed.connect(self.set_x_axis)
        self.top = QSplitter(Qt.Orientation.Horizontal)
        self.bottom = QSplitter(Qt.Orientation.Horizontal)
        self.top.addWidget(self.loss_tabs)
        self.top.addWidget(self.steps)
        self.bottom.addWidget(self.score_tabs)
        self.bottom.addWidget(task_box)
        for splitter in (self.top, self.bottom):
            splitter.setChildrenCollapsible(False)
        self.addWidget(self.top)
        self.addWidget(self.bottom)
        self.setChildrenCollapsible(False)

    def history_plots(self) -> tuple:
        """The plots over meta-iterations shown: meta-loss (meta-return), gradient norm, loss (return)
        after each inner step."""
        if self._rl:
            return self.meta_return, self.grad, self.step_returns
        return self.loss, self.grad, self.steps

    def all_history_plots(self) -> tuple:
        return self.loss, self.grad, self.steps, self.meta_return, self.step_returns

    def set_rl(self, rl: bool) -> None:
        """Show the meta-RL plots (returns, higher is better) or the supervised ones (losses) in their places."""
        if rl == self._rl:
            return
        self._rl = rl
        old, new = (self.loss, self.meta_return) if rl else (self.meta_return, self.loss)
        current = self.loss_tabs.currentIndex()
        self.loss_tabs.removeTab(0)
        self.loss_tabs.insertTab(0, new, "Meta-return" if rl else "Meta-loss")
        self.loss_tabs.setCurrentIndex(current)
        old.hide()
        self.top.replaceWidget(1, self.step_returns if rl else self.steps).hide()
        (self.step_returns if rl else self.steps).show()
        for plot in self.history_plots():
            plot.refresh()

    def is_rl(self) -> bool:
        return self._rl

    def set_x_axis(self, mode: str) -> None:
        """"iteration", "relative", "wall" or "time" on the x axis of every history plot (``X_AXES``)."""
        for plot in self.all_history_plots():
            plot.set_x_axis(mode)

    def set_history(self, history, name: str = "", color: str | None = None) -> None:
        """The shown run's ``History`` on the history plots (None empties them)."""
        for plot in self.all_history_plots():
            plot.set_history(history, name, color)

    def refresh(self) -> None:
        """Redraw the history plots from the histories they hold (cheap; at most ~30 times a second)."""
        for plot in self.history_plots():
            plot.refresh()

    def show_adaptation(self, snapshot, color: str | None = None) -> None:
        """The shown run's held-out scores (an ``AdaptationSnapshot``; None clears them)."""
        if snapshot is None:
            self.adaptation.clear()
        else:
            self.adaptation.show_snapshot(snapshot, color)

    def set_overlays(self, overlays: Sequence[Overlay], current: Overlay | None = None) -> None:
        """Compared runs on the loss, per-step and adaptation plots (the ``current`` run is drawn
        there already), and every one of them in the scores table, the current run first."""
        overlays = [o for o in overlays if current is None or o.name != current.name]
        for view in (*self.history_plots(), self.adaptation):
            view.set_overlays(overlays)
        self.scores.set_runs(([current] if current is not None else []) + overlays)

    def show_comparison(self, runs, current=None) -> None:
        """:meth:`set_overlays` for ``RunRecord`` objects, each in its :func:`run_color`."""
        def overlay(r):
            return Overlay(r.name, run_color(r.run_id), r.history, r.adaptation)
        self.set_overlays([overlay(r) for r in runs if r is not current],
                          overlay(current) if current is not None else None)

    def set_loss_label(self, classification: bool, rl: bool = False) -> None:
        """The history plots say which loss they show: MSE, or cross-entropy for classification; a
        meta-RL run's plots show returns instead (:meth:`set_rl`)."""
        loss = "cross-entropy" if classification else "MSE"
        self.loss.set_y_label(f"query loss ({loss})")
        self.steps.set_y_label(f"query loss ({loss}, smoothed)")
        self.set_rl(rl)
        self.adaptation.set_metric("return" if rl else "accuracy" if classification else "mse")   # before any score

    def show_preview(self, preview, source: str | None = None) -> None:
        """Draw a ``core.trained.loaded_model.Preview``: the function view, decision regions for 2-D
        classification, a CSV task's rows or an image episode; with no view, why not.
        ``source`` says whose weights they are when not "iteration N" of a run."""
        view = preview.view
        if view is None:
            note = getattr(preview, "note", "") or "no task view for this family"
            self.show_note(note[:1].upper() + note[1:])
            return
        extra = ""
        if isinstance(view, (TrajectoryFigure, EpisodeReturns)):
            self._show_rl_view(preview, source)
            return
        self.task_stack.setCurrentWidget(self.episode if isinstance(view, EpisodeView) else self.task)
        if isinstance(view, EpisodeView):
            self.episode.show_episode(view)
            extra = f" · query accuracy {view.accuracy[0]:.0%} → {view.accuracy[-1]:.0%} after {view.steps} steps"
        elif isinstance(view, RegionsView):
            self.task.show_regions(view.grid_x, view.grid_y, view.labels, view.points_x, view.points_y, view.point_labels)
            extra = f" · query accuracy {view.accuracy:.0%} after {view.steps} step{'s' * (view.steps != 1)}"
        elif isinstance(view, DataView):
            self.task.show_data(view)
            extra = f" · MSE on its other rows {view.mse[0]:.3g} → {view.mse[1]:.3g}"
        else:
            self.task.show_function(view)
        self.task_caption.setText(f"task #{preview.task_index + 1} · {source or f'iteration {preview.iteration:,}'}{extra}")

    def _show_rl_view(self, preview, source: str | None) -> None:
        """The navigation figure of one goal (revealed step by step for a placed goal), or each episode's return."""
        view = preview.view
        whose = source or f"iteration {preview.iteration:,}"
        if isinstance(view, TrajectoryFigure):
            self.task_stack.setCurrentWidget(self.trajectories)
            shown = self.trajectories.figure()   # a newly placed goal is revealed step by step, once
            again = shown is not None and shown.placed and np.array_equal(shown.goal, view.goal)
            self.trajectories.show_figure(view, reveal=view.placed and not again)
            task = "your goal" if view.placed else f"held-out goal #{preview.task_index + 1}"
            self.task_caption.setText(f"{task} · {whose} · {figure_caption(view)} · click to place a goal")
        else:
            self.task_stack.setCurrentWidget(self.episode_page)
            task = f"held-out task #{preview.task_index + 1}" + (f" ({view.task})" if view.task else "")
            self.episode_page.show_returns(view, f"frames · {task} · {whose}")
            self.task_caption.setText(f"{task} · {whose}")

    def show_note(self, text: str) -> None:
        """No task to draw: say why in the task view's place (and clear the caption)."""
        self.no_view.setText(text)
        self.task_stack.setCurrentWidget(self.no_view)
        self.task_caption.setText("")

    def task_page(self) -> str:
        """Which task view is shown: "plot", "episode" or "note"."""
        return {0: "plot", 1: "episode", 2: "note", 3: "trajectories", 4: "episode returns"}[self.task_stack.currentIndex()]

    def plot_item(self, key: str):
        """The pyqtgraph PlotItem behind a view, for image/SVG export."""
        loss, _, steps = self.history_plots()
        task = {self.trajectories: self.trajectories, self.episode_page: self.episode_returns}.get(
            self.task_stack.currentWidget(), self.task)
        widget = {"loss": loss, "grad": self.grad, "steps": steps, "adaptation": self.adaptation, "task": task}[key]
        return widget.plot.getPlotItem()
