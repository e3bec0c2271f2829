"""Settings named as the panels label them: ``family.amplitude`` reads "amplitude A", ``model.hidden``
"Hidden layers". The engine's errors name the dotted key (``ConfigError.field``) so a form can mark
the input; every message a person reads (banners, the status bar, the panel's own error text) goes
through :func:`readable` first, so none shows an internal key.

Qt-free: the family labels come from the families' own ``ParamField`` descriptions, the others are
the hyper-parameter panel's row labels, which it takes from here.
"""

from __future__ import annotations

import re

from core.envs import ENV_FAMILIES
from core.tasks import FAMILIES

# the rows of the model, algorithm and training groups, in the panel's words
LABELS = {
    "model.name": "Network", "model.hidden": "Hidden layers", "model.activation": "Activation",
    "model.conv_channels": "Conv channels", "model.conv_depth": "Conv blocks", "model.downsample": "Downsampling",
    "model.batch_norm": "Batch norm", "model.module": "Your module", "model.module_args": "Your module",
    "model.module_sha256": "Your module",
    "algorithm.name": "Algorithm", "algorithm.inner_steps": "Inner steps", "algorithm.inner_lr": "Inner learning rate",
    "algorithm.msl_iterations": "Loss annealing iterations",
    "algorithm.first_order_iterations": "First-order iterations",
    "train.meta_lr": "Meta learning rate", "train.meta_batch": "Meta-batch (tasks)", "train.shots": "Shots K (support)",
    "train.query": "Query examples", "train.iterations": "Iterations", "train.seed": "Seed", "train.device": "Device",
    "train.compile": "Compile",
    "rl.rollouts": "Trajectories per task", "rl.outer": "Outer step", "rl.gamma": "Discount γ",
    "rl.gae_lambda": "GAE λ", "rl.max_kl": "Max KL", "rl.later_inner_lr": "Later inner rate",
    "family": "Family", "family.name": "Family",
}
# a dotted key, or a bare "family:" (an error about the family as a whole); "the family" in prose stays
_KEY = re.compile(r"\b(?:(?:family|model|algorithm|train|rl)(?:\.[A-Za-z_]\w*){1,2}\b|family(?=:))")


def label(key: str, family: str | None = None) -> str | None:
    """The panel's label of a dotted setting (``family`` names the family shown, whose label wins
    when families label a field differently), or None for a key no panel shows."""
    if key in LABELS:
        return LABELS[key]
    section, _, rest = key.partition(".")
    if section != "family" or not rest:
        return None
    if rest.startswith("ranges."):
        return f"range of {rest[len('ranges.'):]}"
    families = {**FAMILIES, **ENV_FAMILIES}
    for cls in ([families[family]] if family in families else []) + list(families.values()):
        for f in cls.fields + getattr(cls, "data_fields", ()):
            if f.name == rest:
                return f.label
    return None


def readable(text: str, family: str | None = None) -> str:
    """``text`` with every known dotted key replaced by its label ("family.n_way: …" → "classes N
    (ways): …"); unknown words such as file names (``model.safetensors``) stay as they are."""
    return _KEY.sub(lambda m: label(m.group(0), family) or m.group(0), text)
