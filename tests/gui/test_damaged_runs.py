"""The window's Open on every damaged run folder of tests/core/test_damaged_runs.py: a message naming the
file when the weights cannot be used, else the run opens (without the exact-resume state when that is
what is damaged); never an exception."""

from __future__ import annotations

import pytest

from core.storage.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE
from core.storage.metrics import METRICS_FILE
from core.storage.lock import LOCK_FILE


from ..core.test_damaged_runs import DAMAGES, damaged_copy, trained  # noqa: F401  (the module's run)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, METRICS_FILE, LOCK_FILE])
def test_open_a_damaged_run_folder(qtbot, make_window, trained, tmp_path, name):
    window = make_window()
    errors: list[str] = []
    window.show_error = errors.append
    for damage in DAMAGES[name]:
        errors.clear()
        run = damaged_copy(trained, tmp_path / damage.replace(":", "-"), name, damage)
        opened = window.weights.open_weights(run)
        where = f"{name} ({damage}): opened {opened}, errors {errors}"
        if name == WEIGHTS_FILE:
            assert not opened and len(errors) == 1 and WEIGHTS_FILE in errors[0], where
            continue
        if name == LOCK_FILE:   # an unreadable lock may name a live writer: the run is followed, read only
            assert opened and not errors, where
            continue
        assert opened and not errors, where
        if name in (CONFIG_FILE, STATE_FILE):   # the status bar says what is damaged and what Start does
            assert name in window.statusBar().currentMessage(), where
        current = window.session.current
        assert current.weights and current.name.startswith("run"), where
        if name == STATE_FILE:
            assert current.training_state is None, where   # Start continues from the weights, Adam afresh
