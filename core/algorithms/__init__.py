"""Algorithm registry: the config names an algorithm, this builds it."""

from __future__ import annotations

from ..config import AlgorithmSpec
from .base import Algorithm, MetaStepResult
from .inner import InnerRates, fine_tune, inner_step, start, task_accuracy, task_losses
from .maml import ANIL, FOMAML, MAML, MAMLPlusPlus, MetaSGD
from .pretrain import Pretrain
from .reptile import Reptile

ALGORITHM_CLASSES: dict[str, type[Algorithm]] = {
    "maml": MAML, "fomaml": FOMAML, "metasgd": MetaSGD, "mamlpp": MAMLPlusPlus,
    "anil": ANIL, "reptile": Reptile, "pretrain": Pretrain,
}

TITLES = {
    "maml": "MAML (second order)", "fomaml": "First-order MAML", "metasgd": "Meta-SGD", "mamlpp": "MAML++",
    "anil": "ANIL", "reptile": "Reptile", "pretrain": "Pretrain (baseline)",
}


def build_algorithm(spec: AlgorithmSpec, net, kind: str) -> Algorithm:
    return ALGORITHM_CLASSES[spec.name](spec, net, kind)


__all__ = ["ALGORITHM_CLASSES", "TITLES", "Algorithm", "InnerRates", "MetaStepResult", "fine_tune",
           "build_algorithm", "inner_step", "start", "task_accuracy", "task_losses"]
