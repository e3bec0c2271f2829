"""``maml-gui`` with no arguments: build the application and show the main window."""

from __future__ import annotations

import os
import sys

ORGANIZATION = "MAML Explorer"
APPLICATION = "maml-gui"


def _choose_platform() -> None:
    """Without a display (SSH, CI) Qt would abort; fall back to offscreen so errors stay readable."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def application(argv: list[str] | None = None):
    """The running QApplication, created (with the app's settings names) if there is none."""
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance()
    if app is None:
        _choose_platform()
        app = QApplication([sys.argv[0] if sys.argv else "maml-gui", *(argv or [])])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    app.setApplicationDisplayName("MAML Explorer")
    return app


def main(argv: list[str] | None = None) -> int:
    app = application(argv)
    from maml_gui.window.main_window import MainWindow
    from maml_gui.jobs.threads import shutdown_all
    from maml_gui.jobs.training import reserve_gui_core

    reserve_gui_core()
    # Collect reference cycles only on the GUI thread: a collection triggered on the training
    # (or CSV-reading) thread could destroy Qt objects there, which Qt does not survive.
    from pyqtgraph.util.garbage_collector import GarbageCollector

    collector = GarbageCollector(interval=1.0)  # noqa: F841 - lives as long as the window

    window = MainWindow()
    app.aboutToQuit.connect(lambda: shutdown_all(60_000))   # threads of windows closed without closeEvent
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
