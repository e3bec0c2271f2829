"""Small configs and fast worker options shared by the window tests (fixtures: conftest.py)."""

from __future__ import annotations

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from maml_gui.jobs.training import WorkerOptions

OPTIONS = WorkerOptions(eval_tasks=8, inspect_interval=0.5)


def tiny(iterations: int = 1_000_000, family: str = "sinusoid", hidden=(8,), **family_params) -> ExperimentConfig:
    return ExperimentConfig(family=FamilySpec(family, family_params), model=ModelSpec(hidden=tuple(hidden)),
                            train=TrainSpec(meta_batch=2, shots=5, query=5, iterations=iterations))
