"""Tests of the window (maml_gui/), offscreen; fixtures in conftest.py."""
