"""``python -m maml_gui``: the same as the ``maml-gui`` command (the window, or a sub-command)."""

import sys

from .launcher import main

sys.exit(main())
