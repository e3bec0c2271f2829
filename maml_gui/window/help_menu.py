"""The Help menu: how to use the window, the keyboard shortcuts, and what is installed.

The usage guide is the README's "Using the window" section, read from the installed package's
metadata (a wheel carries its README there), so the help and the README never disagree and
nothing is fetched from the network.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QMessageBox, QTextBrowser, QVBoxLayout

PACKAGE = "maml-gui"
USAGE_HEADING = "## Using the window"


def usage_text() -> str:
    """The README's "Using the window" section (Markdown), or a pointer to it when not installed."""
    try:
        readme = importlib.metadata.metadata(PACKAGE).get_payload() or ""
    except importlib.metadata.PackageNotFoundError:
        readme = ""
    start = readme.find(USAGE_HEADING)
    if start < 0:
        return "See the section \"Using the window\" of the README that comes with MAML Explorer."
    end = readme.find("\n## ", start + len(USAGE_HEADING))
    section = readme[start:end if end > 0 else None]
    return re.sub(r"!\[[^\]]*\]\([^)]*\)\n?", "", section)   # screenshots are files beside the README


def shortcut_rows(actions) -> list[tuple[str, str]]:
    """(action, shortcut) for every action of the window that has one."""
    rows = []
    for action in vars(actions).values():
        items = action.values() if isinstance(action, dict) else [action]
        for item in items:
            if isinstance(item, QAction) and not item.shortcut().isEmpty():
                rows.append((item.text().replace("&", "").rstrip("…"),
                             item.shortcut().toString(QKeySequence.SequenceFormat.NativeText)))
    return rows


def about_text() -> str:
    def version(name: str) -> str:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    import torch   # already loaded by the engine

    return (f"<h3>MAML Explorer {version(PACKAGE)}</h3>"
            "<p>Define task families, meta-train with MAML and its relatives, watch it learn, compare runs "
            "and export the weights.</p>"
            f"<p>torch {torch.__version__} · PySide6 {version('PySide6-Essentials')} · pyqtgraph "
            f"{version('pyqtgraph')} · Python {platform.python_version()}</p>")


def text_dialog(parent, title: str, markdown: str) -> QDialog:
    dialog = QDialog(parent)
    dialog.setWindowTitle(title)
    browser = QTextBrowser()
    browser.setMarkdown(markdown)
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
    buttons.rejected.connect(dialog.reject)
    layout = QVBoxLayout(dialog)
    layout.addWidget(browser)
    layout.addWidget(buttons)
    dialog.resize(720, 560)
    return dialog


def build_help_menu(window, actions) -> None:
    menu = window.menuBar().addMenu("&Help")

    def show(title: str, markdown: str) -> None:
        window.help_dialog = text_dialog(window, title, markdown)
        window.help_dialog.open()

    menu.addAction("Using MAML Explorer", lambda: show("Using MAML Explorer", usage_text()))
    menu.addAction("Keyboard shortcuts", lambda: show(
        "Keyboard shortcuts", "| Action | Shortcut |\n|---|---|\n"
        + "\n".join(f"| {name} | {keys} |" for name, keys in shortcut_rows(actions))))
    menu.addSeparator()
    menu.addAction("About MAML Explorer", lambda: QMessageBox.about(window, "About MAML Explorer", about_text()))
