"""What the CSV and the image-folder imports share: one dialog at a time, and applying what it
chose only when the window may switch data (a training run stops first, if the user agrees)."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QWidget


class ImportHost:
    def __init__(self, window):
        self.window = window
        self.dialog = None

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


class ImportDialogBase:
    """What both import dialogs answer the same way; each defines ``family()`` (the checked family,
    or None), ``shots``/``query`` spin boxes, ``_problem``, a ``_runner`` job and a ``_timer``."""

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


def side_by_side(*widgets: QWidget) -> QWidget:
    """Widgets in a row at their natural width (a spin box need not span the dialog)."""
    host = QWidget()
    layout = QHBoxLayout(host)
    layout.setContentsMargins(0, 0, 0, 0)
    for w in widgets:
        layout.addWidget(w)
    layout.addStretch(1)
    return host
