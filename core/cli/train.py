"""``maml-gui train``: meta-train one run into a folder, checkpointing as it goes, on one process or
as a rank of several; Ctrl-C, SIGTERM and ``--time-limit`` stop it after a save."""

from __future__ import annotations

import math
import shlex
import signal
import sys
import time
from pathlib import Path

from core.cli.model_options import admit, check_module, names_module
from core.cli.parser import UsageError, config_from_args, experiment_from_args
from core.errors import TrainingDiverged, not_regular


PENDING_LIMIT = 64 << 20     # bytes of metrics rows kept in memory while checkpoints keep failing


def out_of_memory(exc: BaseException) -> bool:
    """torch's CPU allocator raises RuntimeError ("can't allocate memory"), CUDA's OutOfMemoryError."""
    return isinstance(exc, MemoryError) or "can't allocate memory" in str(exc) or "out of memory" in str(exc)


def check_train_flags(args) -> None:
    """The flags argparse does not range-check; the sweep checks them too, before any run starts."""
    if args.time_limit is not None and not (math.isfinite(args.time_limit) and args.time_limit > 0):
        raise UsageError("maml-gui train: --time-limit must be a positive number of seconds")
    if not (math.isfinite(args.save_every) and args.save_every >= 0):
        raise UsageError("maml-gui train: --save-every must be a number of seconds, 0 or more")
    if args.resume is None and args.out is None:
        raise UsageError("maml-gui train: the following arguments are required: --out")
    if args.nproc is not None and not 1 <= args.nproc <= 1024:
        raise UsageError("maml-gui train: --nproc must be a number of processes from 1 to 1024")
    if args.rank_timeout is not None and not (math.isfinite(args.rank_timeout) and args.rank_timeout > 0):
        raise UsageError("maml-gui train: --rank-timeout must be a positive number of seconds")


def run(args) -> int:
    """Check the flags, then train here, as one rank of several, or launch ``--nproc`` ranks."""
    from core.training.distributed import RANK_TIMEOUT, launched_here, rank_from_env
    from core.training.local_launch import launch

    check_train_flags(args)
    if args.resume is None and not launched_here() and names_module(args):
        check_module(*experiment_from_args(args))   # before anything is written; the ranks it launches skip it
    ranked = rank_from_env()
    if ranked is not None:
        if args.nproc not in (None, 1) and not launched_here():
            raise UsageError("maml-gui train: --nproc starts its own processes; under torchrun leave it out")
        return _train_rank(args, ranked, args.rank_timeout or RANK_TIMEOUT)
    if args.nproc is not None and args.nproc > 1:
        return launch(list(args.argv), args.nproc, args.out or args.resume, args.rank_timeout or RANK_TIMEOUT)
    return _train_here(args)


def _train_here(args, group=None) -> int:
    """Lock the run folder, then train; the lock is released on every way out (a SIGTERM sets a
    flag from the moment the lock is taken, so even a stop during setup releases it). With a
    group (rank 0 of several), Ctrl-C sets the flag too: the ranks must stop together."""
    from core.storage.checkpoint import remove_leftovers
    from core.storage.lock import RunLock

    out = args.out = args.out or args.resume
    if out.exists() and not out.is_dir():
        raise UsageError(f"maml-gui train: {out} exists and is not a folder")
    continuing = args.resume is not None and out.resolve() == args.resume.resolve()
    stop = {"flag": False, "signal": None, "setup": False}
    previous = _on_stop_signals(stop, group is not None)
    lock = RunLock(out)
    try:
        warning = lock.acquire("maml-gui " + shlex.join(getattr(args, "argv", None) or ["train"]))
        if group is None:   # from here (the lock ours), a SIGTERM during setup ends the command at once
            if stop["flag"]:
                raise _StoppedInSetup(stop["signal"])
            stop["setup"] = True
        if warning:
            print(f"maml-gui: warning: {warning}", file=sys.stderr)
        if not continuing:
            _claim_out(out, args.force)   # checks first, deletes only with --force, and only under the lock
        remove_leftovers(out)
        return _train_locked(args, out, continuing, stop, group)
    except _StoppedInSetup as exc:
        print(f"maml-gui: stopped by {exc} before training started; nothing was written to {out}", file=sys.stderr)
        return _STOP_CODES.get(str(exc), 143)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if lock.held:
            remove_leftovers(out)   # whatever ended the run (Ctrl-C in a save included) leaves no temporaries
        lock.release()


class _StoppedInSetup(BaseException):
    """SIGTERM while the run is still being set up (reading data, building the network): nothing is
    saved yet, so the command ends at once instead of finishing a long read first."""


def _on_stop_signals(stop: dict, ranked: bool) -> dict:
    """SIGTERM (and, for a rank of several, SIGINT) sets ``stop``; returns the handlers replaced.
    While ``stop["setup"]`` holds, SIGTERM ends the command at once (:class:`_StoppedInSetup`)."""
    def request(signum, _frame):
        stop.update(flag=True, signal=signal.Signals(signum).name)
        if stop.get("setup"):
            stop["setup"] = False
            raise _StoppedInSetup(signal.Signals(signum).name)

    signals = (signal.SIGTERM, signal.SIGINT) if ranked else (signal.SIGTERM,)
    return {s: signal.signal(s, request) for s in signals}


def _train_rank(args, ranked, timeout: float) -> int:
    """One process of a run of several: rank 0 trains as a lone run does (lock, checkpoints,
    summary), the others follow it silently."""
    from core.training.distributed import Group

    group = Group.join(ranked, timeout)
    try:
        return _train_here(args, group) if group.rank == 0 else _train_follower(group)
    finally:
        group.close()


def _train_follower(group) -> int:
    """A rank other than 0: rank 0's trainer, its share of each batch, no files and no output."""
    from core.config import ExperimentConfig
    from core.training.distributed import AGREED, PEER_FAILED, PeerFailed

    stop = {"flag": False, "signal": None}
    previous = _on_stop_signals(stop, True)
    group.watch_parent(lambda: stop.update(flag=True, signal="SIGTERM"))
    try:
        start = group.share(None)
        trainer = _trainer(ExperimentConfig.from_json(start["config"]), group, built=False)
        trainer.load_weights(start["weights"])
        trainer.load_training_state(*start["state"])
        trainer.compile_step()
        code = 0
        try:
            while trainer.iteration < trainer.config.train.iterations:
                group.stop = stop["signal"]
                trainer.step()
                if group.agreed:
                    break
        except TrainingDiverged:
            code = 1
        group.mark(AGREED)
        return _STOP_CODES.get(group.agreed, code)
    except PeerFailed:
        group.mark(PEER_FAILED)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


_STOP_CODES = {"SIGTERM": 143, "SIGINT": 130, "time": 0}


_STOP_WORDS = {"SIGTERM": "SIGTERM", "SIGINT": "Ctrl-C (SIGINT)"}


def _train_locked(args, out: Path, continuing: bool, stop: dict, group=None) -> int:
    from core.built import build
    from core.storage.checkpoint import Checkpointer
    from core.training.distributed import AGREED, PEER_FAILED, PeerFailed
    from core.training.memory import memory_tips

    if args.resume is not None:
        trainer = _resumed(args, group)
    else:
        config, family = experiment_from_args(args)
        trainer = _trainer(build(config, family, config.train.device), group)
    if group is not None:
        group.watch_parent(lambda: stop.update(flag=True, signal="SIGTERM"))
        group.share({"config": trainer.config.to_json(), "weights": trainer.weights(),
                     "state": trainer.training_state()})
    config = trainer.config
    for warning in getattr(trainer.family, "warnings", ()):
        print(f"maml-gui: warning: {warning}", file=sys.stderr)
    stop["setup"] = False   # from the first file written, a stop saves a checkpoint
    saver = Checkpointer(out, _columns(config), args.save_every, resume_from=trainer.iteration if continuing else None,
                         rl=config.is_rl)
    if continuing and (saver.log.last_row or 0) != trainer.iteration:
        print(f"maml-gui: warning: {saver.log.path} ends at iteration {saver.log.last_row or 0:,}, the checkpoint is "
              f"at {trainer.iteration:,}: the rows in between are missing (damaged or deleted); the resumed rows "
              "follow", file=sys.stderr)
    saves = _Saves(saver, trainer, out)
    if not continuing:
        saves.periodic()   # iteration 0 (or the resumed one): resumable from the first second
    note = trainer.compile_step(announce=lambda text: print(f"maml-gui: {text}", file=sys.stderr, flush=True))
    if note:
        print(f"maml-gui: {note}", file=sys.stderr)
    first = trainer.iteration   # rates count this process's iterations, not those before a --resume
    progress = _Progress(config.train.iterations, first, "return" if config.is_rl else "loss") \
        if sys.stderr.isatty() else None
    saves.progress = progress
    start = time.perf_counter()
    resume_hint = f"; continue with `maml-gui train --resume {out}`"
    reason, code, last, ending = "completed", 0, None, AGREED   # ending: how a rank of several ended
    try:
        while trainer.iteration < config.train.iterations and (group is not None or not stop["flag"]):
            timed_out = args.time_limit is not None and time.perf_counter() - start >= args.time_limit
            if group is not None:   # the ranks stop together: requests travel with the gradients
                group.stop = stop["signal"] or ("time" if timed_out else None)
            elif timed_out:
                reason = f"time limit of {args.time_limit:g} s reached at iteration {trainer.iteration:,}{resume_hint}"
                break
            last = trainer.step()
            saver.add(last)
            if saver.due():
                saves.periodic()
            if progress:
                progress.update(last, time.perf_counter() - start)
            if group is not None and group.agreed:
                stop.update(flag=True, signal=group.agreed)
                break
        if stop["flag"] and stop["signal"] == "time":
            reason = f"time limit of {args.time_limit:g} s reached at iteration {trainer.iteration:,}{resume_hint}"
        elif stop["flag"]:
            words, code = _STOP_WORDS[stop["signal"]], _STOP_CODES[stop["signal"]]
            reason = f"stopped by {words} at iteration {trainer.iteration:,}{resume_hint}"
    except TrainingDiverged as exc:
        reason, code = f"stopped: {exc}; the last finite weights are saved", 1
    except (MemoryError, RuntimeError) as exc:
        if not out_of_memory(exc):
            raise
        reason = f"stopped: out of memory at iteration {trainer.iteration:,}; {memory_tips(config)}{resume_hint}"
        code = 1
    except KeyboardInterrupt:
        reason, code = f"stopped by Ctrl-C (SIGINT) at iteration {trainer.iteration:,}{resume_hint}", 130
    except _SavesStalled as exc:
        reason, code, ending = f"stopped: {exc}", 1, None   # alone: the others' next exchange fails
    except PeerFailed as exc:
        reason, code, ending = f"stopped after iteration {trainer.iteration:,}: {exc}{resume_hint}", 1, PEER_FAILED
    finally:
        if progress:
            progress.close()
        saved = saves.final()
    if group is not None and ending is not None:
        group.mark(ending)
    elapsed = time.perf_counter() - start
    if trainer.compile_failure:
        print(f"maml-gui: the compiled meta-step failed ({trainer.compile_failure}); the run continued eager",
              file=sys.stderr)
    loss = f"{last.meta_loss:.4f}" if last else "n/a"
    final = "final meta-return" if config.is_rl else "final meta-loss"
    where = f"saved to {out}" if saved else f"NOT saved (see the error above): {out} holds {saves.previous()}"
    processes = f", {group.world} processes" if group is not None else ""
    print(f"{config.algorithm.name} on {config.family.name}: {iterations_done(first, trainer.iteration, elapsed)} "
          f"({trainer.device}, {trainer.gradient_path}{processes}), {final} {loss}, {reason}; {where}")
    return code if saved else (code or 1)


class _SavesStalled(Exception):
    pass


class _Saves:
    """The command line's side of checkpointing: one readable line per storage problem (not one
    per attempt), a note when slow saves stretch the interval, and a stop when the metrics waiting
    for a checkpoint that cannot be written grow past :data:`PENDING_LIMIT`."""

    def __init__(self, saver, trainer, out: Path):
        self.saver, self.trainer, self.out = saver, trainer, out
        self.progress = None
        self._failing: str | None = None
        self._noted = False

    def previous(self) -> str:
        done = self.saver.saved_iteration
        return "no checkpoint yet" if done is None else f"the checkpoint of iteration {done:,}"

    def _say(self, line: str) -> None:
        print(("\n" if self.progress else "") + f"maml-gui: {line}", file=sys.stderr, flush=True)

    def _save(self):
        from core.storage.checkpoint import SaveFailed

        try:
            self.saver.save(self.trainer.config, self.trainer.weights(), self.trainer.training_state())
        except SaveFailed as exc:
            return exc
        return None

    def periodic(self) -> None:
        failed = self._save()
        if failed is None:
            if self._failing:
                self._say(f"checkpoint saved again to {self.out} at iteration {self.saver.saved_iteration:,}")
                self._failing = None
            self._note_interval()
            return
        if failed.reason != self._failing:
            self._failing = failed.reason
            if failed.committed:
                self._say(f"warning: cannot update the weights file in {self.out}: {failed.reason}; the checkpoint of "
                          f"iteration {self.saver.saved_iteration:,} is saved and resumable; training goes on")
            else:
                self._say(f"warning: cannot save checkpoint to {self.out}: {failed.reason}; "
                          f"{self._intact()}; training goes on")
        if self.saver.log.pending_bytes > PENDING_LIMIT:
            raise _SavesStalled(f"no checkpoint could be saved to {self.out} since {self.previous()} "
                                f"({failed.reason}), and the unsaved metrics outgrew {PENDING_LIMIT >> 20} MiB of "
                                f"memory; free some space and continue with `maml-gui train --resume {self.out}`")

    def _intact(self) -> str:
        done = self.saver.saved_iteration
        return "no checkpoint has been saved yet" if done is None else \
            f"the previous checkpoint (iteration {done:,}) is intact"

    def _note_interval(self) -> None:
        s = self.saver
        if not self._noted and s.every > 0 and s.interval > 2 * s.every:
            self._noted = True
            self._say(f"note: a checkpoint takes {s.last_seconds:.2f} s, so one is saved every {s.interval:.0f} s "
                      f"instead of every {s.every:g} s (saving stays under 1% of the training time)")

    def final(self) -> bool:
        """The last save; False (with one line on stderr) when it failed."""
        failed = self._save()
        if failed is None:
            return True
        if failed.committed:
            self._say(f"error: the final checkpoint (iteration {self.saver.saved_iteration:,}) is saved in {self.out}, "
                      f"but its weights file could not be updated: {failed.reason}; after freeing space, "
                      f"`maml-gui train --resume {self.out}` writes it")
        else:
            self._say(f"error: cannot save the final checkpoint to {self.out}: {failed.reason}; {self._intact()}; "
                      f"free some space (or make the folder writable) and continue with "
                      f"`maml-gui train --resume {self.out}`")
        return False


def _claim_out(out: Path, force: bool) -> None:
    """Refuse to write a new run over an existing one unless ``--force``; with it, delete the old
    run's files first so nothing of it mixes with the new run. Called with the folder's lock held."""
    from core.storage.checkpoint import CONFIG_FILE, STATE_FILE, WEIGHTS_FILE
    from core.storage.metrics import METRICS_FILE
    from core.storage.model_source import SOURCE_FILE

    found = [out / n for n in (CONFIG_FILE, WEIGHTS_FILE, STATE_FILE, METRICS_FILE, SOURCE_FILE) if (out / n).exists()]
    if not found:
        return
    if not force:
        raise UsageError(f"maml-gui train: {out} already holds a run ({', '.join(p.name for p in found)}); "
                         f"continue it with --resume {out}, replace it with --force, or choose another --out")
    for path in found:
        try:
            path.unlink()
        except OSError as exc:
            raise UsageError(f"maml-gui train: cannot replace {path}: {exc.strerror or exc}") from None


def _resumed(args, group=None):
    """A trainer restored from a run folder's last checkpoint: weights, Adam moments, sampler state, iteration."""
    from core.storage.checkpoint import (CONFIG_FILE, METRICS_FILE, STATE_FILE, folder_notes, load_checkpoint_built,
                                         with_resume_hint)
    from core.errors import CheckpointError
    from core.training.resume import continuation

    admit(args.resume, args)   # the run's copy of the user's module, if it has one
    built, weights, tensors, metadata = load_checkpoint_built(args.resume)
    saved = built.config
    for name in (CONFIG_FILE, METRICS_FILE):   # files the resumed run rewrites: a folder there would stop its saves
        path = Path(args.resume) / name
        problem = not_regular(path)
        if problem is not None:
            raise UsageError(f"maml-gui train: {path} {problem}; the resumed run rewrites it: move it away, then "
                             "resume again")
    for note in folder_notes(args.resume, built, weights_file=True):
        print(f"maml-gui: warning: {note}", file=sys.stderr)
    config = config_from_args(args, base=saved, known=built)
    plan = continuation(config, saved, weights, (tensors, metadata))
    if not plan.exact:
        raise UsageError(f"maml-gui train: {plan.problem}; start a new one instead")
    trainer = _trainer(built.with_config(config), group)
    trainer.load_weights(plan.weights)
    try:
        trainer.load_training_state(*plan.state, source=args.resume / STATE_FILE)
    except CheckpointError as exc:
        raise with_resume_hint(exc, args.resume) from None
    if args.iterations is not None and args.iterations < trainer.iteration:   # config.json would say fewer than done
        raise UsageError(f"maml-gui train: {args.resume} is at iteration {trainer.iteration:,} already; --iterations is "
                         f"the new total: give {trainer.iteration:,} or more, or leave it out")
    if args.meta_lr is not None:
        trainer.set_meta_lr(args.meta_lr)
    return trainer


def _trainer(source, group=None, built=True):
    """The trainer: meta-RL for an environment family, else :class:`MetaTrainer`. ``source``: what
    was built (rank 0), or only the settings (``built=False``: another rank, which builds them itself)."""
    config = source.config if built else source
    if config.is_rl:
        from core.rl.trainer import RLTrainer

        return RLTrainer(config, family=source.family if built else None, group=group)
    from core.training.trainer import MetaTrainer

    if not built:
        return MetaTrainer(config, group=group)
    from core.training.memory import fitting

    return MetaTrainer(fitting(source), group=group)


def _columns(config) -> int:
    """Per-step columns of ``metrics.csv``: a loss (or return) before each inner step and after the last."""
    if config.is_rl:
        from core.rl.meta import inner_steps

        return inner_steps(config) + 1
    return config.algorithm.inner_steps + 1


def iterations_done(first: int, last: int, elapsed: float) -> str:
    """``"2000 iterations (34000 to 36000) in 3.4 s, 588 it/s"``: what this process did; a resumed
    run's earlier iterations took their time in another process."""
    done = last - first
    span = f" ({first} to {last})" if first else ""
    rate = done / elapsed if elapsed > 0 else 0.0
    return f"{done} iterations{span} in {elapsed:.1f} s, {rate:.{0 if rate >= 10 or rate == 0 else 2}f} it/s"


class _Progress:
    """A one-line progress bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, first: int = 0, label: str = "loss"):
        self.total, self.first, self._last, self.label = total, first, 0.0, label

    def update(self, m, elapsed: float) -> None:
        if elapsed - self._last < 0.1:
            return
        self._last = elapsed
        rate = (m.iteration - self.first) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - m.iteration) / rate if rate > 0 else 0.0
        filled = int(30 * m.iteration / self.total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {m.iteration}/{self.total} "
                         f"{rate:5.{0 if rate >= 10 else 2}f} it/s  {self.label} {m.meta_loss:8.4f}  ETA {eta:5.0f}s ")
        sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
