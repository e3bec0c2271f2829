"""The trainer's stream of meta-batches, drawn from its own seeded generator.

Why a stream rather than one ``family.sample`` per step: drawing a sinusoid batch is a dozen
tiny torch calls, a fifth of a compiled meta-iteration. Where a family's batch is a single
``torch.rand`` call (``draws_once``), consecutive batches are consecutive slices of the
generator's sequence, so the stream draws a block of batches in one call and hands them out in
turn — the same batches as drawing one at a time. :meth:`get_state` still returns the
generator's state after exactly the batches handed out, so checkpoints and resume stay exact.
"""

from __future__ import annotations

import torch

from .base import TaskBatch, TaskFamily

BLOCK_NUMBERS = 1 << 18     # uniform numbers drawn at once (1 MiB)
BLOCK_BATCHES = 64


class TaskStream:
    def __init__(self, family: TaskFamily, n_tasks: int, shots: int, query: int, seed: int):
        self.family, self.n_tasks, self.shots, self.query = family, n_tasks, shots, query
        self.generator = torch.Generator().manual_seed(seed)
        self._count = 0
        if getattr(family, "draws_once", False):
            self._count = family.batch_numbers(n_tasks, shots, query)
            self._ranges = family.uniform_ranges(n_tasks, self._count)
        self._block: torch.Tensor | None = None   # [B, count] numbers drawn, scaled
        self._taken = 0                            # rows of the block handed out
        self._before: torch.Tensor | None = None   # the generator's state before the block

    def next(self) -> TaskBatch:
        if not self._count:
            return self.family.sample(self.n_tasks, self.shots, self.query, self.generator)
        if self._block is None or self._taken == len(self._block):
            rows = max(1, min(BLOCK_BATCHES, BLOCK_NUMBERS // self._count))
            self._before = self.generator.get_state()
            block = torch.rand((rows, self._count), generator=self.generator)
            scale, low = self._ranges
            self._block, self._taken = block.mul_(scale).add_(low), 0
        numbers = self._block[self._taken]
        self._taken += 1
        return self.family.from_uniform(numbers, self.n_tasks, self.shots, self.query)

    def get_state(self) -> torch.Tensor:
        """The generator's state after the batches handed out (not after the block drawn ahead)."""
        if self._block is None or self._taken == len(self._block):
            return self.generator.get_state()
        replay = torch.Generator()
        replay.set_state(self._before)
        torch.rand(self._taken * self._count, generator=replay)
        return replay.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state)
        self._block = None

    def position(self) -> tuple:
        """Where the stream is, cheaply (no replay), for :meth:`rewind` after a failed step."""
        return self.generator.get_state(), self._block, self._taken, self._before

    def rewind(self, position: tuple) -> None:
        state, self._block, self._taken, self._before = position
        self.generator.set_state(state)
