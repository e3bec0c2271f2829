"""What every task family shares: the batch it returns and the form fields that describe it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import numpy as np
import torch

from .spec import FamilySpec
from ..errors import ConfigError


@dataclass
class TaskBatch:
    """A meta-batch of ``T`` tasks: support ``[T, K, D]`` / ``[T, K, O]`` and query ``[T, Q, ...]``.

    Classification targets are integer labels ``[T, N]``. ``task_params`` keeps the latent
    parameters of generated tasks so a view can draw each task's true function.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    task_params: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_tasks(self) -> int:
        return self.support_x.shape[0]

    def to(self, device: torch.device | str) -> "TaskBatch":
        return TaskBatch(self.support_x.to(device), self.support_y.to(device), self.query_x.to(device),
                         self.query_y.to(device), {k: v.to(device) for k, v in self.task_params.items()})


@dataclass(frozen=True)
class ParamField:
    """One editable family setting, described so a form can be built without knowing the family.

    ``kind`` is one of ``range`` (a ``[low, high]`` pair), ``float``, ``int``, ``formula`` (text)
    or ``ranges`` (a mapping of name to ``[low, high]``, used by the formula family); data families'
    ``data_fields`` also use ``path`` (text), ``bool``, ``fractions`` ([train, validation, test]),
    ``column`` (a name or None) and ``columns`` (a list of names or None).
    """

    name: str
    label: str
    kind: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


class TaskFamily:
    """Base class: merges user params over the defaults, validates them, samples batches.

    Every family answers the same questions (held-out tasks, normalization, warnings, x range),
    with defaults for generated families, so no caller has to ask which family it holds.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    kind: ClassVar[str] = "regression"
    fields: ClassVar[tuple[ParamField, ...]] = ()
    data_fields: ClassVar[tuple[ParamField, ...]] = ()  # settings the generic form does not show (files, switches)
    tabular: ClassVar[bool] = False          # tasks are rows of files: task_points(), features, target (CsvFamily)
    input_dim: int = 1
    output_dim: int = 1
    input_shape: tuple[int, int, int] | None = None   # (C, H, W) for image families (input_dim = C·H·W), else None
    features: list[str] | None = None        # input column names, where the data has them
    target: str | None = None                # the target column's name, likewise
    normalization: dict[str, Any] | None = None  # statistics the inputs (and target) were standardized with

    def __init__(self, params: Mapping[str, Any] | None = None):
        self.params: dict[str, Any] = checked_params(self.name, self.fields + self.data_fields, params)
        self._validate()

    def _validate(self) -> None:
        """Cross-field checks; subclasses override."""

    def spec(self) -> FamilySpec:
        return FamilySpec(self.name, {k: _copy(v) for k, v in self.params.items()})

    def check_sizes(self, shots: int, query: int) -> None:
        """Raise if a task cannot provide ``shots`` support and ``query`` query points."""

    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        raise NotImplementedError

    def sample_held_out(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        """Meta-test tasks. A generated family draws them like training tasks (the caller's generator
        keeps them off the training stream); a data family draws from its meta-test split."""
        return self.sample(n_tasks, shots, query, generator)

    def held_out_query(self, shots: int, query: int, cap: int = 100) -> int:
        """Query points per held-out task: ``query`` where tasks can give any number; a data family's
        tasks differ in size, so it gives what all of them can (at most ``cap``) instead."""
        return query

    @property
    def warnings(self) -> list[str]:
        """Things worth telling the user that did not stop the family from loading."""
        return []

    @property
    def x_range(self) -> tuple[float, float] | None:
        """The input interval of a 1-D family whose tasks are known functions (:meth:`function`)."""
        return None

    def function(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """The true functions of tasks drawn with latent ``params``, where :attr:`x_range` is set."""
        raise NotImplementedError(f"the {self.name} family has no known task functions")

    def normalize_x(self, x: np.ndarray) -> np.ndarray:
        """Inputs in the file's units -> what the network sees (identity without :attr:`normalization`)."""
        return np.asarray(x, dtype=np.float64)

    def normalize_y(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def denormalize_y(self, y: np.ndarray) -> np.ndarray:
        """Network outputs back in the target's own units."""
        return np.asarray(y, dtype=np.float64)

    @property
    def metric(self) -> str:
        return "accuracy" if self.kind == "classification" else "mse"


def uniform(low: float, high: float, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator)


def checked_params(family: str, fields: tuple[ParamField, ...], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """``params`` over the defaults of ``fields``, each checked (one rule for task and environment
    families); raises :class:`ConfigError` naming the field."""
    params = dict(params or {})
    known = {f.name for f in fields}
    for key in params:
        if key not in known:
            raise ConfigError(f"family.{key}", f"unknown setting for the {family} family")
    merged = {f.name: _copy(f.default) for f in fields}
    merged.update(params)
    return {f.name: _check_field(f, merged[f.name]) for f in fields}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copy(v) for v in value]
    return value


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(name, f"{value!r} is not a finite number")
    return float(value)


def check_range(name: str, value: Any, minimum: float | None = None, maximum: float | None = None) -> list[float]:
    """Validate a ``[low, high]`` pair, naming the field in the error."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(name, "expected a [low, high] pair")
    low, high = _number(name, value[0]), _number(name, value[1])
    if low > high:
        raise ConfigError(name, f"min {low:g} is larger than max {high:g}")
    if minimum is not None and low < minimum:
        raise ConfigError(name, f"min must be at least {minimum:g}")
    if maximum is not None and high > maximum:
        raise ConfigError(name, f"max must be at most {maximum:g}")
    return [low, high]


def _check_field(f: ParamField, value: Any) -> Any:
    name = f"family.{f.name}"
    if f.kind == "range":
        return check_range(name, value, f.minimum, f.maximum)
    if f.kind in ("float", "int"):
        number = _number(name, value)
        if f.kind == "int":
            if number != int(number):
                raise ConfigError(name, f"{value!r} is not an integer")
            number = int(number)
        if f.minimum is not None and number < f.minimum or f.maximum is not None and number > f.maximum:
            raise ConfigError(name, f"must be between {f.minimum:g} and {f.maximum:g}")
        return number
    if f.kind == "formula":
        if not isinstance(value, str):
            raise ConfigError(name, "expected text")
        return value
    if f.kind in ("path", "column", "columns", "bool", "fractions"):
        return _check_data_field(name, f.kind, value)
    if f.kind == "ranges":
        if not isinstance(value, Mapping):
            raise ConfigError(name, "expected a mapping of parameter name to [low, high]")
        return {str(k): check_range(f"{name}.{k}", v) for k, v in value.items()}
    raise AssertionError(f.kind)


def _check_data_field(name: str, kind: str, value: Any) -> Any:
    """The kinds of :attr:`TaskFamily.data_fields`: a path, a column (or None), switches, split fractions."""
    if kind == "path":
        if not isinstance(value, str):
            raise ConfigError(name, "expected a file or folder path")
        return value
    if kind == "column":
        if value is not None and (not isinstance(value, str) or not value):
            raise ConfigError(name, "expected a column name")
        return value
    if kind == "columns":
        if value is None or value == []:
            return None
        if not isinstance(value, (list, tuple)) or not all(isinstance(c, str) and c for c in value):
            raise ConfigError(name, "expected a list of column names")
        return list(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(name, "expected true or false")
        return value
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0
                       for v in value) or value[0] <= 0):
        raise ConfigError(name, "expected three fractions [train, validation, test], train > 0")
    if abs(sum(value) - 1.0) > 1e-6:
        raise ConfigError(name, f"the fractions must add up to 1 (they add up to {sum(value):g})")
    return [float(v) for v in value]
