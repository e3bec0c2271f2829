"""Model → Network → Your own module (Python file)…: choose a file, pick the class or function it
defines (found by parsing the file, nothing runs), give its arguments as JSON.

The file runs only when the user presses *Use this module*, and the dialog says so first; the
module is then built and checked on one sampled task (:func:`core.nets.user_module.probe_config`),
and a problem (with the line of the user's file that raised) keeps the dialog open.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QVBoxLayout, QWidget)

from core.config import ExperimentConfig, ModelSpec
from core.errors import ConfigError
from core.nets import user_module
from core.storage.model_source import admit_run, permission_needed
from maml_gui.session.project import PROJECT_FILE

STATEMENT = ("The file runs as Python code with your rights, as any training script does. Nothing in it runs "
             "until you press “Use this module”; projects and run folders you open never run it without asking.")


def check_line(config: ExperimentConfig) -> str:
    """Build ``config``'s module for its family and run it on one sampled task: the panel's line
    (ConfigError naming the file, line and class when it does not fit)."""
    from core.tasks import build_family

    probe = user_module.probe_config(config, build_family(config.family))
    name = user_module.split_ref(config.model.module)[1]
    return " ".join([user_module.describe(probe, name), *probe.notes])


def project_run_folders(project: str | Path) -> list[Path]:
    """The run folders a project's index names (none when it cannot be read: loading reports that)."""
    try:
        index = json.loads((Path(project) / PROJECT_FILE).read_text(encoding="utf-8"))
        return [Path(project) / e["folder"] for e in index.get("runs", [])
                if isinstance(e, dict) and isinstance(e.get("folder"), str) and not e.get("external")]
    except (OSError, ValueError, AttributeError):
        return []


def ask_for_run_modules(folders, confirm: Callable[[str, str], bool]) -> list[str]:
    """Before a project's runs are read: for each run trained with the user's own module whose code
    has not run in this window, ask (``confirm(title, text)``) and allow its copy only on yes.
    Returns one line per refusal or failure (a declined run is then reported as unreadable)."""
    problems = []
    for folder in folders:
        why = permission_needed(folder)
        if why is None:
            continue
        if not confirm("Run your module's code?", f"{why}\n\nRun it?"):
            continue
        try:
            admit_run(folder, trust=True)
        except ConfigError as exc:
            problems.append(exc.message)
    return problems


_LAST_CHECK: dict[str, str | None] = {}   # what the probe reads -> problem: other edits do not run it again


def module_problem(config: ExperimentConfig, family) -> str | None:
    """Why the user's module cannot train with ``config`` on ``family`` (its output does not fit the
    family, its forward raises, its code was not allowed), else None; runs only allowed code."""
    settings = config.to_dict()   # the parts user_module.probe_config reads, no more
    key = json.dumps([settings["family"], settings["model"], config.algorithm.name, config.train.shots,
                      config.train.seed])
    if key not in _LAST_CHECK:
        try:
            user_module.probe_config(config, family)
            problem = None
        except ConfigError as exc:
            problem = str(exc)
        _LAST_CHECK.clear()
        _LAST_CHECK[key] = problem
    return _LAST_CHECK[key]


class UserModuleDialog(QDialog):
    """``check(spec) -> str`` builds and probes the module (the window's family and settings) and
    returns the panel's line; it raises ConfigError when the module does not fit."""

    def __init__(self, check: Callable[[ModelSpec], str], parent: QWidget | None = None, start: ModelSpec | None = None):
        super().__init__(parent)
        self.setWindowTitle("Your own module")
        self._check = check
        self._source: user_module.Source | None = None
        self.spec: ModelSpec | None = None
        self.summary = ""
        self.path = QLineEdit()
        self.path.setPlaceholderText("a Python file that defines your torch.nn.Module")
        self._loaded = ""
        self.path.editingFinished.connect(self._on_path_edited)
        browse = QPushButton("Choose…")
        browse.clicked.connect(self.choose_file)
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(browse)
        self.names = QComboBox()
        self.names.currentIndexChanged.connect(self._on_name)
        self.signature = QLabel()
        self.signature.setWordWrap(True)
        self.arguments = QLineEdit("{}")
        self.arguments.setToolTip('keyword arguments as a JSON object, e.g. {"hidden": 128}')
        form = QFormLayout()
        form.addRow("File", row)
        form.addRow("Class or function", self.names)
        form.addRow("", self.signature)
        form.addRow("Arguments (JSON)", self.arguments)
        called = QLabel(f"Called as {user_module.SIGNATURE}, or for images {user_module.IMAGE_SIGNATURE}; "
                        "forward(x) takes one task's examples [N, …] and returns [N, outputs]. ANIL adapts its "
                        "attribute `head`.")
        called.setWordWrap(True)
        self.statement = QLabel(STATEMENT)
        self.statement.setWordWrap(True)
        self.statement.setStyleSheet("font-weight: bold")
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: #b00020")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.use = self.buttons.addButton("Use this module", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for item in (form, called, self.statement, self.problem, self.buttons):
            layout.addLayout(item) if isinstance(item, QFormLayout) else layout.addWidget(item)
        self.resize(640, 0)
        if start is not None and start.name == "module" and start.module:
            target, name, is_file = user_module.split_ref(start.module)
            if is_file:
                self.set_file(target, name)
                self.arguments.setText(json.dumps(start.module_args))
        self._refresh()

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Your module's Python file", self.path.text(), "Python (*.py)")
        if path:
            self.set_file(path)

    def _on_path_edited(self) -> None:
        if self.path.text() != self._loaded:   # focus leaving an unchanged field reloads nothing
            self.set_file(self.path.text())

    def set_file(self, path: str | Path, name: str | None = None) -> None:
        """Parse ``path`` (nothing runs) and list its public classes and functions."""
        self._loaded = str(path)
        self.path.setText(str(path))
        self.names.clear()
        self._source = None
        self.problem.clear()
        try:
            source = user_module.read_source(Path(str(path)).expanduser().resolve())
            found = user_module.definitions(source)
        except ConfigError as exc:
            self.problem.setText(exc.message)
        else:
            self._source = source
            for d in found:
                self.names.addItem(f"{d.name}  ({d.kind}, line {d.line})", d)
            if not found:
                self.problem.setText(f"{source.filename} defines no public class or function")
            index = next((i for i, d in enumerate(found) if d.name == name), -1)
            if index < 0:   # a guess: the first class that looks like a network
                index = next((i for i, d in enumerate(found) if d.kind == "class"), 0 if found else -1)
            self.names.setCurrentIndex(index)
        self._refresh()

    def _on_name(self) -> None:
        d = self.names.currentData()
        self.signature.setText(f"{d.name}{d.signature}" if d else "")
        self._refresh()

    def _refresh(self) -> None:
        self.use.setEnabled(self._source is not None and self.names.currentData() is not None)

    def chosen(self) -> ModelSpec:
        """The model spec the dialog describes (ConfigError when the arguments are not a JSON object)."""
        try:
            args = json.loads(self.arguments.text() or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError("model.module_args", f"the arguments are not valid JSON (column {exc.colno}): "
                                                   f"{exc.msg}; write an object such as {{\"hidden\": 128}}") from None
        if not isinstance(args, dict):
            raise ConfigError("model.module_args", "the arguments must be a JSON object such as {\"hidden\": 128}")
        d = self.names.currentData()
        return ModelSpec(name="module", module=f"{self._source.filename}:{d.name}", module_args=args,
                         module_sha256=self._source.sha256)

    def accept(self) -> None:
        """The user asked for the file to run: allow it, build and check it on one task."""
        if self._source is None or self.names.currentData() is None:
            return
        try:
            spec = self.chosen()
            user_module.allow(self._source)
            self.summary = self._check(spec)
        except ConfigError as exc:
            self.problem.setText(exc.message)
            return
        self.spec = spec
        super().accept()


def pick_user_module(parent: QWidget, panel_config: Callable[[], ExperimentConfig], hyper_panel) -> None:
    """Model → Network → Your own module: the dialog, checked against the settings shown; the model
    panel takes the module only when the user pressed "Use this module" and the check passed."""
    dialog = UserModuleDialog(lambda spec: check_line(dataclasses.replace(panel_config(), model=spec)), parent,
                              hyper_panel.model_spec())
    if dialog.exec() == QDialog.DialogCode.Accepted and dialog.spec is not None:
        hyper_panel.set_user_module(dialog.spec, dialog.summary)
