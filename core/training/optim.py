"""Adam for the meta-parameters, one fused kernel per step.

``torch.optim.Adam(fused=True)`` runs the same kernel, but at meta-learning sizes (a few small
tensors, hundreds of steps a second) its per-step Python bookkeeping costs more than the math.
The state layout matches ``torch.optim.Adam.state_dict()`` so checkpoints read the same way.
"""

from __future__ import annotations

from typing import Iterable

import torch


class MetaAdam:
    def __init__(self, params: Iterable[torch.Tensor], lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = list(params)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        fused = getattr(torch, "_fused_adam_", None)
        self._fused = fused if fused is not None and all(p.device.type in ("cpu", "cuda") for p in self.params) else None

    @property
    def param_groups(self) -> list[dict]:
        """Read-only view for code written against torch optimisers."""
        return [{"lr": self.lr, "betas": self.betas, "eps": self.eps}]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        params = [self.params[i] for i in live]
        grads = [self.params[i].grad for i in live]
        m, v, steps = [self.exp_avg[i] for i in live], [self.exp_avg_sq[i] for i in live], [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        beta1, beta2 = self.betas
        if self._fused is not None:
            self._fused(params, grads, m, v, [], steps, lr=self.lr, beta1=beta1, beta2=beta2, weight_decay=0.0,
                        eps=self.eps, amsgrad=False, maximize=False)
            return
        for p, g, a, b, s in zip(params, grads, m, v, steps):  # portable path (e.g. MPS)
            t = float(s)
            a.lerp_(g, 1 - beta1)
            b.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            denom = (b / (1 - beta2 ** t)).sqrt_().add_(self.eps)
            p.addcdiv_(a, denom, value=-self.lr / (1 - beta1 ** t))

    @torch.no_grad()
    def traced_step(self, apply: torch.Tensor, lr: torch.Tensor) -> None:
        """The same Adam step as plain tensor ops, for a compiled meta-step to fuse into its last
        kernels (inductor has no kernel for ``_fused_adam_``; as a separate call it is a twentieth of
        a compiled sinusoid iteration). ``apply`` (0-d bool) false leaves every tensor as it was, so
        a non-finite meta-gradient never reaches the weights; ``lr`` is a tensor so changing it
        does not recompile."""
        beta1, beta2 = self.betas
        for p, m, v, s in zip(self.params, self.exp_avg, self.exp_avg_sq, self.steps):
            g = p.grad
            if g is None:
                continue
            step = s + 1
            new_m = m.lerp(g, 1 - beta1)
            new_v = v * beta2 + (1 - beta2) * g * g
            denom = new_v.sqrt() / (1 - beta2 ** step).sqrt() + self.eps
            new_p = p - (lr / (1 - beta1 ** step)) * new_m / denom
            for old, new in ((p, new_p), (m, new_m), (v, new_v), (s, step)):
                old.copy_(torch.where(apply, new, old))

    def state_dict(self) -> dict:
        state = {i: {"step": self.steps[i], "exp_avg": self.exp_avg[i], "exp_avg_sq": self.exp_avg_sq[i]}
                 for i in range(len(self.params)) if float(self.steps[i]) > 0}
        return {"state": state, "param_groups": self.param_groups}

    def load_state_dict(self, state: dict) -> None:
        with torch.no_grad():
            for i, slots in state["state"].items():
                self.steps[int(i)].copy_(torch.as_tensor(slots["step"]))
                self.exp_avg[int(i)].copy_(slots["exp_avg"])
                self.exp_avg_sq[int(i)].copy_(slots["exp_avg_sq"])
