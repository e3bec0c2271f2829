"""The meta-gradient's norm over meta-iterations, as TensorBoard users look for it next to the loss."""

from __future__ import annotations

import numpy as np
from PySide6.QtWidgets import QWidget

from .loss_plot import LossPlot


class GradNormPlot(LossPlot):
    """The norm of each meta-iteration's meta-gradient (``metrics.csv``'s ``grad_norm``), raw and
    smoothed, compared runs dashed; on a log axis by default (norms span orders of magnitude)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent, "Meta-gradient norm", "gradient norm (L2)")
        self._log.setToolTip("Show the norm on a logarithmic axis (norms span orders of magnitude).")
        self.set_log_scale(True)

    def _values(self, history) -> np.ndarray:
        return history.grad_norms[:, None]

    def _overlay_values(self, history) -> np.ndarray:
        return history.grad_norms
