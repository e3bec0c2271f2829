"""Test set-up: Qt renders offscreen (no display on CI), before any Qt import."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
