"""Model → Network → Your own module (issue 24): the picker lists a file's classes and functions by
parsing it (nothing runs before "Use this module"), says the file runs as code, shows a problem
with the user's file line and stays open; the panel then shows the size and output shape, and the
window trains the module."""

from __future__ import annotations


from PySide6.QtWidgets import QDialog

from core.config import ExperimentConfig, FamilySpec
from core.nets import user_module
from maml_gui.dialogs.user_module_dialog import STATEMENT, UserModuleDialog, check_line

from .support import tiny

NETS = '''
import pathlib
pathlib.Path(__file__).with_name("ran").touch()   # shows whether the file ran

import torch
from torch import nn

class Small(nn.Module):
    def __init__(self, in_features, out_features, hidden=16):
        super().__init__()
        self.body = nn.Linear(in_features, hidden)
        self.head = nn.Linear(hidden, out_features)
    def forward(self, x):
        return self.head(torch.tanh(self.body(x)))

class Broken(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.l = nn.Linear(in_features, out_features)
    def forward(self, x):
        return self.l(x.view(-1, 7))

def factory(in_features, out_features, *, width=8):
    return nn.Sequential(nn.Linear(in_features, width), nn.ReLU(), nn.Linear(width, out_features))
'''
BROKEN_LINE = NETS.splitlines().index("        return self.l(x.view(-1, 7))") + 1


def write(tmp_path):
    path = tmp_path / "nets.py"
    path.write_text(NETS)
    return path


def pick_file(monkeypatch, path) -> None:
    """The module dialog, when it opens, chooses ``path`` (its first name) and presses "Use this module"."""
    def pick(dialog):
        dialog.set_file(path)
        dialog.use.click()
        return dialog.result()

    monkeypatch.setattr(UserModuleDialog, "exec", pick)


def test_picker_lists_names_without_running_and_checks_on_use(qtbot, tmp_path):
    path = write(tmp_path)
    config = tiny()
    dialog = UserModuleDialog(lambda spec: check_line(ExperimentConfig(config.family, spec, config.algorithm,
                                                                       config.train)))
    qtbot.addWidget(dialog)
    assert dialog.statement.text() == STATEMENT and "with your rights" in STATEMENT
    assert not dialog.use.isEnabled()
    dialog.set_file(path)
    names = [dialog.names.itemData(i).name for i in range(dialog.names.count())]
    assert names == ["Small", "Broken", "factory"]
    assert dialog.signature.text() == "Small(in_features, out_features, hidden=16)"
    assert not (tmp_path / "ran").exists()   # parsed, not run
    dialog.names.setCurrentIndex(1)
    dialog.use.click()   # runs the file and checks Broken on one task: the error stays in the dialog
    assert (tmp_path / "ran").exists()
    assert f"nets.py:{BROKEN_LINE}: Broken.forward raised RuntimeError" in dialog.problem.text()
    assert dialog.result() != QDialog.DialogCode.Accepted and dialog.spec is None
    dialog.names.setCurrentIndex(0)
    dialog.arguments.setText("[1, 2]")
    dialog.use.click()
    assert "JSON object" in dialog.problem.text() and dialog.spec is None
    dialog.arguments.setText('{"hidden": 4}')
    with qtbot.waitSignal(dialog.accepted, timeout=5000):
        dialog.use.click()
    assert dialog.spec.module == f"{path}:Small" and dialog.spec.module_args == {"hidden": 4}
    # 1·4 + 4 + 4·1 + 1 weights; one task of the tiny config's 5 support points
    assert dialog.summary.startswith("Small: 13 parameters; output [5, 1] on one sampled task (input [5, 1])")


def test_a_syntax_error_is_shown_with_its_line(qtbot, tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import torch\n\nclass Net(torch.nn.Module:\n    pass\n")
    dialog = UserModuleDialog(lambda spec: "")
    qtbot.addWidget(dialog)
    dialog.set_file(path)
    assert f"{path}:3: syntax error" in dialog.problem.text()
    assert dialog.names.count() == 0 and not dialog.use.isEnabled()


def test_the_window_picks_checks_and_trains_the_module(qtbot, make_window, tmp_path, monkeypatch):
    path = write(tmp_path)
    window = make_window()
    titles = [a.text() for a in window.menuBar().actions()]
    assert "&Model" in titles and window.user_module_action.text() == "Your own module (Python file)…"

    def pick(dialog):   # the user chooses the file and the factory, then presses "Use this module"
        dialog.set_file(path)
        dialog.names.setCurrentIndex(2)
        dialog.arguments.setText('{"width": 5}')
        dialog.use.click()
        return dialog.result()

    monkeypatch.setattr(UserModuleDialog, "exec", pick)
    window.user_module_action.trigger()
    hyper = window.hyper_panel
    spec = hyper.model_spec()
    assert (spec.name, spec.module, spec.module_args) == ("module", f"{path}:factory", {"width": 5})
    assert len(spec.module_sha256) == 64
    assert hyper.module_info.text().startswith("factory: 16 parameters; output [5, 1]")
    assert hyper.error() is None and window.actions.start.isEnabled()
    its = []
    window.session.controller.progress.connect(lambda chunk: its.extend(chunk.iterations.tolist()))
    window.actions.start.trigger()
    qtbot.waitUntil(lambda: len(its) >= 5, timeout=20_000)
    window.actions.stop.trigger()
    qtbot.waitUntil(lambda: not window.session.controller.is_active(), timeout=20_000)
    run = window.session.runs.get(window.run_list.run_ids()[0])
    assert run.config.model.module == f"{path}:factory" and "body.weight" not in run.weights
    assert set(run.weights) >= {"model.0.weight", "model.2.bias"}


def trained_project(qtbot, make_window, tmp_path, monkeypatch):
    """A project trained with the module in one window; then, as a new process would, nothing allowed."""
    path = write(tmp_path)
    first = make_window(project=tmp_path / "proj")

    pick_file(monkeypatch, path)
    first.user_module_action.trigger()
    its = []
    first.session.controller.progress.connect(lambda chunk: its.extend(chunk.iterations.tolist()))
    first.actions.start.trigger()
    qtbot.waitUntil(lambda: len(its) >= 3, timeout=20_000)
    first.actions.stop.trigger()
    qtbot.waitUntil(lambda: not first.session.controller.is_active(), timeout=20_000)
    assert first.shutdown()
    folder = first.session.project.folder / first.session.runs.get(first.run_list.run_ids()[0]).folder
    assert (folder / "model.py").read_text() == NETS
    user_module._ALLOWED.clear()   # as in a new window process: nothing allowed yet
    user_module._NAMESPACES.clear()
    (tmp_path / "ran").unlink()
    return folder


def test_an_opened_project_never_runs_a_module_the_user_declines(qtbot, make_window, tmp_path, monkeypatch):
    folder = trained_project(qtbot, make_window, tmp_path, monkeypatch)
    asked = []
    second = make_window(project=tmp_path / "other")
    second.confirm = lambda title, text: asked.append(text) or False   # the user says no
    second.files.open_project(tmp_path / "proj")
    assert len(asked) == 1 and "model.py" in asked[0] and "with your rights" in asked[0]
    assert len(second.session.runs) == 0   # refused: nothing ran, neither the copy nor the original
    assert not (folder / "ran").exists() and not (tmp_path / "ran").exists()
    assert "not yet allowed to run" in second.error_banner.label.text()
    assert second.shutdown()


def test_an_opened_project_runs_the_module_copy_when_the_user_says_yes(qtbot, make_window, tmp_path, monkeypatch):
    folder = trained_project(qtbot, make_window, tmp_path, monkeypatch)
    asked = []
    window = make_window(project=tmp_path / "other")
    window.confirm = lambda title, text: asked.append(title) or True
    window.files.open_project(tmp_path / "proj")
    assert asked == ["Run your module's code?"]
    assert (folder / "ran").exists() and not (tmp_path / "ran").exists()   # the run's copy ran, not nets.py
    assert len(window.session.runs) == 1
    run = window.session.runs.get(window.run_list.run_ids()[0])
    assert run.weights is not None and run.config.model.module.endswith("nets.py:Small")
    assert user_module.allowed(run.config.model.module_sha256).filename == str(folder / "model.py")


def test_start_says_why_when_the_module_does_not_fit_the_family(qtbot, make_window, tmp_path, monkeypatch):
    """Small takes feature vectors; on an image family its forward raises: Start is disabled and the
    banner names the file, its line and what to change."""
    path = write(tmp_path)
    window = make_window()

    pick_file(monkeypatch, path)
    window.user_module_action.trigger()
    assert window.start_problem() is None
    config = window.panel_config()
    glyphs = FamilySpec("glyphs", {"n_alphabets": 6, "characters": 4, "examples": 12, "image_size": 16, "n_way": 3})
    window.set_config(ExperimentConfig(glyphs, config.model, config.algorithm, config.train.__class__(
        meta_batch=2, shots=1, query=1, iterations=50)))
    qtbot.waitUntil(lambda: "Small.forward" in (window.start_problem() or ""), timeout=30_000)   # glyphs drawn
    line = NETS.splitlines().index("        return self.head(torch.tanh(self.body(x)))") + 1
    assert f"nets.py:{line}: Small.forward raised RuntimeError" in window.start_problem()
    assert "change Small.forward" in window.start_problem()
    assert not window.actions.start.isEnabled()
