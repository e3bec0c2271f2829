"""Tests of the engine (core/): one file per capability."""
