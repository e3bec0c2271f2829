"""The engine must run where no Qt exists: importing it may not load Qt or the GUI package."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / "core"
QT = ("PySide6", "shiboken6", "pyqtgraph")
FORBIDDEN = (*QT, "maml_gui")


def _loaded(packages) -> str:
    """Python code that prints the loaded modules of these top-level packages, comma-separated."""
    return f"print(','.join(m for m in sys.modules if m.split('.')[0] in {tuple(packages)!r}))"


def test_importing_core_loads_no_qt():
    code = ("import sys, core, core.cli.main, core.training.trainer, core.trained.evaluation, "
            "core.storage.checkpoint, core.training.bench, core.trained.export, core.trained.weights_io, "
            "core.trained.adapt, core.cli.export, core.tasks.csv_family; " + _loaded(FORBIDDEN))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def _forbidden_imports(path: Path) -> list[str]:
    """Every import of a forbidden package in one file, at any depth (functions and branches too),
    including ``importlib.import_module("...")`` and ``__import__("...")`` with a literal name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""] if node.level == 0 else []
        elif isinstance(node, ast.Call) and _is_import_call(node.func) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names = [node.args[0].value]
        else:
            continue
        found += [f"{path.name}:{node.lineno}: {name}" for name in names if name.split(".")[0] in FORBIDDEN]
    return found


def _is_import_call(func: ast.expr) -> bool:
    return getattr(func, "attr", None) == "import_module" or getattr(func, "id", None) == "__import__"


def test_no_file_under_core_imports_qt_or_the_window():
    files = sorted(CORE.rglob("*.py"))
    assert len(files) > 20, "the scan found too few files to be looking at core/"
    bad = [f"{path.parent.relative_to(CORE.parent)}/{hit}" for path in files for hit in _forbidden_imports(path)]
    assert bad == [], "core/ must never import Qt, pyqtgraph or maml_gui, not even lazily:\n" + "\n".join(bad)


def test_the_scan_catches_lazy_imports(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n"
                      "def window():\n"
                      "    from maml_gui.app import main\n"
                      "    import json, PySide6.QtWidgets as widgets\n"
                      "    return importlib.import_module('pyqtgraph'), __import__('shiboken6')\n")
    assert [hit.split(": ")[1] for hit in _forbidden_imports(sample)] == [
        "maml_gui.app", "PySide6.QtWidgets", "pyqtgraph", "shiboken6"]


def test_the_launcher_loads_no_qt_for_headless_commands():
    """``maml-gui train ...`` starts in maml_gui/launcher.py; it must not pull in Qt on its way to core.cli."""
    code = ("import sys, maml_gui.launcher as launcher; code = launcher.main(['train', '--out', 'x', '--shots', '0']); "
            + _loaded(QT) + "; sys.exit(code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 2 and "argument --shots" in out.stderr
    assert out.stdout.strip() == ""
