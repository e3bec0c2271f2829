"""The engine must run where no Qt exists: importing it may not load Qt or the GUI package."""

import subprocess
import sys


def test_importing_core_loads_no_qt():
    code = ("import sys, core, core.cli, core.trainer, core.evaluation, core.checkpoint, core.bench, core.export, core.weights_io, core.adapt, core.export_cli; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('PySide6', 'shiboken6', 'pyqtgraph', 'maml_gui')]; "
            "print(','.join(bad))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
