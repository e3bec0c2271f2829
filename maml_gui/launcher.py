"""The ``maml-gui`` command: the window with no arguments, every sub-command through ``core.cli``.

The engine never imports this package, so its command line cannot open the window; this launcher
does, and hands ``core.cli`` the one command that needs the window, ``bench --gui``. Only the
standard library loads up front: the headless commands must keep working where Qt cannot.
"""

from __future__ import annotations

import sys

HEADLESS = "train, sweep, evaluate, bench, export, adapt"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:
        return open_window()
    from core.cli.main import main as run_command

    return run_command(argv, gui_bench=gui_bench)


def open_window() -> int:
    """Show the main window until it closes; without a usable Qt, one readable line and exit 1."""
    problem = _why_no_window()
    if problem:
        print(f"maml-gui: {problem}; headless commands: {HEADLESS}", file=sys.stderr)
        return 1
    from .app import main as window_main

    return window_main([])


def gui_bench(seconds: float, images: bool = False) -> dict:
    """``maml-gui bench --gui [--images]``: iterations/s with the window open vs headless, and UI latency."""
    from core.errors import MamlError

    problem = _why_no_window()
    if problem:
        raise MamlError(f"bench --gui needs the window: {problem}")
    from .gui_bench import run_gui_bench

    return run_gui_bench(seconds=seconds, images=images)


def _why_no_window() -> str | None:
    """Why Qt or pyqtgraph cannot load here (missing, or missing system libraries), else None."""
    try:
        from PySide6 import QtWidgets  # noqa: F401 - first: pyqtgraph without a binding raises a bare Exception
        import pyqtgraph  # noqa: F401
    except ImportError as exc:
        return f"the window cannot start ({exc})"
    return None
