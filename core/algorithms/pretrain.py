"""The MAML paper's baseline: one network trained jointly on all tasks, fine-tuned at test time.

N-way episodes shuffle the labels 0..N-1 in every episode, so a network trained on them can only
learn to predict uniform. For episode families the baseline is therefore Chen et al. 2019's
("A Closer Look at Few-shot Classification", "Baseline"): the body is pre-trained with a linear
*class head* over every meta-train class, on the classes' fixed identities
(``task_params["classes"]``); the network's own N-way head is zero and never trained, so
fine-tuning starts from chance and its first step builds a prototype-like head. The class head
is a meta-parameter kept in the training state only: the weights stay the plain N-way network.
"""

from __future__ import annotations

import math

import torch

from ..tasks import EpisodeFamily, TaskBatch, TaskFamily
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, Params, task_accuracy, task_losses

CLASS_HEAD = "pretrain_head"   # training-state names: pretrain_head.weight [C, F], pretrain_head.bias [C]
HEAD_SEED_OFFSET = 2           # the network takes seed + 1


class Pretrain(Algorithm):
    """Minimise the mean loss over every point of every task (support and query together); on
    episode families, the cross-entropy over the meta-train classes through the class head (so the
    meta-loss starts near log C, C classes, not log N).

    The per-step losses come from fine-tuning a detached copy exactly as evaluation does (on
    episodes from the zero N-way head), so its curves are comparable with MAML's.
    """

    needs_inner_graph = False   # per-step batch-norm sets would never be trained

    def __init__(self, spec, net, kind: str):
        super().__init__(spec, net, kind)
        self.class_head: Params = {}                # episode families only (see the module docstring)
        self._class_row: torch.Tensor | None = None   # episode class id -> row of the class head

    def start_training(self, family: TaskFamily, params: Params, seed: int) -> Params:
        """Episode families: zero the N-way head and make the class head over the meta-train classes."""
        if not isinstance(family, EpisodeFamily):
            return {}
        ids = torch.tensor(family.sampler.classes("train"), dtype=torch.long)
        weight_name, bias_name = self.net.head_names
        weight = params[weight_name]
        with torch.no_grad():
            weight.zero_()
            params[bias_name].zero_()
        rows = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long)
        rows[ids] = torch.arange(len(ids))
        self._class_row = rows.to(weight.device)
        features = weight.shape[-1]
        generator = torch.Generator().manual_seed(seed + HEAD_SEED_OFFSET)

        def uniform(*shape):   # nn.Linear's initialisation
            t = (torch.rand(shape, generator=generator, dtype=weight.dtype) * 2 - 1) / math.sqrt(features)
            return t.to(weight.device).requires_grad_(True)

        self.class_head = {"weight": uniform(len(ids), features), "bias": uniform(len(ids))}
        return {f"{CLASS_HEAD}.{k}": v for k, v in self.class_head.items()}

    def untrained(self) -> set[str]:
        """The zero N-way head of an episode family's network: the class head is trained instead."""
        return set(self.net.head_names) if self.class_head else set()

    def meta_step(self, params: Params, rates: InnerRates, batch: TaskBatch, iteration: int) -> MetaStepResult:
        fwd, kind = self.net.forward, self.kind
        x = torch.cat([batch.support_x, batch.query_x], 1)
        y = torch.cat([batch.support_y, batch.query_y], 1)
        if self.class_head:
            loss = self._class_loss(params, x, y, batch.task_params["classes"])
        else:
            loss = task_losses(fwd(params, x), y, kind).mean()
        loss.backward()
        losses, accs = [], []
        with torch.no_grad():
            for p in self.adapt(params, rates, batch.support_x, batch.support_y, self.spec.inner_steps):
                out = fwd(p, batch.query_x)
                losses.append(task_losses(out, batch.query_y, kind).mean())
                if kind == "classification":
                    accs.append(task_accuracy(out, batch.query_y).mean())
        return MetaStepResult(loss.detach(), torch.stack(losses), torch.stack(accs) if accs else None)

    def _class_loss(self, params: Params, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over every meta-train class: the network's body with the class head in place
        of its N-way head (the head is a plain linear layer, so any network's forward does it)."""
        weight_name, bias_name = self.net.head_names
        body = {**params, weight_name: self.class_head["weight"], bias_name: self.class_head["bias"]}
        target = self._class_row[classes.gather(1, y)]   # episode label -> class id -> head row
        return task_losses(self.net.forward(body, x), target, "classification").mean()
