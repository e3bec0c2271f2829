"""Adapt the learned initialisation to one new task and watch it happen, step by step.

The task comes from one of four places: a held-out task of the family ("New task" draws
another), the labeled rows of a CSV file (target and inputs chosen by name; K of them drawn at
random with the seed shown, as ``maml-gui adapt --seed`` draws them, adapt the network and the
other rows, drawn as crosses, score it), points clicked on the plot (1-D regression), or, for an
image run, a folder of labelled images (one folder per class, at most the run's N; K images of
each drawn the same way adapt it, the others score it, shown as an episode, the folder read on
the job thread, as ``maml-gui adapt --images`` reads it). Adapting runs on a job thread
(:mod:`maml_gui.jobs.job_runner`) through :func:`maml_gui.adapt.task.run_adaptation`, which gets
its losses and curves from :class:`core.trained.loaded_model.LoadedModel` (the numbers of
:func:`core.trained.loaded_model.adapt_weights`); the view draws the prediction after each step and the loss
per step, and hands the adapted weights to the export dialog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QPushButton,
                               QSpinBox, QSplitter, QVBoxLayout, QWidget)

from core.trained.adapt import MAX_STEPS
from core.config import ExperimentConfig
from core.errors import MamlError
from core.trained.loaded_model import adaptation_steps
from core.trained.task_views import EpisodeView, RegionsView

from maml_gui.adapt.pages import CsvRowsPage, ImageFolderPage
from maml_gui.adapt.task import AdaptOutcome, AdaptRequest, can_click, run_adaptation
from maml_gui.jobs.job_runner import JobRunner
from maml_gui.session.session import WeightsSource
from maml_gui.widgets.adapt_plot import AdaptPlot
from maml_gui.widgets.episode_view import EpisodeWidget
from maml_gui.adapt.step_loss_view import StepLossView

SOURCE_TITLES = {"held_out": "A held-out task of the family", "csv": "Labeled rows of a CSV file",
                 "points": "Points clicked on the plot", "images": "A folder of labelled images"}
SOURCE_HINTS = {"held_out": "", "points": "Click on the plot to add support points.",
                "csv": "Choose a CSV file with a few labeled rows: K of them, drawn at random, adapt the network; "
                       "the other rows score it.",
                "images": "Choose a folder with one folder of images per class (at most the run's N classes): "
                          "K images of each, drawn at random, adapt the network; the others score it."}


class AdaptView(QWidget):
    """Choose a task, K and the number of steps; adapt; see the prediction and the loss per step.

    ``source()`` gives the weights to adapt (None when there are none yet); ``export(source)``
    opens the export dialog for the adapted weights. Every change re-adapts on the job thread.
    """

    adapted = Signal(object)    # AdaptOutcome
    failed = Signal(str)

    def __init__(self, source: Callable[[], WeightsSource | None],
                 export: Callable[[WeightsSource], Any] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self._source, self._export = source, export
        self._runner = JobRunner(self, "maml-adapt")
        self._runner.done.connect(self._on_done)
        self._runner.failed.connect(self._on_failed)
        self._runner.busy_changed.connect(self._on_busy)
        self._request_id = 0
        self._outcome: AdaptOutcome | None = None
        self._weights: WeightsSource | None = None
        self._defaults_for: ExperimentConfig | None = None
        self._points: list[tuple[float, float]] = []
        self._task_index = 0
        self._user_shots = 10   # K as chosen for held-out / CSV tasks (points mode shows the point count)
        self._build()
        self.refresh()

    # -- layout ---------------------------------------------------------------------------------
    def _build(self) -> None:
        self.weights_label = QLabel()
        self.weights_label.setWordWrap(True)
        self.weights_label.setStyleSheet("color: #555;")
        self.source = QComboBox()
        for key, title in SOURCE_TITLES.items():
            self.source.addItem(title, key)
        self.source.setToolTip("Where the new task comes from")
        # one page per source, only the current one shown (a stacked widget would keep the
        # tallest page's height and push the plots down)
        self.csv_page, self.images_page = CsvRowsPage(self.choose_csv), ImageFolderPage(self.choose_image_folder)
        for page in (self.csv_page, self.images_page):
            page.changed.connect(lambda: self.adapt(quiet=True))
        self.pages = {"held_out": self._held_out_page(), "csv": self.csv_page, "points": self._points_page(),
                      "images": self.images_page}
        pages = QVBoxLayout()
        pages.setContentsMargins(0, 0, 0, 0)
        for page in self.pages.values():
            pages.addWidget(page)
        self.shots = QSpinBox()
        self.shots.setRange(1, 10_000)
        self.shots.setToolTip("K: labeled examples the network adapts on (the support set)")
        self.steps = QSpinBox()
        self.steps.setRange(0, MAX_STEPS)
        self.steps.setToolTip("Gradient steps on the support set")
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(4)
        self.lr.setRange(0.0, 100.0)
        self.lr.setSingleStep(0.001)
        self.lr.setSpecialValueText("the run's rates")
        self.lr.setToolTip("Inner learning rate; at 0 the run's own rates (learned ones for Meta-SGD and MAML++)")
        form = QFormLayout()
        form.addRow("Task", self.source)
        form.addRow(pages)
        settings = QHBoxLayout()
        for label, widget in (("K", self.shots), ("steps", self.steps), ("inner lr", self.lr)):
            settings.addWidget(QLabel(label))
            settings.addWidget(widget, 1)
        form.addRow(settings)
        self.adapt_button = QPushButton("Adapt")
        self.adapt_button.setToolTip("Adapt the weights to this task (changes re-adapt by themselves)")
        self.export_button = QPushButton("Export adapted weights…")
        self.export_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.adapt_button)
        buttons.addStretch(1)
        buttons.addWidget(self.export_button)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.function_plot = AdaptPlot()
        self.function_plot.setMinimumHeight(240)
        self.losses = StepLossView()
        self.losses.setMinimumHeight(170)
        self.episode = EpisodeWidget()   # image tasks: the episode and the labels predicted after each step
        self.episode.setMinimumHeight(240)
        self.episode.hide()
        plots = QSplitter(Qt.Orientation.Vertical)
        plots.addWidget(self.function_plot)
        plots.addWidget(self.episode)
        plots.addWidget(self.losses)
        plots.setStretchFactor(0, 3)
        plots.setStretchFactor(1, 2)
        plots.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.addWidget(self.weights_label)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        layout.addWidget(plots, 1)

        self.source.currentIndexChanged.connect(self._on_source)
        for box in (self.shots, self.steps):
            box.valueChanged.connect(lambda _v: self.adapt(quiet=True))
        self.lr.valueChanged.connect(lambda _v: self.adapt(quiet=True))
        self.adapt_button.clicked.connect(lambda: self.adapt())
        self.export_button.clicked.connect(self.export_adapted)
        self.function_plot.point_added.connect(self.add_point)
        self.function_plot.point_removed.connect(self.remove_point_near)

    def _held_out_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        self.task_label = QLabel()
        self.new_task_button = QPushButton("New task")
        self.new_task_button.setToolTip("Draw another task the run never trained on")
        self.new_task_button.clicked.connect(self.new_task)
        row.addWidget(self.task_label, 1)
        row.addWidget(self.new_task_button)
        return page

    def _points_page(self) -> QWidget:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        hint = QLabel("Click the plot to add a support point; right-click removes the nearest one.")
        hint.setWordWrap(True)
        self.clear_button = QPushButton("Clear")
        self.clear_button.setToolTip("Remove every clicked point")
        self.clear_button.clicked.connect(self.clear_points)
        row.addWidget(hint, 1)
        row.addWidget(self.clear_button)
        return page

    # -- public API (tests drive these) -----------------------------------------------------------
    def refresh(self) -> WeightsSource | None:
        """Re-read the window's current weights; new settings bring their defaults for K and steps."""
        source = self._weights = self._source()
        if source is None:
            self.weights_label.setText("No weights yet: start a run or open weights (File → Open weights/run…).")
            self.adapt_button.setEnabled(False)
            return None
        if source.config.is_rl:   # a policy adapts on its own trajectories, not on a support set
            self.weights_label.setText(f"{source.label} is a meta-RL policy: it adapts in the task view (click the "
                                       "trajectory view to place a goal); maml-gui adapt RUN --goal X,Y writes the "
                                       "adapted policy.")
            self.adapt_button.setEnabled(False)
            return None
        self.weights_label.setText(f"Adapting the weights of {source.label}")
        self.adapt_button.setEnabled(True)
        if source.config != self._defaults_for:
            self._defaults_for = source.config
            self._user_shots = source.config.train.shots
            if self.shots.isEnabled():
                self._set_quietly(self.shots, self._user_shots)
            self._set_quietly(self.steps, adaptation_steps(source.config))
        clickable = can_click(source.family)
        item = self.source.model().item(self.source.findData("points"))
        item.setEnabled(clickable)
        item.setToolTip("" if clickable else "Only for 1-D regression (one input, one output)")
        images = getattr(source.family, "input_shape", None) is not None
        rows = self.source.model().item(self.source.findData("csv"))
        rows.setEnabled(not images)
        rows.setToolTip("Not for image families: the network takes images, not the columns of a table"
                        if images else "")
        folders = self.source.model().item(self.source.findData("images"))
        folders.setEnabled(images)
        folders.setToolTip("" if images else "Only for runs trained on images (conv-4): the network takes images")
        kind = self.source_kind()
        if (not clickable and kind == "points") or (images and kind == "csv") or (not images and kind == "images"):
            self.set_source_kind("held_out")
        self._update_page()
        return source

    def source_kind(self) -> str:
        return self.source.currentData()

    def set_source_kind(self, kind: str) -> None:
        self.source.setCurrentIndex(self.source.findData(kind))

    def new_task(self) -> None:
        self._task_index += 1
        self._update_page()
        self.adapt()

    def add_point(self, x: float, y: float) -> None:
        self._points.append((float(x), float(y)))
        self._points_changed()

    def remove_point_near(self, x: float, y: float) -> bool:
        """Remove the clicked point nearest to (x, y) in screen terms; False if there is none."""
        if not self._points:
            return False
        xy = np.asarray(self._points)
        (x0, x1), (y0, y1) = self.function_plot.plot.getPlotItem().vb.viewRange()
        scale = np.array([max(x1 - x0, 1e-9), max(y1 - y0, 1e-9)])
        del self._points[int(np.argmin((((xy - (x, y)) / scale) ** 2).sum(1)))]
        self._points_changed()
        return True

    def clear_points(self) -> None:
        self._points.clear()
        self._points_changed()

    def points(self) -> list[tuple[float, float]]:
        return list(self._points)

    def new_draw(self) -> None:
        """Other K support rows of the CSV file (images of the folder): the next seed (re-adapts)."""
        (self.images_page if self.source_kind() == "images" else self.csv_page).new_draw()

    def choose_image_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "A task as a folder of labelled images (one folder per class)")
        if path:
            self.set_image_folder(path)

    def set_image_folder(self, path) -> bool:
        """Adapt to the images under ``path`` (one folder per class), read on the job thread; a
        problem with the folder comes back as a message (and :attr:`failed`). False without weights."""
        source = self.refresh()
        if source is None:
            return False
        if getattr(source.family, "input_shape", None) is None:
            self._say(f"A folder of images adapts a run trained on images; {source.label} was not "
                      "(its network takes no images).", error=True)
            return False
        if str(path) != self.images_page.path.text():
            self.clear_result()   # another folder: the last one's episode must not stand for it
        self.images_page.path.setText(str(path))
        if self.source_kind() != "images":
            self.set_source_kind("images")   # shows the page and adapts
            return True
        return self.adapt()

    def choose_csv(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "A task as CSV", "", "CSV files (*.csv *.tsv *.txt);;All files (*)")
        if path:
            self.set_csv(path)

    def set_csv(self, path, target: str | None = None, features=None) -> bool:
        """Read the file's column names and pick a target and inputs (the family's, where they exist)."""
        from core.data.csv_reader import read_csv

        try:
            table = read_csv(path)
        except MamlError as exc:
            self._say(str(exc), error=True)
            return False
        family = self._weights.family if self._weights is not None else None
        known_target, known_features = (family.target, family.features) if family is not None else (None, None)
        target = target or (known_target if known_target in table.columns else table.columns[-1])
        wanted = features or known_features or [c for c in table.columns if c != target and table.is_numeric(c)]
        self.csv_page.load(path, table.columns, target, wanted)
        self.set_source_kind("csv")
        self.adapt()
        return True

    def adapt(self, quiet: bool = False) -> bool:
        """Start adapting with the settings shown (the previous request, if still waiting, is dropped).
        ``quiet``: an automatic re-run, which says nothing when the task is not complete yet."""
        source = self.refresh()
        if source is None:
            return False
        kind = self.source_kind()
        if kind == "points" and not self._points:
            if not quiet:
                self._say(SOURCE_HINTS["points"])
            return False
        csv, folder = self.csv_page, self.images_page
        if kind == "csv" and not csv.path.text():
            if not quiet:
                self._say(SOURCE_HINTS["csv"])
            return False
        if kind == "images" and not folder.path.text():
            if not quiet:
                self._say(SOURCE_HINTS["images"])
            return False
        request = AdaptRequest(source.config, source.weights, source.family, self.steps.value(),
                               self.lr.value() or None, kind, self._task_index, self.shots.value(),
                               tuple(self._points), csv.path.text() or None, csv.target.currentText() or None,
                               tuple(csv.checked_features()) or None, self._click_range(source),
                               (folder if kind == "images" else csv).seed.value(), folder.path.text() or None)
        self._request_id += 1
        self._runner.submit(self._request_id, lambda: run_adaptation(request))
        return True

    def result(self) -> AdaptOutcome | None:
        """The adaptation on display."""
        return self._outcome

    def export_adapted(self) -> None:
        outcome = self._outcome
        if outcome is None or self._export is None:
            return
        request = outcome.request
        label = f"{self._weights.label if self._weights else 'the weights'}, adapted to {outcome.task.title} " \
                f"({outcome.steps} step{'s' * (outcome.steps != 1)})"
        self._export(WeightsSource(request.config, outcome.result.weights, request.family, label))

    def is_busy(self) -> bool:
        return self._runner.is_busy()

    def shutdown(self, timeout_ms: int = 30_000) -> bool:
        return self._runner.shutdown(timeout_ms)

    # -- events -----------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        self.refresh()
        super().showEvent(event)

    def clear_result(self) -> None:
        """Forget the adaptation on display (its weights are not the current ones any more)."""
        self._request_id += 1   # a result still on its way is dropped too
        self._outcome = None
        self.export_button.setEnabled(False)
        self.losses.clear()
        self.function_plot.clear_view()
        self.episode.clear()
        self.csv_page.info.setText("")
        self.images_page.info.setText("")
        self._say("")

    def _on_source(self) -> None:
        self.clear_result()
        self._update_page()
        self._say(SOURCE_HINTS[self.source_kind()])
        self.adapt(quiet=True)

    def _update_page(self) -> None:
        kind = self.source_kind()
        for key, page in self.pages.items():
            page.setVisible(key == kind)
        if (kind == "points") == self.shots.isEnabled():   # K is the number of clicked points there
            if kind == "points":
                self._user_shots = self.shots.value()
            self._set_quietly(self.shots, len(self._points) if kind == "points" else self._user_shots)
        self.shots.setEnabled(kind != "points")
        self.task_label.setText(f"task #{self._task_index + 1} (never used in training)")
        source = self._weights
        self.function_plot.set_clicking(kind == "points", self._click_range(source) if source else None)
        if kind == "points":
            self.function_plot.show_clicks(self._points)

    def _click_range(self, source: WeightsSource | None) -> tuple[float, float] | None:
        family = source.family if source is not None else None
        if family is None or not can_click(family):
            return None
        return family.x_range or (-3.0, 3.0)   # no range of its own: standardized inputs (CSV families)

    def _set_quietly(self, box: QSpinBox, value: int) -> None:
        box.blockSignals(True)
        box.setValue(value)
        box.blockSignals(False)

    def _points_changed(self) -> None:
        self.function_plot.show_clicks(self._points)
        if self.source_kind() == "points":
            self._set_quietly(self.shots, max(len(self._points), 1))
        if self.source_kind() != "points":
            self.set_source_kind("points")   # shows the page and re-adapts
            return
        if self._points:
            self.adapt()
        else:
            self._request_id += 1
            self._runner.cancel()
            self._outcome = None
            self.export_button.setEnabled(False)
            self.losses.clear()
            self.function_plot.clear_view()
            self._say(SOURCE_HINTS["points"])

    def _on_busy(self, busy: bool) -> None:
        if busy:
            self._say("Adapting…")

    def _on_done(self, tag, outcome: AdaptOutcome) -> None:
        if tag != self._request_id:
            return
        self._outcome = outcome
        self.export_button.setEnabled(self._export is not None)
        self._draw(outcome)
        self.adapted.emit(outcome)

    def _on_failed(self, tag, message: str) -> None:
        if tag != self._request_id:
            return
        self._say(message, error=True)
        self.failed.emit(message)

    def _draw(self, outcome: AdaptOutcome) -> None:
        family, r = outcome.request.family, outcome.result
        classify = family.kind == "classification"
        view, task = outcome.view, outcome.task
        rows = outcome.request.source == "csv" and task.query_x is not None   # held-back rows to draw
        folder = Path(outcome.request.image_folder).name if outcome.request.source == "images" else None
        episode = isinstance(view, EpisodeView)
        images = episode or getattr(family, "input_shape", None) is not None
        self.episode.setVisible(images)
        self.function_plot.setVisible(not images)
        if episode:
            shots = len(task.support_x) // max(view.n_way, 1)
            self.episode.show_episode(view, f"{view.n_way}-way {shots}-shot: {folder or task.title}")
            if folder is not None:
                self.episode.title.setToolTip(f"The images of {outcome.request.image_folder}, one row per class folder")
        elif images:
            self.episode.clear()   # every image is in the support set: nothing to score or show
        elif isinstance(view, RegionsView):
            query = (task.query_x[:, 0], task.query_x[:, 1], task.query_y) if rows else None
            self.function_plot.show_regions(view.grid_x, view.grid_y, view.labels, view.points_x, view.points_y,
                                            view.point_labels, query=query)
        elif view is not None:
            query = (task.query_x[:, 0], task.query_y[:, 0]) if rows else None
            self.function_plot.show_function(view, keep_range=outcome.request.source == "points", query=query)
        else:
            self.function_plot.clear_view()
        self.csv_page.show_outcome(outcome)
        self.images_page.show_outcome(outcome)
        self.losses.show_result(outcome, "cross-entropy" if classify else "MSE")
        n, k = outcome.steps, len(outcome.task.support_x)
        # K as the K box means it: per class in an episode, with the number of support images beside it
        shots = f"K = {k // max(view.n_way, 1)} per class ({k} support images)" if episode else f"K = {k}"
        text = f"{folder or outcome.task.title}, {shots}: support loss {r.support_losses[0]:.4g} → " \
               f"{r.support_losses[-1]:.4g}"
        if r.query_losses is not None:
            text += f"; query loss {r.query_losses[0]:.4g} → {r.query_losses[-1]:.4g}"
        if r.query_accuracy is not None:
            text += f", accuracy {r.query_accuracy[0]:.0%} → {r.query_accuracy[-1]:.0%}"
        text += f" after {n} step{'s' * (n != 1)}."
        if view is None and images:
            text += " Every image is in the support set: none is left to score the adaptation (lower K)."
        elif view is None:
            text += (f" (No task view for {family.input_dim}-dimensional rows.)" if classify
                     else " (No function view: the network takes more than one input.)")
        self._say(text)

    def _say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #b00020;" if error else "color: #333;")
        self.message.setText(text)
