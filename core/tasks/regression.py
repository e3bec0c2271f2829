"""1-D regression families: each task is a function drawn from a parametric family.

Subclasses only say how to draw task parameters and evaluate the function; sampling the
inputs, the noise and the support/query split is shared, so every family behaves alike.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
from .base import ParamField, TaskBatch, TaskFamily, uniform

X_RANGE = ParamField("x_range", "x range", "range", [-5.0, 5.0], help="inputs are drawn uniformly from this interval")
NOISE = ParamField("noise", "noise std", "float", 0.0, 0.0, 100.0, help="standard deviation of Gaussian noise added to targets")


class FunctionFamily(TaskFamily):
    """A family ``y = f(x; params)`` with each parameter drawn uniformly from its range."""

    kind = "regression"

    @property
    def x_range(self) -> tuple[float, float]:
        low, high = self.params["x_range"]
        return float(low), float(high)

    def sample_task_params(self, n_tasks: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Draw latent parameters, each ``[T]`` (or ``[T, P]``) on the CPU."""
        raise NotImplementedError

    def function(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """Evaluate the true functions at ``x [T, N, 1]`` -> ``[T, N, 1]``."""
        raise NotImplementedError

    def sample(self, n_tasks: int, shots: int, query: int, generator: torch.Generator) -> TaskBatch:
        params = self.sample_task_params(n_tasks, generator)
        low, high = self.params["x_range"]
        x = uniform(low, high, (n_tasks, shots + query, 1), generator)
        y = self.function(params, x)
        if self.params["noise"] > 0:
            y = y + self.params["noise"] * torch.randn(y.shape, generator=generator)
        return TaskBatch(x[:, :shots], y[:, :shots], x[:, shots:], y[:, shots:], params)


def _col(t: torch.Tensor) -> torch.Tensor:
    """``[T] -> [T, 1, 1]`` so a per-task scalar broadcasts over the points."""
    return t.reshape(-1, 1, 1).to(torch.get_default_dtype())


class SinusoidFamily(FunctionFamily):
    name, title = "sinusoid", "Sinusoid  A·sin(x − φ)"
    fields = (
        ParamField("amplitude", "amplitude A", "range", [0.1, 5.0], help="per-task amplitude"),
        ParamField("phase", "phase φ", "range", [0.0, math.pi], help="per-task phase shift"),
        X_RANGE, NOISE,
    )

    def sample_task_params(self, n, g):
        return {"amplitude": uniform(*self.params["amplitude"], (n,), g), "phase": uniform(*self.params["phase"], (n,), g)}

    def function(self, p, x):
        return _col(p["amplitude"]).to(x) * torch.sin(x - _col(p["phase"]).to(x))


class LinearFamily(FunctionFamily):
    name, title = "linear", "Linear  a·x + b"
    fields = (
        ParamField("slope", "slope a", "range", [-3.0, 3.0]),
        ParamField("intercept", "intercept b", "range", [-3.0, 3.0]),
        X_RANGE, NOISE,
    )

    def sample_task_params(self, n, g):
        return {"slope": uniform(*self.params["slope"], (n,), g), "intercept": uniform(*self.params["intercept"], (n,), g)}

    def function(self, p, x):
        return _col(p["slope"]).to(x) * x + _col(p["intercept"]).to(x)


class PolynomialFamily(FunctionFamily):
    name, title = "polynomial", "Polynomial  Σ cᵢ·xⁱ"
    fields = (
        ParamField("degree", "degree", "int", 3, 0, 10, help="highest power of x"),
        ParamField("coefficient", "coefficient range", "range", [-1.0, 1.0], help="each coefficient cᵢ is drawn from this range"),
        ParamField("x_range", "x range", "range", [-2.0, 2.0], help="inputs are drawn uniformly from this interval"),
        NOISE,
    )

    def sample_task_params(self, n, g):
        return {"coefficients": uniform(*self.params["coefficient"], (n, self.params["degree"] + 1), g)}

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

    def sample_task_params(self, n, g):
        return {k: uniform(*self.params[k], (n,), g) for k in ("amplitude", "period", "phase")}

    def function(self, p, x):
        cycle = torch.remainder(x / _col(p["period"]).to(x) + _col(p["phase"]).to(x), 1.0)
        amplitude = _col(p["amplitude"]).to(x)
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

    def sample_task_params(self, n, g):
        return {k: uniform(*v, (n,), g) for k, v in self.params["ranges"].items()}

    def function(self, p, x):
        y = self.formula.evaluate(x, {k: _col(v).to(x) for k, v in p.items()})
        return torch.broadcast_to(y, x.shape).clone()
