"""What the built-in environment families share: settings merged over their defaults and checked, as
task families do, so the window's family editor builds their form from ``fields`` alike."""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from core.errors import ConfigError
from core.tasks.base import ParamField, checked_params
from core.tasks.spec import FamilySpec

HORIZON = ParamField("horizon", "horizon", "int", 100, 1, 10_000, help="steps per trajectory at most")


class ParamEnvFamily:
    """Base of the environment families: ``params`` only overrides the defaults in ``fields``.

    Optional attributes beyond :class:`~core.envs.base.EnvFamily`: ``title`` (for a list),
    ``fields`` (the editable settings), ``oracle_params`` (settings that show the task to the policy: the
    oracle baseline's family), ``task_names`` (a name per task column, e.g. ``("goal x",
    "goal y")``), :meth:`parse_task` (a task typed by a person, for ``maml-gui adapt``), ``warnings``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    fields: ClassVar[tuple[ParamField, ...]] = (HORIZON,)
    data_fields: ClassVar[tuple[ParamField, ...]] = ()   # settings the generic form does not show
    oracle_params: ClassVar[dict[str, Any]] = {}         # the family seen by the oracle baseline (none when empty)
    task_names: ClassVar[tuple[str, ...]] = ()
    discrete: ClassVar[bool] = False
    kind: ClassVar[str] = "rl"

    def __init__(self, params: Mapping[str, Any] | None = None):
        self.params: dict[str, Any] = checked_params(self.name, self.fields + self.data_fields, params)

    @property
    def horizon(self) -> int:
        return int(self.params["horizon"])

    @property
    def task_dim(self) -> int:
        return len(self.task_names)

    @property
    def warnings(self) -> list[str]:
        return []

    def spec(self) -> FamilySpec:
        return FamilySpec(self.name, dict(self.params))

    def parse_task(self, text: str):
        """A task from ``"x,y,…"`` (one number per :attr:`task_names`); raises ConfigError."""
        import torch

        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            raise ConfigError("task", f"{text!r} is not a list of numbers") from None
        if len(values) != self.task_dim:
            raise ConfigError("task", f"the {self.name} family's task is {self.task_dim} numbers "
                                      f"({', '.join(self.task_names)}), got {len(values)}")
        return torch.tensor([values], dtype=torch.float32)
