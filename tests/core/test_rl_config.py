"""Meta-RL settings in the experiment config: round trip, checks naming the field, supervised configs unchanged."""

import pytest

from core.config import ExperimentConfig, RLSpec, default_rl_config
from core.errors import ConfigError
from core.storage.metrics import append_metrics_table, metrics_kind, read_metrics


def test_an_rl_config_round_trips_and_a_supervised_one_has_no_rl_section():
    config = default_rl_config("nav2d").replace("rl", outer="ppo", max_kl=0.02)
    config.validate()
    again = ExperimentConfig.from_json(config.to_json())
    assert again == config and again.is_rl and again.rl.outer == "ppo"
    assert "rl" not in ExperimentConfig().to_dict() and not ExperimentConfig().is_rl
    assert config.changes(default_rl_config("nav2d")) == ["rl.outer", "rl.max_kl"]


@pytest.mark.parametrize("changes,field", [({"max_kl": 0.0}, "rl.max_kl"), ({"gamma": 1.5}, "rl.gamma"),
                                           ({"rollouts": 0}, "rl.rollouts"), ({"outer": "sgd"}, "rl.outer")])
def test_bad_rl_settings_name_the_field(changes, field):
    with pytest.raises(ConfigError) as info:
        default_rl_config("nav2d").replace("rl", **changes).validate()
    assert info.value.field == field


def test_a_window_saved_rl_table_reads_back_with_its_header(tmp_path):
    import numpy as np

    table = np.array([[1, -40.0, 0.1, 0.5, -50.0, -40.0], [2, -30.0, 0.1, 0.5, -45.0, -30.0]])
    append_metrics_table(tmp_path, table, rl=True)
    assert metrics_kind(tmp_path) == "rl"
    assert (read_metrics(tmp_path) == table).all()
    assert RLSpec().outer == "trpo"


def test_a_built_policy_experiment_trains_like_its_config():
    from core.built import build
    from core.rl.trainer import RLTrainer

    config = default_rl_config("nav2d").replace("train", meta_batch=2).replace("rl", rollouts=2)
    config = config.__class__(config.family.__class__("nav2d", {"horizon": 4}), config.model, config.algorithm,
                              config.train, config.rl)
    built = build(config)
    assert set(built.shapes()) == {"model.layers.0.weight", "model.layers.0.bias", "model.layers.1.weight",
                                   "model.layers.1.bias", "model.layers.2.weight", "model.layers.2.bias",
                                   "model.log_std"}
    a, b = RLTrainer(built), RLTrainer(config)
    assert a.family is built.family
    assert a.step().step_returns == b.step().step_returns   # the same start, the same stream
