"""Which trainer, family and scoring model a configuration uses: the meta-RL ones for an environment
family, the supervised ones otherwise. Both kinds step, save, score (``adaptation``) and preview alike,
so the window's worker and jobs take either through these few functions."""

from __future__ import annotations

from core.config import ExperimentConfig
from core.envs import build_any_family
from core.rl.inspector import RLInspector
from core.rl.trainer import RLTrainer
from core.trained.loaded_model import LoadedModel
from core.training.trainer import MetaTrainer


def family_of(config: ExperimentConfig):
    """The task family, or the environment family of a meta-RL run (raises ConfigError naming the field)."""
    return build_any_family(config.family)


def trainer_for(config: ExperimentConfig, family=None):
    """A :class:`RLTrainer` for an environment family, else a :class:`MetaTrainer`."""
    return RLTrainer(config, family) if config.is_rl else MetaTrainer(config, family)


def inspector_of(trainer):
    """What scores and previews ``trainer``'s live weights (no copies)."""
    return RLInspector.of_trainer(trainer) if isinstance(trainer, RLTrainer) else LoadedModel.of_trainer(trainer)


def model_for(config: ExperimentConfig, weights, family=None, iteration: int = 0):
    """Saved weights (a fresh initialisation without them) ready to score and preview."""
    if config.is_rl:
        return RLInspector.of_weights(config, weights, iteration)
    return LoadedModel(config, weights, family, iteration=iteration)
