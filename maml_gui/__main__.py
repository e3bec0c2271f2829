"""``python -m maml_gui``: the same window as ``maml-gui`` without arguments."""

import sys

from .app import main

sys.exit(main(sys.argv[1:]))
