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


def test_changes_name_each_setting_with_family_defaults_filled_in():
    base = ExperimentConfig(FamilySpec("sinusoid", {}))
    stated = ExperimentConfig(FamilySpec("sinusoid", {"amplitude": [0.1, 5.0], "x_range": (-5, 5)}))
    assert base.changes(stated) == [] and stated.changes(base) == []   # unstated defaults equal stated ones
    other = (ExperimentConfig(FamilySpec("sinusoid", {"amplitude": [1.0, 2.0]})).replace("model", hidden=(8,))
             .replace("train", shots=3, meta_lr=0.01))
    assert other.changes(base) == ["family.amplitude", "model.hidden", "train.meta_lr", "train.shots"]
    assert ExperimentConfig(FamilySpec("linear")).changes(base) == ["family.name"]
    glyphs = ExperimentConfig(FamilySpec("glyphs", {"rotations": False, "split": [0.64, 0.16, 0.2]}))
    assert glyphs.changes(ExperimentConfig(FamilySpec("glyphs"))) == []   # data settings' defaults count too
    assert glyphs.changes(ExperimentConfig(FamilySpec("glyphs", {"rotations": True}))) == ["family.rotations"]


def test_a_continued_run_takes_iterations_meta_lr_and_device_only_a_running_one_not_the_device():
    saved = ExperimentConfig()
    free = saved.replace("train", iterations=5, meta_lr=0.5, device="cpu")
    assert free.continue_changes(saved) == [] and free.live_changes(saved) == ["train.device"]
    assert saved.replace("train", iterations=9, meta_lr=0.2).live_changes(saved) == []
    changed = free.replace("train", seed=3).replace("algorithm", inner_lr=0.5)
    assert changed.continue_changes(saved) == ["algorithm.inner_lr", "train.seed"]
    assert changed.live_changes(saved) == ["algorithm.inner_lr", "train.seed", "train.device"]
    family = ExperimentConfig(FamilySpec("sinusoid", {"noise": 0.5}))
    assert family.continue_changes(saved) == ["family.noise"] == family.live_changes(saved)


def test_compile_setting_defaults_off_round_trips_and_older_files_still_load():
    assert ExperimentConfig().train.compile == "off"
    config = ExperimentConfig().replace("train", compile="auto")
    assert ExperimentConfig.from_json(config.to_json()) == config
    older = json.loads(ExperimentConfig().to_json())
    del older["train"]["compile"]   # a run saved before the setting existed
    assert ExperimentConfig.from_dict(older).train.compile == "off"
    with pytest.raises(ConfigError) as info:
        ExperimentConfig().replace("train", compile="yes").validate()
    assert info.value.field == "train.compile" and "off, on, auto" in str(info.value)


def test_a_resumed_run_may_switch_compiling_a_running_one_may_not():
    saved = ExperimentConfig()
    switched = saved.replace("train", compile="on")
    assert switched.continue_changes(saved) == [] and saved.continue_changes(switched) == []
    assert switched.live_changes(saved) == ["train.compile"]


def test_conv_model_fields_round_trip_and_old_files_load():
    import json

    from core.config import ExperimentConfig, ModelSpec

    config = ExperimentConfig().replace("model", name="conv4", conv_channels=32, conv_depth=3, downsample="stride",
                                        batch_norm="per_step")
    assert ExperimentConfig.from_json(config.to_json()) == config
    assert json.loads(config.to_json())["model"]["batch_norm"] == "per_step"
    old = ExperimentConfig.from_dict({"model": {"hidden": [40, 40], "activation": "relu"}})
    assert old.model == ModelSpec() and old.model.name == "mlp" and old.model.batch_norm == "batch"
    with pytest.raises(ConfigError) as err:
        ExperimentConfig.from_dict({"model": {"conv_depth": "four"}})
    assert err.value.field == "model.conv_depth"
    assert config.changes(ExperimentConfig()) == ["model.name", "model.conv_channels", "model.conv_depth",
                                                  "model.downsample", "model.batch_norm"]
