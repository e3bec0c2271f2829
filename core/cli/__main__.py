"""``python -m core.cli``: the headless commands (what ``maml-gui`` runs for any sub-command)."""

import sys

from core.cli.main import main

sys.exit(main())
