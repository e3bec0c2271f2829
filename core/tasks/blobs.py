"""2-D Gaussian blobs: N-way K-shot classification with fresh class centres per task."""

from __future__ import annotations

import torch

from .base import ParamField, TaskBatch, TaskFamily, uniform


class BlobsFamily(TaskFamily):
    """Each task places ``n_way`` Gaussian clusters at random; labels are only meaningful within a task."""

    name, title, kind = "blobs", "Gaussian blobs (N-way classification)", "classification"
    fields = (
        ParamField("n_way", "classes N (ways)", "int", 5, 2, 20, help="classes per task"),
        ParamField("center_range", "centre range", "range", [-5.0, 5.0], help="class centres are drawn in this square"),
        ParamField("std", "cluster std", "range", [0.5, 1.5], 0.0, None, help="per-class spread"),
    )
    input_dim = 2

    @property
    def output_dim(self) -> int:  # type: ignore[override]
        return self.params["n_way"]

    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        """``shots`` and ``query`` count points per class, as in N-way K-shot episodes."""
        n = self.params["n_way"]
        centers = uniform(*self.params["center_range"], (n_tasks, n, 1, 2), generator)
        std = uniform(*self.params["std"], (n_tasks, n, 1, 1), generator)

        def draw(per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = centers + std * torch.randn((n_tasks, n, per_class, 2), generator=generator)
            y = torch.arange(n).repeat_interleave(per_class).expand(n_tasks, -1)
            return x.reshape(n_tasks, n * per_class, 2), y.contiguous()

        sx, sy = draw(shots)
        qx, qy = draw(query)
        return TaskBatch(sx, sy, qx, qy, {"centers": centers.squeeze(2), "std": std.reshape(n_tasks, n)})
