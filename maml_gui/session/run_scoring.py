"""Held-out scores of runs, and their pretrain baseline brought level, computed on job threads.

Scoring a run's weights takes from a second (an MLP) to a minute (a conv net on images), so runs
wait their turn (a sweep's seeds all end at once), each is scored with its latest weights, the
status bar shows the progress, and a closing window cancels it between parts
(:meth:`LoadedModel.adaptation`'s ``report``; a new run cancels a baseline's training). A finished run's final scores are computed here,
never by its training thread, so Stop does not wait for them. A finished run's baseline is
trained to the run's own number of updates in the background, so the comparison the plots show
is fair.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Signal

from core.config import ExperimentConfig
from core.rl.evaluation import baseline_config
from core.rl.kinds import family_of, inspector_of, model_for, trainer_for

from maml_gui.jobs.job_runner import JobRunner
from maml_gui.session.runs import RunRecord


class RunScorer(QObject):
    scored = Signal(object, object)          # RunRecord, its new AdaptationSnapshot
    baseline_done = Signal(object, object)   # RunRecord, snapshot with the baseline level (None: cancelled)
    message = Signal(str, int)               # text for the status bar, milliseconds
    job_status = Signal(str)                 # what the background jobs do, with their progress ("": nothing)

    def __init__(self, parent: QObject, family_for: Callable[[ExperimentConfig], Any], tasks: Callable[[], int],
                 alive: Callable[[RunRecord], bool]):
        """``family_for`` gives the edited family a config uses (None: build it), ``tasks`` how many
        held-out tasks to score on, ``alive`` whether a run is still in the session."""
        super().__init__(parent)
        self._family_for, self._tasks, self._alive = family_for, tasks, alive
        self._waiting: dict[int, RunRecord] = {}
        self._scoring = self._training = ""    # the status lines of the jobs running, shown with their progress
        self._lines: dict[str, str] = {}       # "score" / "baseline" -> that job's line with its progress
        self._baseline_run: RunRecord | None = None   # whose baseline the baseline job trains
        self._scores = JobRunner(self, "maml-score", reports_progress=True)
        self._scores.busy_changed.connect(lambda busy: None if busy else self._next())
        self._scores.done.connect(self._on_scored)
        self._scores.failed.connect(lambda run, text: self._end(f"Cannot score {run.name}: {text}"))
        self._scores.progress.connect(lambda f: self._progress("score", self._scoring, f))
        self._baselines = JobRunner(self, "maml-baseline", reports_progress=True)
        self._baselines.progress.connect(lambda f: self._progress("baseline", self._training, f))
        self._baselines.done.connect(lambda *_: self._line("baseline", ""))
        self._baselines.done.connect(self.baseline_done)
        self._baselines.failed.connect(lambda run, text: self._end(f"The pretrain baseline of {run.name} stopped: {text}",
                                                                   "baseline"))

    def score(self, run: RunRecord) -> None:
        """Queue ``run`` for scoring (``scored`` follows)."""
        if not run.weights:
            return
        self._waiting[run.run_id] = run
        if not self._scores.is_busy():
            self._next()

    def _next(self) -> None:
        if not self._waiting or self._scores.is_busy():
            return
        run = self._waiting.pop(next(iter(self._waiting)))
        if not run.weights or not self._alive(run):
            self._next()
            return
        config, weights, family, tasks = run.config, run.weights, self._family_for(run.config), self._tasks()
        self._scoring = f"{run.name}: scoring {tasks:,} held-out tasks (in the background)…"
        self._line("score", self._scoring)
        self._scores.submit(run, lambda report: model_for(config, weights, family).adaptation(tasks, None, report))

    def _on_scored(self, run: RunRecord, snapshot) -> None:
        self._end("")
        self.scored.emit(run, snapshot)   # a cancelled job's result never arrives (JobRunner drops it)

    def _progress(self, job: str, text: str, fraction: float) -> None:
        """Slow jobs say what they do: a line with their progress (at most every half second), on its
        own (``job_status``), so it never covers what the status bar says about the user's actions."""
        if text and fraction < 1.0:
            self._line(job, f"{text} {fraction:.0%}")

    def show_line(self, job: str, text: str) -> None:
        """Another background job's line (the training run's snapshot scoring) beside these ("": gone)."""
        self._line(job, text)

    def _line(self, job: str, text: str) -> None:
        if text:
            self._lines[job] = text
        else:
            self._lines.pop(job, None)
        self.job_status.emit(" · ".join(self._lines.values()))

    def _end(self, text: str, job: str = "score") -> None:
        self._line(job, "")
        if text:
            self.message.emit(text, 10_000)

    def finish_baseline(self, run: RunRecord, baseline: bool = True) -> bool:
        """Give the run's pretrain baseline as many updates as the run had, in the background.

        While training, the baseline only gets a small share of the time (so the run keeps its
        speed) and so far fewer updates: compared like that, pretraining looks worse than it is.
        Once the run ends, a pretrain network with the run's seed and task stream is trained to the
        run's iteration count and both are scored again on the same held-out tasks. True if started.
        """
        snapshot = run.adaptation
        target = run.weights_iteration
        if snapshot is not None:
            baseline = ("pretrain" in snapshot.series or "pretrained" in snapshot.series) \
                and snapshot.baseline_iterations < target
        if not run.weights or not baseline or run.config.algorithm.name == "pretrain" or target <= 0:
            return False
        config, weights, tasks = run.config, run.weights, self._tasks()
        edited = self._family_for(config)

        def train(report):
            family = edited or family_of(config)
            pretrain = config.replace("algorithm", name="pretrain")
            # meta-RL: the oracle (a policy told the task), where the family has one, is trained alike, as the
            # paper's figure has it
            oracle = baseline_config(config, "oracle") if config.is_rl else None
            trainers = [trainer_for(pretrain, family)] + ([trainer_for(oracle)] if oracle is not None else [])
            for i, baseline in enumerate(trainers):
                while baseline.iteration < target:
                    baseline.step()
                    done = (i * target + baseline.iteration) / (len(trainers) * target)
                    if baseline.iteration % (10 if config.is_rl else 100) == 0 and report(0.8 * done):
                        return None   # cancelled: the run keeps the scores it has
            extra = {"oracle": inspector_of(trainers[1])} if oracle is not None else {}
            return model_for(config, weights, family).adaptation(tasks, inspector_of(trainers[0]),
                                                                 lambda f: report(0.8 + 0.2 * f), **extra)

        self._baselines.submit(run, train)
        self._baseline_run = run
        updates = f"{target:,} update{'s' if target != 1 else ''}"
        self._training = f"{run.name}: training its pretrain baseline to {updates}, then scoring (in the background)…"
        self._line("baseline", self._training)
        return True

    def cancel_baseline(self) -> None:
        """A new run needs the CPU more than a finished run's baseline."""
        if self._baselines.is_busy():
            self._baselines.cancel()
            self._end("", "baseline")
            run, self._baseline_run = self._baseline_run, None
            if run is not None and run.adaptation is None:
                self.score(run)   # a short run was never scored while it trained: at least its own scores

    def shutdown(self) -> None:
        self._baselines.shutdown()
        self._waiting.clear()   # nothing new starts once closing
        self._scores.shutdown()
