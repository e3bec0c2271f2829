"""Small builders shared by the engine tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util

import torch

from core.config import ExperimentConfig, FamilySpec


def tiny_config(family: str = "sinusoid", algorithm: str = "maml", steps: int = 1, hidden=(8, 8), activation="relu",
                meta_batch: int = 4, shots: int = 5, query: int = 7, inner_lr: float = 0.05, seed: int = 0,
                params=None) -> ExperimentConfig:
    return (ExperimentConfig(family=FamilySpec(family, params or {}))
            .replace("model", hidden=tuple(hidden), activation=activation)
            .replace("algorithm", name=algorithm, inner_steps=steps, inner_lr=inner_lr)
            .replace("train", meta_batch=meta_batch, shots=shots, query=query, seed=seed, device="cpu"))


def max_rel_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Max absolute difference relative to the reference's largest entry (at least 1)."""
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def engine_and_loop(trainer, algorithm: str, steps: int, classification: bool, inner_lr: float, adapt_names=None):
    """One meta-step of ``trainer``'s engine and the plain per-task autograd loop on the same batch:
    ``(engine meta-loss, engine gradients, loop meta-loss, loop gradients)``; learned rates' gradients are
    keyed ``inner_lr.<name>``. Meta-SGD's rates are drawn at random first, so a wrong broadcast would show."""
    from core.algorithms.reference import loop_meta_gradient

    if algorithm == "metasgd":
        with torch.no_grad():
            for t in trainer.rates.tensors.values():
                t.uniform_(0.01, 0.1)
    batch = trainer.sample_batch()
    trainer.optimizer.zero_grad()
    result = trainer.algorithm.meta_step(trainer.params, trainer.rates, batch, 0)
    engine = {n: p.grad.clone() if p.grad is not None else torch.zeros_like(p) for n, p in trainer.params.items()}
    engine.update({f"inner_lr.{n}": t.grad.clone() for n, t in trainer.rates.tensors.items()})
    rates = dict(trainer.rates.tensors) or inner_lr
    loss, ref = loop_meta_gradient(trainer.net.module(), trainer.params, batch, steps, rates,
                                   first_order=algorithm == "fomaml", classification=classification,
                                   adapt_names=adapt_names)
    return result.meta_loss, engine, loss, ref


def diverge_after(monkeypatch, iterations: int) -> None:
    """Make meta-training (not the pretrain baseline) raise ``TrainingDiverged`` once ``iterations`` are done."""
    from core.errors import TrainingDiverged
    from core.training.trainer import MetaTrainer

    original = MetaTrainer.step

    def diverging(self, batch=None):
        if self.iteration >= iterations and self.config.algorithm.name != "pretrain":
            raise TrainingDiverged(f"the meta-loss became nan at iteration {self.iteration + 1}")
        return original(self, batch)

    monkeypatch.setattr(MetaTrainer, "step", diverging)


def pretend_installed(monkeypatch, packages: dict[str, bool]) -> None:
    """Make ``importlib.util.find_spec`` answer for the named top-level packages as ``packages`` says
    (installed or not), whatever this Python actually has, so a test sets up exactly the situation it
    checks. Other names get the real answer."""
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        top = name.split(".")[0]
        if top not in packages:
            return real(name, *args, **kwargs)
        return importlib.machinery.ModuleSpec(name, None) if packages[top] else None

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def copy_as_crashed(source, target) -> None:
    """Copy a project or run folder as a process killed now leaves it: its locks name a dead process."""
    import json
    import shutil
    import socket
    from pathlib import Path

    shutil.copytree(source, target)
    for lock in Path(target).rglob(".lock"):
        lock.write_text(json.dumps({"pid": 999_999_999, "host": socket.gethostname(),
                                    "started": "2026-01-01T00:00:00", "command": "killed"}))


def assert_finite_differences(leaves: dict, analytic: dict, loss, per_tensor: int, seed: int,
                              eps: float = 1e-6, tolerance: float = 1e-6) -> None:
    """Central differences of ``loss()`` at ``per_tensor`` random elements of every leaf tensor agree
    with the ``analytic`` gradient within ``tolerance`` (relative, at least absolute): float64 checks."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    for name, leaf in leaves.items():
        for _ in range(per_tensor):
            i = int(torch.randint(leaf.numel(), (1,), generator=gen))
            with torch.no_grad():
                leaf.view(-1)[i] += eps
            up = loss()
            with torch.no_grad():
                leaf.view(-1)[i] -= 2 * eps
            down = loss()
            with torch.no_grad():
                leaf.view(-1)[i] += eps
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - float(analytic[name].view(-1)[i])) <= tolerance * max(1.0, abs(numeric)), (name, i)


def spawn_two_ranks(worker, folder, monkeypatch) -> None:
    """Run ``worker(rank, folder)`` in two processes joined as one torch.distributed group (a local
    TCP store, as torchrun's agent would give them); returns when both have finished."""
    store = torch.distributed.TCPStore("127.0.0.1", 0, is_master=True, wait_for_workers=False)
    for name, value in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(store.port), "WORLD_SIZE": "2",
                        "TORCHELASTIC_USE_AGENT_STORE": "True"}.items():
        monkeypatch.setenv(name, value)
    torch.multiprocessing.spawn(worker, args=(str(folder),), nprocs=2, join=True)
