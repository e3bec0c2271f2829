"""What the window shows of a meta-RL policy: held-out returns that are ``maml-gui evaluate``'s numbers,
and the 2-D navigation figure whose paths are the environment's own positions and rewards."""

import numpy as np
import pytest
import torch

from core.config import ExperimentConfig, FamilySpec, ModelSpec, TrainSpec
from core.rl.evaluation import baseline_config, evaluate_rl
from core.rl.inspector import RLInspector
from core.rl.kinds import family_of, model_for, trainer_for
from core.rl.task_views import EpisodeReturns, TrajectoryFigure
from core.rl.trainer import RLTrainer
from core.storage.metrics import append_metrics_table, metrics_table_csv, read_metrics


def nav2d(**rl) -> ExperimentConfig:
    config = ExperimentConfig(family=FamilySpec("nav2d", {"horizon": 12}), model=ModelSpec(hidden=(8,)),
                              train=TrainSpec(meta_batch=2, iterations=2))
    return config.replace("rl", **{"rollouts": 4, **rl})


@pytest.fixture(scope="module")
def trained():
    trainer = RLTrainer(nav2d())
    trainer.step()
    return trainer


def test_held_out_returns_are_the_numbers_maml_gui_evaluate_prints(trained):
    snapshot = RLInspector.of_trainer(trained).adaptation(tasks=5)
    assert snapshot.metric == "return" and list(snapshot.steps) == [0, 1, 2, 3] and snapshot.tasks == 5
    assert set(snapshot.series) == {"meta-learned", "random"}
    evaluation = evaluate_rl(trained.config, trained.weights(), tasks=5, rollouts=4, steps=(0, 1, 2, 3),
                             baselines=("random",))
    for name, summary in (("meta-learned", evaluation.model), ("random", evaluation.baselines["random"])):
        mean, ci = snapshot.series[name]
        np.testing.assert_allclose(mean, [summary.mean[s] for s in range(4)], rtol=1e-5)
        np.testing.assert_allclose(ci, [summary.ci95[s] for s in range(4)], rtol=1e-4, atol=1e-6)


def test_the_oracle_is_scored_once_and_drawn_across_the_steps(trained):
    oracle = RLTrainer(baseline_config(nav2d(), "oracle"))   # nav2d that observes the goal
    snapshot = RLInspector.of_trainer(trained).adaptation(tasks=3, oracle=RLInspector.of_trainer(oracle))
    mean, _ = snapshot.series["oracle"]
    assert len(mean) == 4 and np.all(mean == mean[0])


def test_a_cancelled_scoring_returns_nothing(trained):
    assert RLInspector.of_trainer(trained).adaptation(tasks=3, report=lambda fraction: fraction > 0) is None


def test_the_navigation_figure_follows_the_environment_from_the_start_to_each_trajectorys_end(trained):
    inspector = RLInspector.of_trainer(trained)
    preview = inspector.adapt_to((0.3, -0.2), placed=True)
    figure = preview.view
    assert isinstance(figure, TrajectoryFigure) and figure.placed and figure.steps == 3
    np.testing.assert_allclose(figure.goal, [0.3, -0.2])
    for paths, average in zip(figure.paths, figure.returns):
        assert paths.shape[0] == 10 and paths.shape[2] == 2 and paths.shape[1] <= 12 + 1
        np.testing.assert_array_equal(paths[:, 0], 0.0)                      # every trajectory starts at the origin
        steps = np.diff(paths, axis=1)
        assert np.nanmax(np.abs(steps)) <= 0.1 + 1e-6                       # actions clipped to max speed
        # reward = minus the distance from each new position to the goal: the figure's average return
        rewards = -np.linalg.norm(paths[:, 1:] - figure.goal, axis=2)
        assert np.nansum(rewards) / len(paths) == pytest.approx(average, rel=1e-4)


def test_a_held_out_preview_is_the_same_goal_every_time(trained):
    inspector = RLInspector.of_trainer(trained)
    first, again = inspector.preview(2).view, inspector.preview(2).view
    np.testing.assert_array_equal(first.goal, again.goal)
    assert not first.placed and inspector.preview(2).task_index == 2


def test_saved_weights_score_like_the_live_policy(trained):
    live = RLInspector.of_trainer(trained).adaptation(tasks=3)
    saved = model_for(trained.config, trained.weights(), iteration=1).adaptation(tasks=3)
    np.testing.assert_allclose(saved.series["meta-learned"][0], live.series["meta-learned"][0], rtol=1e-5)
    assert isinstance(model_for(nav2d(), None).preview(0).view, TrajectoryFigure)   # a fresh policy draws too


def test_the_kinds_pick_the_rl_trainer_and_family_for_an_environment_family():
    assert isinstance(trainer_for(nav2d()), RLTrainer)
    assert family_of(nav2d()).name == "nav2d"
    assert family_of(ExperimentConfig()).name == "sinusoid"


def test_a_family_without_a_picture_gets_each_episodes_return(trained):
    inspector = RLInspector.of_trainer(trained)
    inspector.family = type("Other", (), {"name": "other", "task_names": ("goal x", "goal y"),
                                          "sample_tasks": trained.family.sample_tasks,
                                          "reset": trained.family.reset, "horizon": 12, "params": {}})()
    view = inspector.adapt_to(torch.tensor([[0.1, 0.2]])).view
    assert isinstance(view, EpisodeReturns) and len(view.returns) == 4
    assert all(len(r) == 4 for r in view.returns) and view.task == "goal x 0.10, goal y 0.20"


def test_a_window_written_rl_table_has_the_return_header_and_reads_back(tmp_path):
    table = np.array([[1, -20.0, 0.5, 0.1, -25.0, -20.0, 1.7e9], [2, -18.0, 0.4, 0.1, -24.0, -18.0, 1.7e9 + 1.5]])
    text = metrics_table_csv(table, rl=True).decode()
    assert text.splitlines()[0] == "iteration,meta_return,grad_norm,seconds,step_return_0,step_return_1,wall_time"
    append_metrics_table(tmp_path, table, rl=True)
    np.testing.assert_allclose(read_metrics(tmp_path), table)
    assert (tmp_path / "metrics.csv").read_text() == text
