"""The headless commands of ``maml-gui``: ``train``, ``evaluate``, ``bench``, ``export``, ``adapt``.

A contract other tools call: bad arguments exit 2 with one readable line on stderr, never a
traceback; ``--json`` prints exactly one JSON object on stdout. The ``maml-gui`` command itself
starts in ``maml_gui/launcher.py``, which opens the window when given no command; the engine never
imports the window, so the launcher passes in the one command that needs it (``bench --gui``).
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Callable

from core.cli import bench, evaluate, train
from core.cli.export import run_adapt, run_export
from core.cli.parser import UsageError, build_parser
from core.cli.sweep import run_sweep
from core.cli.train import out_of_memory
from core.errors import MamlError


def main(argv: list[str] | None = None, gui_bench: Callable[..., dict] | None = None) -> int:
    """Run one command; ``gui_bench(seconds, images=False) -> dict`` serves ``bench --gui [--images]`` (given by the launcher)."""
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):   # a file name that is not UTF-8 is shown escaped, never a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        if argv and argv[0] == "sweep":   # its unknown options are train's: parsed by the sweep itself
            return run_sweep(argv[1:], UsageError)
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise UsageError("maml-gui: choose a command: train, sweep, evaluate, bench, export or adapt "
                             "(with no command at all, the maml-gui launcher opens the window)")
        args.argv = argv
        commands = {"train": train.run, "evaluate": evaluate.run, "bench": partial(bench.run, gui_bench=gui_bench),
                    "export": run_export, "adapt": run_adapt}
        return commands[args.command](args)
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return 2
    except MamlError as exc:
        print(f"maml-gui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("maml-gui: interrupted", file=sys.stderr)
        return 130
    except (MemoryError, RuntimeError) as exc:   # an allocation the memory estimate did not foresee
        if not out_of_memory(exc):
            raise
        said = str(exc).strip().splitlines()[-1][:160] if str(exc).strip() else type(exc).__name__
        print(f"maml-gui: error: out of memory ({said}); use smaller sizes (--tasks, --meta-batch, --shots, --query "
              "or the network)", file=sys.stderr)
        return 1


