"""1-D regression families: each task is a function drawn from a parametric family.

Subclasses only say how to draw task parameters and evaluate the function; sampling the
inputs, the noise and the support/query split is shared, so every family behaves alike.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import ParamField, TaskBatch, TaskFamily

X_RANGE = ParamField("x_range", "x range", "range", [-5.0, 5.0], help="inputs are drawn uniformly from this interval")
NOISE = ParamField("noise", "noise std", "float", 0.0, 0.0, 100.0, help="standard deviation of Gaussian noise added to targets")


class FunctionFamily(TaskFamily):
    """A family ``y = f(x; params)`` with each parameter drawn uniformly from its range."""

    kind = "regression"

    @property
    def x_range(self) -> tuple[float, float]:
        low, high = self.params["x_range"]
        return float(low), float(high)

    def uniform_params(self, n_tasks: int) -> list[tuple[str, tuple[float, float], tuple[int, ...]]]:
        """The latent parameters, in drawing order: ``(name, (low, high), shape)``, each drawn
        uniformly (``[T]``, or ``[T, P]``)."""
        raise NotImplementedError

    def function(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Evaluate the true functions at ``x [T, N, 1]`` -> ``[T, N, 1]``."""
        raise NotImplementedError

    @property
    def draws_once(self) -> bool:
        """Whether a batch is one ``torch.rand`` call (no noise draw after it): then consecutive
        batches are consecutive slices of one stream, which :class:`~core.tasks.stream.TaskStream`
        draws many batches at a time."""
        return not self.params["noise"] > 0

    def batch_numbers(self, n_tasks: int, shots: int, query: int) -> int:
        """How many uniform numbers one batch draws (see :meth:`draws_once`)."""
        return sum(math.prod(shape) for *_, shape in self.uniform_params(n_tasks)) + n_tasks * (shots + query)

    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        numbers = torch.rand(self.batch_numbers(n_tasks, shots, query), generator=generator)
        scale, low = self.uniform_ranges(n_tasks, len(numbers))
        return self.from_uniform(numbers.mul_(scale).add_(low), n_tasks, shots, query, generator)

    def uniform_ranges(self, n_tasks: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-number ``(high - low, low)`` of one batch's ``count`` uniform numbers (the parameters
        first, then the inputs): ``u * scale + low`` scales any number of batches in two ops, to the
        same numbers as scaling each part on its own."""
        parts = [(math.prod(shape), lo, hi) for _, (lo, hi), shape in self.uniform_params(n_tasks)]
        parts.append((count - sum(n for n, *_ in parts), *self.params["x_range"]))
        scale = torch.cat([torch.full((n,), float(hi) - float(lo)) for n, lo, hi in parts])
        low = torch.cat([torch.full((n,), float(lo)) for n, lo, _ in parts])
        return scale, low

    def from_uniform(self, numbers: torch.Tensor, n_tasks: int, shots: int, query: int,
                     generator: torch.Generator | None = None) -> TaskBatch:
        """A batch from its uniform numbers scaled by :meth:`uniform_ranges`: the parameters first, then the inputs.

        Why one draw: a batch used to be a dozen small torch calls, which at ~0.5 ms per compiled
        meta-step was a fifth of the iteration; the numbers are the same as drawing each in turn
        (the generator's stream is sequential). ``generator`` draws the noise, if any."""
        params, at = {}, 0
        for name, _, shape in self.uniform_params(n_tasks):
            size = math.prod(shape)
            params[name] = numbers[at:at + size].view(shape)
            at += size
        x = numbers[at:].view(n_tasks, shots + query, 1)
        y = self.function(params, x)
        if self.params["noise"] > 0:
            y = y + self.params["noise"] * torch.randn(y.shape, generator=generator)
        (support_x, query_x), (support_y, query_y) = x.split((shots, query), 1), y.split((shots, query), 1)
        return TaskBatch(support_x, support_y, query_x, query_y, params)


def _col(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``[T] -> [T, 1, 1]`` so a per-task scalar broadcasts over the points ``x``."""
    t = t.reshape(-1, 1, 1)
    return t if t.dtype == x.dtype and t.device == x.device else t.to(x)


class SinusoidFamily(FunctionFamily):
    name, title = "sinusoid", "Sinusoid  A·sin(x − φ)"
    fields = (
        ParamField("amplitude", "amplitude A", "range", [0.1, 5.0], help="per-task amplitude"),
        ParamField("phase", "phase φ", "range", [0.0, math.pi], help="per-task phase shift"),
        X_RANGE, NOISE,
    )

    def uniform_params(self, n):
        return [("amplitude", self.params["amplitude"], (n,)), ("phase", self.params["phase"], (n,))]

    def function(self, p, x):
        return _col(p["amplitude"], x) * torch.sin(x - _col(p["phase"], x))


class LinearFamily(FunctionFamily):
    name, title = "linear", "Linear  a·x + b"
    fields = (
        ParamField("slope", "slope a", "range", [-3.0, 3.0]),
        ParamField("intercept", "intercept b", "range", [-3.0, 3.0]),
        X_RANGE, NOISE,
    )

    def uniform_params(self, n):
        return [("slope", self.params["slope"], (n,)), ("intercept", self.params["intercept"], (n,))]

    def function(self, p, x):
        return _col(p["slope"], x) * x + _col(p["intercept"], x)


class PolynomialFamily(FunctionFamily):
    name, title = "polynomial", "Polynomial  Σ cᵢ·xⁱ"
    fields = (
        ParamField("degree", "degree", "int", 3, 0, 10, help="highest power of x"),
        ParamField("coefficient", "coefficient range", "range", [-1.0, 1.0], help="each coefficient cᵢ is drawn from this range"),
        ParamField("x_range", "x range", "range", [-2.0, 2.0], help="inputs are drawn uniformly from this interval"),
        NOISE,
    )

    def uniform_params(self, n):
        return [("coefficients", self.params["coefficient"], (n, self.params["degree"] + 1))]

    def function(self, p, x):
        coeffs = p["coefficients"].to(x)
        powers = x ** torch.arange(coeffs.shape[1], device=x.device, dtype=x.dtype)  # [T, N, D+1]
        return (powers * coeffs[:, None, :]).sum(-1, keepdim=True)


class StepFamily(FunctionFamily):
    name, title = "step", "Square wave  ±A"
    fields = (
        ParamField("amplitude", "amplitude A", "range", [0.5, 2.0]),
        ParamField("period", "period", "range", [2.0, 6.0], 0.01, None),
        ParamField("phase", "phase (fraction of period)", "range", [0.0, 1.0]),
        X_RANGE, NOISE,
    )

    def uniform_params(self, n):
        return [(k, self.params[k], (n,)) for k in ("amplitude", "period", "phase")]

    def function(self, p, x):
        cycle = torch.remainder(x / _col(p["period"], x) + _col(p["phase"], x), 1.0)
        amplitude = _col(p["amplitude"], x)
        return torch.where(cycle < 0.5, amplitude, -amplitude)


class FormulaFamily(FunctionFamily):
    """A family the user writes, e.g. ``a*sin(b*x + c)``; parsed by a whitelisted evaluator, never ``eval``."""

    name, title = "formula", "Formula (your own)"
    fields = (
        ParamField("expression", "formula f(x)", "formula", "a*sin(b*x + c)",
                   help="an expression in x and named parameters; functions: sin cos exp log sqrt abs tanh …"),
        ParamField("ranges", "parameter ranges", "ranges", {"a": [0.1, 5.0], "b": [0.5, 2.0], "c": [0.0, math.pi]}),
        X_RANGE, NOISE,
    )

    def _validate(self):
        from .formula import FormulaError, parse_formula

        try:
            self.formula = parse_formula(self.params["expression"])
        except FormulaError as exc:
            raise ConfigError("family.expression", str(exc)) from None
        ranges = self.params["ranges"]
        for name in self.formula.parameters:
            if name not in ranges:
                raise ConfigError(f"family.ranges.{name}", f"the formula uses '{name}': give it a range")
        for name in ranges:
            if name not in self.formula.parameters:
                raise ConfigError(f"family.ranges.{name}", f"'{name}' does not appear in the formula")
        probe = self.formula.evaluate(torch.linspace(*self.params["x_range"], 7).reshape(1, 7, 1),
                                      {k: torch.tensor([[[sum(v) / 2]]]) for k, v in ranges.items()})
        if tuple(probe.shape) not in ((1, 7, 1), (1, 1, 1), ()):
            raise ConfigError("family.expression", "the formula must give one number per x")

    def uniform_params(self, n):
        return [(k, v, (n,)) for k, v in self.params["ranges"].items()]

    def function(self, p, x):
        y = self.formula.evaluate(x, {k: _col(v, x) for k, v in p.items()})
        return torch.broadcast_to(y, x.shape).clone()
