"""What the CSV and the image-folder imports share: one dialog at a time, and applying what it
chose only when the window may switch data (a training run stops first, if the user agrees)."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHBoxLayout, QLabel, QWidget

from maml_gui.jobs.job_runner import JobRunner

ERROR_STYLE = "color: #b3261e;"


class ImportHost:
    def __init__(self, window):
        self.window = window
        self.dialog = None

    def _open(self, make):
        """Replace any open dialog by ``make(shots=, query=, parent=)`` (starting from the window's shots
        and query), shown window-modal without blocking: its OK applies the family (``_on_accepted``)."""
        if self.dialog is not None:
            self.dialog.reject()
        train = self.window.hyper_panel.train_spec()
        dialog = make(shots=train.shots, query=train.query, parent=self.window)
        dialog.accepted.connect(self._on_accepted)   # bound methods: no cycle holds the closed dialog
        dialog.finished.connect(self._on_finished)
        self.dialog = dialog
        dialog.open()
        return dialog

    def accepted_spec(self, what: str):
        """The accepted dialog's family spec, with the window's shots and query set to the dialog's
        (which classes or tasks the data keeps depends on them); None when nothing is applied."""
        w, dialog = self.window, self.dialog
        spec = dialog.family_spec() if dialog is not None else None
        if spec is None:
            return None
        if w.session.is_training():
            if not w.confirm("Reset the run?", f"Using the imported {what} stops the current run. Continue?"):
                w.statusBar().showMessage("Import not applied: the run goes on with the previous data.", 8000)
                return None
            w.reset()
        shots, query = dialog.shots_query()
        w.hyper_panel.shots.setValue(shots)
        w.hyper_panel.query.setValue(query)
        return spec

    def _on_finished(self, _result: int) -> None:
        dialog, self.dialog = self.dialog, None
        if dialog is not None:
            dialog.deleteLater()

    def close_dialog(self) -> None:
        """The window is closing: an open import dialog stops its reading."""
        if self.dialog is not None:
            self.dialog.reject()


class ImportDialogBase(QDialog):
    """What both import dialogs do the same way; each defines ``family()`` (the checked family,
    or None), ``shots``/``query`` spin boxes, ``ok_button``, ``error_label``, an ``updated`` signal,
    and the slots ``_on_progress``, ``_on_done``, ``_on_failed`` (the read job) and ``_check``
    (the debounced re-check)."""

    def _make_jobs(self, name: str, debounce_ms: int) -> None:
        """The background read (reporting progress) and the timer that re-checks edited choices."""
        self._runner = JobRunner(self, name, reports_progress=True)
        self._runner.progress.connect(self._on_progress)
        self._runner.done.connect(self._on_done)
        self._runner.failed.connect(self._on_failed)
        self._timer = QTimer(self, singleShot=True, interval=debounce_ms)
        self._timer.timeout.connect(self._check)

    def _make_verdict_widgets(self, ok_text: str) -> None:
        """OK (off until the choices check out) and Cancel in ``buttons``, and ``error_label``, which
        says why OK is off."""
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.ok_button = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok_button.setText(ok_text)
        self.ok_button.setEnabled(False)
        self.buttons.accepted.connect(self._on_ok)
        self.buttons.rejected.connect(self.reject)
        self.error_label = QLabel()
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet(ERROR_STYLE)
        self.error_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

    def shots_query(self) -> tuple[int, int]:
        """Shots and query as set here (the window's training settings take them on OK)."""
        return self.shots.value(), self.query.value()

    def family_spec(self):
        """What the window takes: the settings (with what was computed from the data, e.g. statistics)."""
        family = self.family()
        return None if family is None else family.spec()

    def problem(self) -> str | None:
        """Why OK is disabled (None when it is enabled)."""
        return self._problem

    def is_settled(self) -> bool:
        return not (self._runner.is_busy() or self._timer.isActive())

    def _on_ok(self) -> None:
        if self._problem is None and self.family() is not None:
            self.accept()

    def _set_problem(self, problem: str | None, final: bool = True) -> None:
        """OK is enabled exactly while there is no problem; a ``final`` one is shown (a provisional
        one, while reading, only in OK's tooltip)."""
        self._problem = problem
        self.ok_button.setEnabled(problem is None)
        self.ok_button.setToolTip("" if problem is None else f"Cannot import yet: {problem}")
        self.error_label.setText("" if problem is None or not final else problem)
        self.error_label.setVisible(problem is not None and final)
        if final:
            self.updated.emit()


def side_by_side(*widgets: QWidget) -> QWidget:
    """Widgets in a row at their natural width (a spin box need not span the dialog)."""
    host = QWidget()
    layout = QHBoxLayout(host)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    layout.addStretch(1)
    return host
