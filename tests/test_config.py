"""Experiment settings survive a JSON round trip and bad values are named."""

import json

import pytest

from core.config import ExperimentConfig, FamilySpec
from core.errors import ConfigError


def test_json_round_trip_is_exact():
    config = (ExperimentConfig(FamilySpec("formula", {"expression": "a*x", "ranges": {"a": [0.0, 2.0]}}))
              .replace("model", hidden=(16, 8), activation="tanh")
              .replace("algorithm", name="mamlpp", inner_steps=3, inner_lr=0.1)
              .replace("train", meta_batch=7, shots=3, seed=11))
    again = ExperimentConfig.from_json(config.to_json())
    assert again == config
    assert json.loads(config.to_json())["format_version"] == 1


@pytest.mark.parametrize("data,field", [
    ({"train": {"shots": 0}}, "train.shots"),
    ({"train": {"meta_lr": -1.0}}, "train.meta_lr"),
    ({"train": {"device": "tpu"}}, "train.device"),
    ({"algorithm": {"name": "magic"}}, "algorithm.name"),
    ({"algorithm": {"inner_steps": 0}}, "algorithm.inner_steps"),
    ({"model": {"hidden": []}}, "model.hidden"),
    ({"model": {"activation": "swish2"}}, "model.activation"),
])
def test_validate_names_the_bad_field(data, field):
    with pytest.raises(ConfigError) as info:
        ExperimentConfig.from_dict(data).validate()
    assert info.value.field == field


@pytest.mark.parametrize("text,words", [
    ('{"train": {"shots": "ten"}}', "expected int"),
    ('{"train": {"shotz": 1}}', "unknown setting"),
    ('{"format_version": 99}', "update the app"),
    ('{"train": ', "not valid JSON"),
    ('[1, 2]', "JSON object"),
])
def test_bad_files_give_readable_errors(text, words):
    with pytest.raises(ConfigError, match=words):
        ExperimentConfig.from_json(text)
