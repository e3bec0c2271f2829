"""The experiment as plain, frozen, JSON-round-trippable settings.

The window, the command line and a saved run all build the same family, model and
algorithm from one :class:`ExperimentConfig`, so nothing is configured in two places.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from .errors import ConfigError
from .ranges import MAX_ITERATIONS, MAX_POINTS, MAX_SEED
from .envs import ENV_FAMILIES, build_env_family, is_env_family
from .tasks import FAMILIES, build_family
from .tasks.spec import FamilySpec

FORMAT_VERSION = 1

ALGORITHMS = ("maml", "fomaml", "metasgd", "mamlpp", "anil", "reptile", "pretrain")
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "silu", "leaky_relu")
MODELS = ("mlp", "conv4")
DOWNSAMPLES = ("max", "stride")
BATCH_NORMS = ("batch", "per_step", "off")
DEVICES = ("auto", "cpu", "cuda", "mps")
COMPILE_MODES = ("off", "on", "auto")
RL_ALGORITHMS = ("maml", "fomaml", "pretrain")   # those an environment family trains with
OUTER_STEPS = ("trpo", "ppo")
LIVE_CHANGES = ("train.iterations", "train.meta_lr")        # a running run applies these at once
CONTINUE_CHANGES = (*LIVE_CHANGES, "train.device", "train.compile")   # a continued run (resume) may take these too


@dataclass(frozen=True)
class ModelSpec:
    """``name`` "mlp" uses ``hidden`` and ``activation``; "conv4" (the MAML paper's conv net, for
    image families) uses the ``conv_*`` fields, ``downsample`` ("max": 2×2 max-pool per block, the
    MiniImagenet net; "stride": stride-2 convolutions, the Omniglot net) and ``batch_norm``
    ("batch": statistics of each task's batch; "per_step": MAML++'s one scale/shift set per inner
    step; "off"). The fields of the other model are kept but unused."""

    hidden: tuple[int, ...] = (40, 40)
    activation: str = "relu"
    name: str = "mlp"
    conv_channels: int = 64
    conv_depth: int = 4
    downsample: str = "max"
    batch_norm: str = "batch"

    def validate(self) -> None:
        if self.name not in MODELS:
            raise ConfigError("model.name", f"unknown model {self.name!r}; choose one of {', '.join(MODELS)}")
        if not isinstance(self.conv_channels, int) or not 1 <= self.conv_channels <= 1024:
            raise ConfigError("model.conv_channels", "conv channels must be an integer in 1..1024")
        if not isinstance(self.conv_depth, int) or not 1 <= self.conv_depth <= 8:
            raise ConfigError("model.conv_depth", "conv depth must be an integer in 1..8")
        if self.downsample not in DOWNSAMPLES:
            raise ConfigError("model.downsample", f"unknown downsampling {self.downsample!r}; choose one of {', '.join(DOWNSAMPLES)}")
        if self.batch_norm not in BATCH_NORMS:
            raise ConfigError("model.batch_norm", f"unknown batch norm {self.batch_norm!r}; choose one of {', '.join(BATCH_NORMS)}")
        if not self.hidden or len(self.hidden) > 16:
            raise ConfigError("model.hidden", "give between 1 and 16 hidden layer sizes")
        for size in self.hidden:
            if not isinstance(size, int) or not 1 <= size <= 4096:
                raise ConfigError("model.hidden", f"layer size {size!r} must be an integer in 1..4096")
        if self.activation not in ACTIVATIONS:
            raise ConfigError("model.activation", f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}")


PER_STEP_ALGORITHMS = ("per-step batch norm needs an algorithm that differentiates through the inner loop "
                       "(maml, fomaml, metasgd, mamlpp, anil); use batch_norm \"batch\" with reptile or pretrain")


@dataclass(frozen=True)
class AlgorithmSpec:
    """The meta-learning algorithm and its inner loop.

    MAML++ knobs (only read by ``mamlpp``): ``msl_iterations`` anneals the multi-step loss
    weights toward the last step over that many iterations; ``first_order_iterations`` runs
    first-order before switching to second order; learned per-layer per-step rates are always on.
    """

    name: str = "maml"
    inner_steps: int = 1
    inner_lr: float = 0.01
    msl_iterations: int = 1000
    first_order_iterations: int = 500

    @property
    def first_order(self) -> bool:
        return self.name in ("fomaml", "reptile", "pretrain")

    def validate(self) -> None:
        if self.name not in ALGORITHMS:
            raise ConfigError("algorithm.name", f"unknown algorithm {self.name!r}; choose one of {', '.join(ALGORITHMS)}")
        if not isinstance(self.inner_steps, int) or not 1 <= self.inner_steps <= 100:
            raise ConfigError("algorithm.inner_steps", "inner steps must be an integer in 1..100")
        _positive("algorithm.inner_lr", self.inner_lr, upper=100.0)
        for name in ("msl_iterations", "first_order_iterations"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= MAX_ITERATIONS:
                raise ConfigError(f"algorithm.{name}", f"must be an integer in 0..{MAX_ITERATIONS}")


@dataclass(frozen=True)
class TrainSpec:
    """``compile``: run the meta-step through ``torch.compile`` ("on"), not ("off"), or when the
    run is long enough to pay for compiling ("auto"); see :mod:`core.training.compiled`."""

    meta_lr: float = 0.001
    meta_batch: int = 25
    shots: int = 10
    query: int = 10
    iterations: int = 70000
    seed: int = 0
    device: str = "auto"
    compile: str = "off"

    def validate(self) -> None:
        _positive("train.meta_lr", self.meta_lr, upper=10.0)
        for name, low, high in (("meta_batch", 1, 4096), ("shots", 1, MAX_POINTS), ("query", 1, MAX_POINTS),
                                ("iterations", 1, MAX_ITERATIONS)):
            value = getattr(self, name)
            if not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"train.{name}", f"{name} must be an integer in {low}..{high}")
        if not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise ConfigError("train.seed", f"seed must be an integer in 0..{MAX_SEED}")
        if self.device not in DEVICES:
            raise ConfigError("train.device", f"unknown device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.compile not in COMPILE_MODES:
            raise ConfigError("train.compile", f"unknown compile setting {self.compile!r}; choose one of {', '.join(COMPILE_MODES)}")


@dataclass(frozen=True)
class RLSpec:
    """Meta-RL settings, read only when the family is an environment family (the MAML paper's by
    default): ``rollouts`` trajectories per task for each inner step and for the meta-objective,
    discount ``gamma``, GAE's ``gae_lambda``; the outer step: ``"trpo"`` (conjugate gradient on the
    KL's Hessian, ``cg_iterations`` with ``cg_damping``, a backtracking line search by
    ``backtrack_ratio`` up to ``max_backtracks`` times, within ``max_kl``) or ``"ppo"`` (a clipped
    surrogate, ``ppo_epochs`` Adam steps at ``train.meta_lr`` with clip ``ppo_clip``). Evaluation adapts
    with ``algorithm.inner_lr`` for the first step and ``later_inner_lr`` after it (0: the same)."""

    rollouts: int = 20
    gamma: float = 0.99
    gae_lambda: float = 1.0
    outer: str = "trpo"
    max_kl: float = 0.01
    cg_iterations: int = 10
    cg_damping: float = 1e-5
    backtrack_ratio: float = 0.8
    max_backtracks: int = 15
    ppo_epochs: int = 5
    ppo_clip: float = 0.2
    later_inner_lr: float = 0.05

    def validate(self) -> None:
        for name, low, high in (("rollouts", 1, 100_000), ("cg_iterations", 1, 1000), ("max_backtracks", 0, 100),
                                ("ppo_epochs", 1, 1000)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"rl.{name}", f"{name.replace('_', ' ')} must be an integer in {low}..{high}")
        for name, low, high, closed in (("gamma", 0.0, 1.0, True), ("gae_lambda", 0.0, 1.0, True),
                                        ("max_kl", 0.0, 10.0, False), ("cg_damping", 0.0, 10.0, True),
                                        ("backtrack_ratio", 0.0, 1.0, False), ("ppo_clip", 0.0, 10.0, False),
                                        ("later_inner_lr", 0.0, 100.0, True)):
            value = getattr(self, name)
            ok = isinstance(value, (int, float)) and math.isfinite(value) and value <= high and \
                (low <= value if closed else low < value)
            if not ok:
                raise ConfigError(f"rl.{name}", f"{name.replace('_', ' ')} must be a number in "
                                                f"{'[' if closed else '('}{low:g}, {high:g}]")
        if self.backtrack_ratio >= 1.0:
            raise ConfigError("rl.backtrack_ratio", "backtrack ratio must be below 1")
        if self.outer not in OUTER_STEPS:
            raise ConfigError("rl.outer", f"unknown outer step {self.outer!r}; choose one of {', '.join(OUTER_STEPS)}")


@dataclass(frozen=True)
class ExperimentConfig:
    family: FamilySpec = field(default_factory=FamilySpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    algorithm: AlgorithmSpec = field(default_factory=AlgorithmSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    rl: RLSpec = field(default_factory=RLSpec)

    @property
    def is_rl(self) -> bool:
        """Whether the family is an environment family (meta-RL) rather than a task family."""
        return is_env_family(self.family.name)

    def validate(self, family=None):
        """Raise :class:`ConfigError` for the first invalid field, family included (``family``: the
        one this config's family spec built, when the caller holds it; else it is built here).
        Returns the family, for a caller that goes on to build the experiment."""
        self.model.validate()
        self.algorithm.validate()
        self.train.validate()
        if self.is_rl:
            self.rl.validate()
            if self.algorithm.name not in RL_ALGORITHMS:
                raise ConfigError("algorithm.name", f"{self.algorithm.name} does not train policies; for the "
                                                    f"{self.family.name} family choose one of {', '.join(RL_ALGORITHMS)}")
            if self.model.name != "mlp":
                raise ConfigError("model.name", "a policy is an MLP; conv4 is for image families")
            return family if family is not None else build_env_family(self.family)
        if self.model.name == "conv4" and self.model.batch_norm == "per_step" and self.algorithm.name in ("reptile", "pretrain"):
            raise ConfigError("model.batch_norm", PER_STEP_ALGORITHMS)
        family = family if family is not None else build_family(self.family)
        family.check_sizes(self.train.shots, self.train.query)
        return family

    def replace(self, section: str, **changes: Any) -> "ExperimentConfig":
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **changes)})

    def changes(self, other: "ExperimentConfig") -> list[str]:
        """Dotted names of the settings that differ from ``other``'s (``family.name``, or each
        ``family.<param>`` with the family's unstated defaults filled in, then ``model.hidden`` …)."""
        if self.family.name != other.family.name:
            names = ["family.name"]
        else:
            mine, theirs = self._family_params(), other._family_params()
            names = [f"family.{k}" for k in sorted(set(mine) | set(theirs)) if k not in mine or k not in theirs
                     or mine[k] != theirs[k]]
        for section in ("model", "algorithm", "train", *(("rl",) if self.is_rl or other.is_rl else ())):
            a, b = getattr(self, section), getattr(other, section)
            names += [f"{section}.{f.name}" for f in dataclasses.fields(a) if getattr(a, f.name) != getattr(b, f.name)]
        return names

    def continue_changes(self, previous: "ExperimentConfig") -> list[str]:
        """What forbids this config from continuing a run of ``previous`` exactly (its Adam state and
        task stream): every changed setting but those in :data:`CONTINUE_CHANGES`."""
        return [name for name in self.changes(previous) if name not in CONTINUE_CHANGES]

    def live_changes(self, running: "ExperimentConfig") -> list[str]:
        """What a run of ``running`` cannot take while it trains (it needs a new run): every changed
        setting but those in :data:`LIVE_CHANGES`."""
        return [name for name in self.changes(running) if name not in LIVE_CHANGES]

    def _family_params(self) -> dict[str, Any]:
        family = FAMILIES.get(self.family.name) or ENV_FAMILIES.get(self.family.name)
        fields = (*family.fields, *getattr(family, "data_fields", ())) if family is not None else ()
        params = {f.name: f.default for f in fields}   # a setting left out means its default
        params.update(self.family.params)
        return _jsonable(params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "family": {"name": self.family.name, "params": _jsonable(dict(self.family.params))},
            "model": {**dataclasses.asdict(self.model), "hidden": list(self.model.hidden)},
            "algorithm": dataclasses.asdict(self.algorithm),
            "train": dataclasses.asdict(self.train),
            **({"rl": dataclasses.asdict(self.rl)} if self.is_rl else {}),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ExperimentConfig":
        if not isinstance(data, Mapping):
            raise ConfigError("", "an experiment must be a JSON object")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ConfigError("format_version", f"this file has format version {version!r}; this app reads up to {FORMAT_VERSION}: update the app")
        unknown = set(data) - {"format_version", "family", "model", "algorithm", "train", "rl"}
        if unknown:
            raise ConfigError(sorted(unknown)[0], "unknown section")
        fam = _section(data, "family")
        name, params = fam.get("name", "sinusoid"), fam.get("params", {})
        if not isinstance(name, str):
            raise ConfigError("family.name", f"expected the family's name as text, got {name!r}")
        if params is None:
            params = {}
        if not isinstance(params, Mapping):
            raise ConfigError("family.params", f"expected a JSON object of settings, got {_short(params)}")
        family = FamilySpec(name=name, params=dict(params))
        model = _build(ModelSpec, _section(data, "model"), "model")
        if not isinstance(model.hidden, tuple):
            model = dataclasses.replace(model, hidden=tuple(model.hidden))
        return cls(family, model, _build(AlgorithmSpec, _section(data, "algorithm"), "algorithm"),
                   _build(TrainSpec, _section(data, "train"), "train"), _build(RLSpec, _section(data, "rl"), "rl"))

    @classmethod
    def from_json(cls, text: str) -> "ExperimentConfig":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError("", f"not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
        return cls.from_dict(data)


def _section(data: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, Mapping):
        raise ConfigError(name, "must be a JSON object")
    return value


def _build(kind: type, values: Mapping[str, Any], section: str):
    """Build a spec dataclass, checking names and primitive types so a typo is named, not ignored."""
    fields = {f.name: f for f in dataclasses.fields(kind)}
    defaults = kind()
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{section}.{key}", "unknown setting")
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif expected is tuple and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise ConfigError(f"{section}.{key}", f"expected {expected.__name__}, got {_short(value)}")
        kwargs[key] = value
    return kind(**kwargs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "…"


def _positive(name: str, value: Any, upper: float) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= upper:
        raise ConfigError(name, f"must be a number in (0, {upper}]")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def default_rl_config(family: str) -> ExperimentConfig:
    """The MAML paper's 2-D navigation settings, for a run on environment family ``family``: a Gaussian
    policy with 2 hidden layers of 100 ReLU units, one inner step of 0.1, meta-batch 20, TRPO."""
    return ExperimentConfig(FamilySpec(family), ModelSpec(hidden=(100, 100), activation="relu"),
                            AlgorithmSpec(name="maml", inner_steps=1, inner_lr=0.1),
                            TrainSpec(meta_batch=20, iterations=500, meta_lr=0.001), RLSpec())
