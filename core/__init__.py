"""MAML Explorer's engine: task families, models, meta-learning algorithms, training, evaluation.

Pure torch + numpy; nothing here imports Qt, so it runs headless and in tests without a display.
"""

from .config import AlgorithmSpec, ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from .errors import CheckpointError, ConfigError, MamlError, TrainingDiverged

__version__ = "0.1.0"

__all__ = ["AlgorithmSpec", "CheckpointError", "ConfigError", "ExperimentConfig", "FamilySpec", "MamlError",
           "ModelSpec", "TrainSpec", "TrainingDiverged", "__version__"]
