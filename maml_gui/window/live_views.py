"""The plots, the run list and the status bar, kept in step with the session.

Subscribes to :class:`~maml_gui.session.session.Session` and renders it: the current run's history,
held-out scores and task view; the runs ticked for comparison on every plot; one row per run.
It never changes the session except through its actions (selecting a row makes that run
current, ticking compares it), so every view shows the same run.

Redraws are paced: repainting competes with the training thread for the GIL, so the history
plots take new rows a few times a second (stretched by the :class:`~maml_gui.window.pacing.Pacer` when
the GUI thread uses more than its CPU budget) and rows in the run list once a second.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer

from core.errors import MamlError

from maml_gui.widgets.field_names import readable
from maml_gui.session.overlays import (Band, Overlay, band_label, band_tip, group_by_config, run_color, run_colors,
                                       run_kind)
from maml_gui.window.pacing import Pacer
from maml_gui.window.panels import PlotsArea, StatusReadout
from maml_gui.session.runs import hyperparameters, unused_settings
from maml_gui.session.session import Session
from maml_gui.widgets.run_list import RunList

PLOT_INTERVAL_MS = 250    # the history plots take new rows at most this often (stretched by the pacer)
STATUS_INTERVAL = 0.25    # s between status-bar refreshes
ROW_INTERVAL = 1.0        # s between updates of the training run's row
OVERLAY_INTERVAL = 2.0    # s between redraws of a compared run that is still training
INSPECT_STRETCH = 2.5     # the worker's snapshots slow down at most this much under the pacer


class LiveViews(QObject):
    def __init__(self, session: Session, plots: PlotsArea, run_list: RunList, status: StatusReadout,
                 current_label, parent: QObject | None = None):
        super().__init__(parent)
        self.session, self.plots, self.run_list, self.status = session, plots, run_list, status
        self.current_label = current_label
        self.pacer = Pacer()
        self._last_status = self._last_row = self._last_overlay = 0.0
        self._colors: dict[int, str] = {}   # run id -> its colour on every plot and in the run list
        self._plot_timer = QTimer(self, singleShot=True, interval=PLOT_INTERVAL_MS)
        self._plot_timer.timeout.connect(self.flush_plots)
        self._preview_timer = QTimer(self, singleShot=True, interval=300)
        self._preview_timer.timeout.connect(self.refresh_idle_preview)
        s = session
        s.project_changed.connect(lambda _p: self._clear_rows())
        s.run_added.connect(self._on_run_added)
        s.run_removed.connect(self._on_run_removed)
        s.run_changed.connect(self._on_run_changed)
        s.current_changed.connect(self._on_current_changed)
        s.compared_changed.connect(self._on_compared_changed)
        s.history_grew.connect(self._on_history_grew)
        s.adaptation_changed.connect(self._on_adaptation_changed)
        s.preview_changed.connect(self.plots.show_preview)
        s.family_changed.connect(self._on_family_changed)
        s.editing_changed.connect(self._on_editing_changed)
        s.training_changed.connect(self._on_training_changed)
        s.started.connect(lambda info: self.status.set_device(info.device, info.gradient_path))
        run_list.overlay_changed.connect(s.set_compared)
        run_list.renamed.connect(s.rename)
        run_list.noted.connect(s.set_note)
        run_list.deleted.connect(s.delete)
        run_list.selected.connect(s.set_current)
        plots.new_task.connect(self.next_task)
        plots.goal_placed.connect(self.place_goal)
        self._training = self._was_paused = False
        self._shown_name: str | None = None   # the current run's name in the plots' legends
        self._label_current(None)

    # -- the run list -------------------------------------------------------------------------
    def _clear_rows(self) -> None:
        for run_id in self.run_list.run_ids():
            self.run_list.remove_run(run_id, notify=False)

    def _on_run_added(self, run) -> None:
        self.run_list.add_run(run.run_id, run.name, run.config.algorithm.name, self._color(run),
                              hyper=hyperparameters(run.config), note=run.note, rl=run.config.is_rl,
                              unused=unused_settings(run.config))
        self._update_row(run)
        self._recolor()

    def _update_row(self, run) -> None:
        self.run_list.update_run(run.run_id, run.iteration, run.final_loss, run.held_out, run.status)

    def _color(self, run) -> str:
        """The colour ``run`` is drawn in everywhere (a sweep's seeds: their configuration's)."""
        return self._colors.get(run.run_id) or run_color(run.run_id)

    def _recolor(self, gone=None) -> None:
        """Work out every run's colour again and paint the swatches that changed: only a run added or
        removed changes them (the seeds of a sweep share their first seed's colour)."""
        runs = [r for r in self.session.runs if r.run_id != gone]
        self._colors = run_colors(runs, self.session.follower.folder_of)
        for run_id in self.run_list.run_ids():
            color = self._colors.get(run_id)
            if color is not None and self.run_list.color(run_id) != color:
                self.run_list.set_color(run_id, color)

    def _on_run_removed(self, run_id) -> None:
        if run_id in self.run_list.run_ids():
            self.run_list.remove_run(run_id, notify=False)
        self._recolor(gone=run_id)

    def _on_run_changed(self, run) -> None:
        if run.run_id in self.run_list.run_ids():
            self.run_list.rename_run(run.run_id, run.name)
            if run.note != self.run_list.note(run.run_id):
                self.run_list.set_note(run.run_id, run.note)
            self._update_row(run)
        renamed = run.name != self._shown_name
        if run is self.session.current:
            self._show_status(run)
            self._label_current(run)
            if renamed:   # its legend entries and its row in the compare table take the new name
                self._shown_name = run.name
                self.plots.set_history(run.history, run.name, self._color(run))
        if run.run_id in self.session.compared or (renamed and run is self.session.current):
            self._draw_overlays()

    # -- the current run ------------------------------------------------------------------------
    def _on_current_changed(self, run) -> None:
        """Every view shows ``run`` now, or is cleared; nothing keeps another run's numbers."""
        self._plot_timer.stop()
        self.run_list.select_run(run.run_id if run is not None else None)
        self._label_current(run)
        self.plots.set_loss_label(self.session.is_classification(run), self._is_rl(run))
        self._shown_name = run.name if run is not None else None
        if run is None:
            self.plots.set_history(None)
        else:   # in the run's own colour, the one it has in the run list and when compared
            self.plots.set_history(run.history, run.name, self._color(run))
        self.plots.adaptation.clear()
        if run is not None and run.adaptation is not None:
            self._draw_adaptation(run)
        self.status.clear(run.device if run is not None else "")
        if run is not None:
            self._show_status(run)
        self._draw_overlays()
        if run is None or run is not self.session.active:
            self._preview_timer.start()

    def _label_current(self, run) -> None:
        if run is None:
            self.current_label.setText("no run selected")
            self.current_label.setToolTip("Start a run, open weights, or select a run in the Runs list")
        else:
            self.current_label.setText(f"current: {run.name}")
            self.current_label.setToolTip(f"Export, Adapt and the plots act on {run.name} ({run.status})")

    def _show_status(self, run) -> None:
        state = "running" if run is self.session.active and self._training and not self.session.training.is_paused() \
            else self.session.follower.describe(run.run_id) or run.status
        self.status.show(run.iteration, run.total or run.config.train.iterations, run.rate, state)

    def _on_editing_changed(self) -> None:
        """With no run selected the task view shows a fresh network on the settings being edited:
        K, N or the network changed, so does the view ("10-shot" never outlives K = 1; the MLP chosen
        after a Conv-4 on non-image data can be drawn)."""
        if self.session.current is None and not self.session.is_training():
            self._preview_timer.start()

    def _on_family_changed(self) -> None:
        if self.session.current is None:
            self.plots.set_loss_label(self.session.is_classification(None), self._is_rl(None))
            self._preview_timer.start()
            self._draw_overlays()   # compared runs of the other kind leave the new axes

    # -- live training ------------------------------------------------------------------------
    def _on_history_grew(self, run) -> None:
        if run is self.session.current and not self._plot_timer.isActive():
            self._plot_timer.start()
        now = time.perf_counter()
        if now - self._last_status >= STATUS_INTERVAL:
            self._last_status = now
            if self.session.is_training() and not self.session.training.is_paused():
                self._pace(self.pacer.sample())
            if run is self.session.current:
                self._show_status(run)
        if now - self._last_row >= ROW_INTERVAL:
            self._last_row = now
            self._update_row(run)
        if run.run_id in self.session.compared and now - self._last_overlay >= OVERLAY_INTERVAL:
            self._draw_overlays()

    def flush_plots(self) -> None:
        """Redraw the history plots from the current run's history (one store, read in place)."""
        self._plot_timer.stop()
        self.plots.refresh()

    def plot_interval(self) -> int:
        """Milliseconds between history redraws now (the pacer stretches it under load)."""
        return self._plot_timer.interval()

    def _pace(self, scale: float) -> None:
        interval = int(PLOT_INTERVAL_MS * scale)
        if interval != self._plot_timer.interval():
            self._plot_timer.setInterval(interval)
            controller = self.session.controller
            controller.set_inspect_interval(controller.options.inspect_interval * min(scale, INSPECT_STRETCH))

    def _on_training_changed(self) -> None:
        training = self.session.is_training()
        paused = self.session.training.is_paused()
        if training and not paused:
            if not self._training or self._was_paused:
                self.pacer.restart()
        else:
            self.flush_plots()
            self.pacer.relax()
            self._pace(1.0)
        self._training, self._was_paused = training, paused
        run = self.session.current
        if run is not None:
            self._show_status(run)
            self._update_row(run)
        if not training:
            self._draw_overlays()
            if run is None or run is not self.session.active:
                self._preview_timer.start()

    # -- held-out scores and comparison ---------------------------------------------------------
    def _on_adaptation_changed(self, run) -> None:
        if run.run_id in self.run_list.run_ids():
            self._update_row(run)   # its held-out score
        if run is self.session.current:
            self._draw_adaptation(run)
            if self.session.is_followed(run):   # new weights from its writer: the task view follows too
                self._preview_timer.start()
        if run.run_id in self.session.compared:
            self._draw_overlays()

    def _draw_adaptation(self, run) -> None:
        own = f"{run.config.algorithm.name} (this run)" if run.config.algorithm.name == "pretrain" else None
        self.plots.adaptation.show_snapshot(run.adaptation, self._color(run), own)

    def _on_compared_changed(self, ids) -> None:
        for run_id in self.run_list.run_ids():
            if (run_id in ids) != (run_id in self.run_list.checked()):
                self.run_list.set_checked(run_id, run_id in ids)
        self._draw_overlays()

    def _draw_overlays(self) -> None:
        """Compared runs on every plot, the seeds of a followed sweep's configuration as one band
        (the current run counts among its seeds); every run in the scores table.

        Only runs of the current run's kind (else the edited family's) are drawn: a regression's MSE
        and a classifier's cross-entropy or accuracy on one axis would squash one or the other. The
        scores table lists the rest and says they are not plotted."""
        self._last_overlay = time.perf_counter()
        session = self.session
        compared, current = session.compared_runs(), session.current
        kind = run_kind(current.config, current.adaptation) if current is not None else run_kind(session.editing)
        runs = [r for r in compared if run_kind(r.config, r.adaptation) == kind]
        apart = [r for r in compared if r not in runs and r is not current]
        colors = {r.run_id: self._color(r) for r in session.runs}
        members = runs + ([current] if current is not None and current not in runs else [])
        groups, singles = group_by_config(members, session.follower.folder_of)
        bands = [Band(band_label(label, len(group)), colors[group[0].run_id],
                      tuple(r.history for r in group), tuple(r.adaptation for r in group), band_tip(label, len(group)))
                 for label, group in groups]
        p = self.plots
        overlays = [Overlay(r.name, colors[r.run_id], r.history, r.adaptation) for r in singles if r is not current]
        for view in (*p.history_plots(), p.adaptation):
            view.set_overlays(overlays)
            view.set_bands(bands)
        shown = ([current] if current is not None else []) + [r for r in compared if r is not current]
        p.scores.set_runs([Overlay(r.name, colors[r.run_id], r.history, r.adaptation) for r in shown],
                          apart=[r.name for r in apart], plotted=kind)
        p.score_tabs.setTabText(1, f"Compared runs ({len(apart)} not plotted)" if apart else "Compared runs")

    # -- the task view ----------------------------------------------------------------------------
    def next_task(self) -> None:
        if not self.session.next_task():
            self.refresh_idle_preview()

    def place_goal(self, x: float, y: float) -> None:
        """Meta-RL: the policy adapts to a goal placed in the trajectory view (the training worker does it
        while the run trains, else it is done here: a few rollouts of a small policy)."""
        if not self.session.place_task((x, y)):
            self.refresh_idle_preview()

    def _is_rl(self, run) -> bool:
        return (run.config if run is not None else self.session.editing).is_rl

    def refresh_idle_preview(self) -> None:
        """Without a worker for the current run, draw its task view here (or a fresh network's)."""
        session = self.session
        if session.is_training() and session.current is session.active:
            return
        try:
            preview = session.idle_preview()
        except (MamlError, RuntimeError) as exc:
            self.plots.task.clear()
            self.plots.show_note(f"No task view: {readable(str(exc), session.editing.family.name)}")
            return
        run = session.current
        if run is None:
            source = "a fresh network (no run selected)"
        elif run.origin == "opened" and not run.weights_iteration:
            source = f"the weights of {run.name}"   # a weights file does not say how long it trained
        elif session.is_followed(run) and not run.weights:
            source = "an untrained network: its writer has saved no weights yet"
        elif session.is_followed(run) and run.weights_iteration < run.iteration:
            source = f"iteration {run.weights_iteration:,}: its last checkpoint (it has trained further since)"
        else:
            source = None
        self.plots.show_preview(preview, source)
