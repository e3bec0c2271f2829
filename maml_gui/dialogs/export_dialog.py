"""File → Export weights…: pick a format and a file; the window does the writing.

The dialog only collects a choice and shows how it went: it emits ``requested(path, format,
readme)`` and stays open, busy, until the window calls :meth:`ExportDialog.finish` (success
closes it) or :meth:`ExportDialog.show_error` (the message stays next to the choice, so a
read-only folder or a declined overwrite can be fixed by picking another file).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout,
                               QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from core.trained import export as core_export
from core.trained.export import FORMATS, SUFFIXES

TITLES = {"safetensors": "safetensors (recommended)", "pt": "PyTorch state_dict (.pt)", "onnx": "ONNX (inference only)"}
NOTES = {
    "safetensors": "Weights, learned inner learning rates and every setting (with normalization statistics). "
                   "MAML Explorer opens it again to continue training or adapt.",
    "pt": "A plain state_dict for torch.load(file, weights_only=True); the settings go next to it in "
          "<file>.config.json. No learned inner rates.",
    "onnx": "The network for inference in any ONNX runtime; it cannot be fine-tuned or opened here again.",
}
FILTERS = {"safetensors": "safetensors (*.safetensors)", "pt": "PyTorch (*.pt *.pth)", "onnx": "ONNX (*.onnx)"}


def with_suffix(path: str, fmt: str) -> str:
    """Give ``path`` the format's suffix, replacing another format's suffix (a name without one gets it)."""
    if not path:
        return path
    p = Path(path)
    known = {s for s in SUFFIXES.values()} | {".pth"}
    if p.suffix.lower() == SUFFIXES[fmt] or (fmt == "pt" and p.suffix.lower() == ".pth"):
        return path
    stem = p.name[: -len(p.suffix)] if p.suffix.lower() in known else p.name
    return str(p.with_name(stem + SUFFIXES[fmt]))


class ExportDialog(QDialog):
    requested = Signal(object, str, bool)   # path, format, write the README sidecar

    def __init__(self, parent: QWidget | None, title: str, what: str, start_path: str | Path):
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setMinimumWidth(520)
        self.what = QLabel(what)
        self.what.setWordWrap(True)
        self.what.setStyleSheet("color: #555;")
        self.format_box = QComboBox()
        for fmt in FORMATS:
            self.format_box.addItem(TITLES[fmt], fmt)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.path_edit = QLineEdit(str(start_path))
        self.path_edit.setToolTip("The file to write; an existing file is replaced only after you confirm")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(browse)
        self.readme = QCheckBox("Also write <file>.README.txt: what the file holds and the Python that loads it")
        self.readme.setChecked(True)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.hide()
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self._on_export)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        form.addRow("Format", self.format_box)
        form.addRow("", self.note)
        form.addRow("File", path_row)
        form.addRow("", self.readme)
        layout = QVBoxLayout(self)
        layout.addWidget(self.what)
        layout.addLayout(form)
        layout.addWidget(self.message)
        layout.addStretch(1)
        layout.addWidget(self.buttons)
        self.format_box.currentIndexChanged.connect(self._on_format)
        self.path_edit.textEdited.connect(lambda _text: self.message.hide())
        self._busy = False
        self._on_format()

    # -- what tests and the window use ---------------------------------------------------------------
    def format(self) -> str:
        return self.format_box.currentData()

    def set_format(self, fmt: str) -> None:
        self.format_box.setCurrentIndex(self.format_box.findData(fmt))

    def path(self) -> Path:
        return Path(self.path_edit.text().strip()).expanduser()

    def set_path(self, path) -> None:
        self.path_edit.setText(str(path))

    def set_busy(self, busy: bool) -> None:
        """While the file is written: everything disabled, a note saying so."""
        self._busy = busy
        for widget in (self.format_box, self.path_edit, self.readme, self.buttons):
            widget.setEnabled(not busy)
        if busy:
            self._show("Writing…" + (" (ONNX export takes a few seconds)" if self.format() == "onnx" else ""), "#333")
        else:
            self._update_export_button()

    def show_error(self, message: str) -> None:
        self.set_busy(False)
        self._show(message, "#b00020")

    def finish(self) -> None:
        self._busy = False
        self.accept()

    # -- internals -------------------------------------------------------------------------------
    def _on_format(self) -> None:
        fmt = self.format()
        self.set_path(with_suffix(self.path_edit.text().strip(), fmt))
        if fmt == "onnx" and core_export.missing_onnx_packages():
            self.note.setText(core_export.onnx_install_hint())
            self.note.setStyleSheet("color: #b00020;")
        else:
            self.note.setText(NOTES[fmt])
            self.note.setStyleSheet("color: #555;")
        self.message.hide()
        self._update_export_button()

    def _update_export_button(self) -> None:
        self.export_button.setEnabled(not (self.format() == "onnx" and core_export.missing_onnx_packages()))

    def _browse(self) -> None:
        fmt = self.format()
        path, _ = QFileDialog.getSaveFileName(self, "Export weights to", self.path_edit.text(), FILTERS[fmt],
                                              options=QFileDialog.Option.DontConfirmOverwrite)
        if path:   # the window asks before replacing anything (the README sidecar included)
            self.set_path(with_suffix(path, fmt))
            self.message.hide()

    def _on_export(self) -> None:
        if self._busy:
            return
        if not self.path_edit.text().strip():
            self.show_error("Give the file to export to.")
            return
        self.set_path(with_suffix(self.path_edit.text().strip(), self.format()))
        self.requested.emit(self.path(), self.format(), self.readme.isChecked())

    def _show(self, text: str, color: str) -> None:
        self.message.setStyleSheet(f"color: {color};")
        self.message.setText(text)
        self.message.show()

    def reject(self) -> None:
        if not self._busy:   # the write in progress cannot be taken back; let it finish
            super().reject()
