"""An optional compiled meta-step: the same math as eager, traced once by ``torch.compile``.

Why: at the sizes meta-learning papers use, a meta-iteration is a couple of hundred tiny
tensor ops and most of its time is the fixed cost of dispatching each one. Traced into one
graph, inductor fuses the elementwise ops into a few C++ (on CUDA, Triton) kernels and calls
the matrix products straight from generated C++, which about doubles the iterations per
second. What is compiled is :func:`meta_step_numbers`: the algorithm's ``meta_step`` (the
meta-gradient into ``.grad``), the gradient norm and the numbers the trainer reports, and then
the Adam step (:meth:`~core.training.optim.MetaAdam.traced_step`, skipped on a non-finite meta-gradient).
Sampling, metrics and checkpoints stay as they are, and the optimiser's state is the same
tensors either way, so a resumed run may switch between compiled and eager.

Never worse than eager: with no C++ compiler, on a platform ``torch.compile`` does not
support, or on any compile error, :meth:`MetaStep.compile` says so in one line and the step
stays eager; a compiled step that fails later falls back to eager for the rest of the run.

The kernels are cached on disk in :func:`cache_folder` (the user's cache folder), so a later
run with the same shapes starts in seconds instead of tens of seconds. Deleting the folder is
harmless: the next start compiles from scratch again.
"""

from __future__ import annotations

import copy
import logging
import os
import sys
import time
import types
from pathlib import Path
from typing import Callable

import torch

from core.config import COMPILE_MODES

__all__ = ["COMPILE_MODES", "AUTO_MIN_SECONDS", "MetaStep", "cache_folder", "meta_step_numbers", "unsupported"]

# "auto" compiles a run whose meta-steps would take this long eager: compiled they take about
# half, so even a cold compile (20-30 s on a 2-core CPU) pays for itself; a warm one (~4 s) pays
# from about 10 s. README ("Compiling the meta-step") has the measurements.
AUTO_MIN_SECONDS = 60.0
FAR = 10**12   # an iteration past every schedule: the settings an algorithm settles into
SMALL_INNER, SMALL_WORK = 16, 2**20   # products _small_matmuls writes out: inner size, multiplications

_log = logging.getLogger(__name__)


def cache_folder() -> Path:
    """Where inductor keeps compiled kernels: ``$TORCHINDUCTOR_CACHE_DIR`` when set, else the
    user's cache folder (``~/.cache/maml-explorer/torch-compile`` on Linux), never the project."""
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "maml-explorer" / "torch-compile"


def meta_step_numbers(algorithm, meta_parameters: list[torch.Tensor], params, rates, batch,
                      iteration: int, traced: bool = False) -> torch.Tensor:
    """The meta-gradient into ``.grad`` of ``meta_parameters``; returns one tensor
    ``[meta-loss, gradient norm, step losses…, step accuracies…]`` so one ``tolist()`` reads it all.

    ``traced``: the same norm written as ops inductor fuses (it has no kernel of its own for
    ``_foreach_norm``, which eager runs as one op)."""
    result = algorithm.meta_step(params, rates, batch, iteration)
    grads = [p.grad for p in meta_parameters if p.grad is not None]
    norms = [torch.linalg.vector_norm(g) for g in grads] if traced else torch._foreach_norm(grads)
    parts = [result.meta_loss.reshape(1), torch.linalg.vector_norm(torch.stack(norms)).reshape(1),
             result.step_losses]
    if result.step_accuracy is not None:
        parts.append(result.step_accuracy)
    return torch.cat(parts)


class MetaStep:
    """Runs :func:`meta_step_numbers` eager until :meth:`compile` succeeds, then compiled.

    The compiled graph is traced with the settings the algorithm settles into (MAML++ anneals
    its loss weights and switches to second order first): iterations before that run eager
    rather than trace a graph per iteration, and no compile interrupts the run later.
    """

    def __init__(self, algorithm, meta_parameters: list[torch.Tensor], device: torch.device, optimizer=None):
        self.algorithm, self.meta_parameters, self.device = algorithm, meta_parameters, device
        self.optimizer = optimizer   # a MetaAdam whose step the compiled graph takes too (None: the caller's job)
        self.failure: str | None = None   # why a compiled step fell back to eager mid-run
        self.updated = False        # whether the last call took the optimiser's step as well
        self._fn: Callable | None = None
        self._lr = torch.zeros((), device=device)   # the optimiser's rate as a graph input
        self._lr_value: float | None = None
        self._final = _settings(algorithm, FAR)
        self._settled_from: int | None = None

    @property
    def compiled(self) -> bool:
        return self._fn is not None

    def __call__(self, params, rates, batch, iteration: int) -> torch.Tensor:
        """The step's numbers; :attr:`updated` says whether the optimiser's step was taken too
        (compiled with an optimiser, and only when the numbers are finite)."""
        self.updated = False
        if self._fn is not None and self._settled(iteration):
            try:
                if self.optimizer is not None and self._lr_value != self.optimizer.lr:
                    self._lr_value = self.optimizer.lr
                    self._lr.fill_(self._lr_value)
                numbers = self._fn(params, rates, batch, self._lr)
                self.updated = self.optimizer is not None
                return numbers
            except Exception as exc:  # noqa: BLE001 - a compile problem must never fail the run
                self._fn, self.failure = None, _reason(exc)
                self._clear_grads()
                _log.warning("the compiled meta-step failed (%s); the run continues eager", self.failure)
        return meta_step_numbers(self.algorithm, self.meta_parameters, params, rates, batch, iteration)

    def eager_seconds(self, params, rates, batch, iteration: int, repeats: int = 5) -> float:
        """Seconds one eager meta-step takes here (after one untimed warm-up); gradients cleared."""
        try:
            meta_step_numbers(self.algorithm, self.meta_parameters, params, rates, batch, iteration)
            start = time.perf_counter()
            for _ in range(repeats):
                self._clear_grads()
                meta_step_numbers(self.algorithm, self.meta_parameters, params, rates, batch, iteration)
            return (time.perf_counter() - start) / repeats
        finally:
            self._clear_grads()

    def compile(self, params, rates, batch, backend="inductor",
                announce: Callable[[str], None] | None = None) -> tuple[bool, str]:
        """Compile now, running the step once on a throwaway ``batch`` of the run's shapes;
        returns ``(compiled, one line for the user)``. Gradients are cleared and the weights and
        optimiser state put back afterwards, so the run's state is untouched. ``announce`` hears
        "compiling the meta-step…" once compiling can start (it may take tens of seconds);
        ``backend`` is ``torch.compile``'s (tests pass a failing one)."""
        use_cache_folder()
        if getattr(self.algorithm.net, "batch_statistics", False):
            return False, ("the meta-step runs eager: conv nets are not compiled (their time is in the "
                           "convolutions: measured 1.19x faster after a 2-minute compile for just 2 tasks, "
                           "and the compile grows with the meta-batch)")
        problem = unsupported(self.device) if backend == "inductor" else None
        if problem:
            return False, f"the meta-step runs eager: {problem}"
        if announce is not None:
            announce("compiling the meta-step…")
        _configure_dynamo()
        frozen, meta_parameters, optimizer = _frozen(self.algorithm, *self._final), self.meta_parameters, self.optimizer

        def step(params, rates, batch, lr):
            numbers = meta_step_numbers(frozen, meta_parameters, params, rates, batch, 0, traced=True)
            if optimizer is not None:
                optimizer.traced_step(torch.isfinite(numbers[:2]).all(), lr)
            return numbers

        start, reason = time.perf_counter(), ""
        state = self._state()
        for options in _attempts(self.device, backend):
            fn = torch.compile(_own_code(step), backend=backend, dynamic=False, **options)
            try:
                fn(params, rates, batch, self._lr)
            except Exception as exc:  # noqa: BLE001 - any failure means eager, never a failed run
                reason = reason or _reason(exc)
                _log.info("compiling the meta-step with %s failed: %s", options, _reason(exc))
                continue
            finally:
                self._clear_grads()
                self._restore(state)
            self._fn = fn
            cached = f"; kernels cached in {cache_folder()}" if backend == "inductor" else ""
            return True, f"the meta-step is compiled ({time.perf_counter() - start:.1f} s{cached})"
        return False, f"the meta-step runs eager: compiling failed ({reason})"

    def _settled(self, iteration: int) -> bool:
        if self._settled_from is not None and iteration >= self._settled_from:
            return True
        if _settings(self.algorithm, iteration) == self._final:
            self._settled_from = iteration
            return True
        return False

    def _clear_grads(self) -> None:
        for p in self.meta_parameters:
            p.grad = None

    def _changing(self) -> list[torch.Tensor]:
        """What a compiled step changes besides gradients: the weights and Adam's state."""
        opt = self.optimizer
        return [*self.meta_parameters, *((*opt.exp_avg, *opt.exp_avg_sq, *opt.steps) if opt is not None else ())]

    def _state(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self._changing()]

    def _restore(self, state: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for t, saved in zip(self._changing(), state):
                t.copy_(saved)


def traced_meta_gradient(algorithm, meta_parameters: list[torch.Tensor], device: torch.device,
                         backend="inductor") -> Callable:
    """:func:`meta_step_numbers` under ``torch.compile`` with the options :class:`MetaStep` tries
    first, and no fallback or optimiser: for measuring what compiling would give where training
    does not compile (``maml-gui bench --compile --conv``). Compiles on its first call."""
    use_cache_folder()
    _configure_dynamo()

    def step(params, rates, batch):
        return meta_step_numbers(algorithm, meta_parameters, params, rates, batch, 0, traced=True)

    return torch.compile(_own_code(step), backend=backend, dynamic=False, **_attempts(device, backend)[0])


def unsupported(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot work here (an unsupported Python or platform, no C++
    compiler for CPU kernels), or None when it should."""
    try:
        from torch._dynamo.eval_frame import check_if_dynamo_supported

        check_if_dynamo_supported()
    except ImportError:
        pass   # a torch without this check: compiling will find out
    except Exception as exc:  # noqa: BLE001
        return f"torch.compile is not supported here ({_reason(exc)})"
    if device.type == "cpu":
        try:
            from torch._inductor.cpp_builder import get_cpp_compiler
        except Exception:  # noqa: BLE001 - a torch without this helper: compiling will find out
            return None
        try:
            get_cpp_compiler()
        except Exception:  # noqa: BLE001
            return "no C++ compiler found (torch.compile needs one for CPU kernels)"
    return None


def use_cache_folder() -> Path:
    """Point inductor at :func:`cache_folder` unless the user chose a folder (``TORCHINDUCTOR_CACHE_DIR``).
    Before anything imports inductor's compiler search: that fixes inductor's own default for the process."""
    folder = cache_folder()
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(folder))
    return folder


def _attempts(device: torch.device, backend) -> list[dict]:
    """``torch.compile`` keyword sets to try in turn, the plain one last. On the CPU: the wrapper
    that calls the kernels generated as C++ rather than Python (it needs Python's headers; at
    these sizes it is half of what is left besides the kernels) and :func:`_small_matmuls`. On
    CUDA, CUDA graphs replay the whole step (untested here: no GPU)."""
    if backend != "inductor":
        return [{}]
    if device.type == "cuda":
        return [{"mode": "reduce-overhead"}, {}]
    if device.type == "cpu":
        return [{"options": {"cpp_wrapper": True, "post_grad_custom_post_pass": _small_matmuls()}}, {}]
    return [{}]


def _small_matmuls():
    """An inductor graph pass: matrix products too small to be worth a BLAS call become
    elementwise products and sums, which inductor fuses into the neighbouring kernels.

    Why: at the sizes of the papers' networks many of the meta-step's products are outer
    products (a layer of width 1, like the sinusoid's input), matrix-vector products (its
    output; per-task sums) or per-task products with a tiny inner dimension (the one-step
    kernels' K x K); each costs microseconds of call overhead for almost no arithmetic. Measured
    on the sinusoid: +4-8% it/s at one inner step, +20% at five. Built on first use, so that
    importing this module does not import inductor."""
    from torch._inductor.custom_graph_pass import CustomGraphPass, get_hash_for_files

    aten = torch.ops.aten
    products = {aten.mm.default: (False, False), aten.addmm.default: (False, True),
                aten.bmm.default: (True, False), aten.baddbmm.default: (True, True)}

    def shape(node):
        value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
        return None if value is None else tuple(value.shape)

    class SmallMatmuls(CustomGraphPass):
        def __call__(self, graph: torch.fx.Graph) -> None:
            for node in list(graph.nodes):
                if node.op == "call_function" and node.target in products:
                    self._rewrite(graph, node, *products[node.target])

        def _rewrite(self, graph, node, batched: bool, accumulate: bool) -> None:
            acc, a, b = node.args[:3] if accumulate else (None, *node.args[:2])
            sa, sb = shape(a), shape(b)
            if sa is None or sb is None or (accumulate and shape(acc) is None):
                return
            m, k, n = sa[-2], sa[-1], sb[-1]
            work = m * k * n * (sa[0] if batched else 1)
            r, c = (1, 2) if batched else (0, 1)   # the row and column dimensions

            def call(op, *args):
                return graph.call_function(op, args)

            def swap(t):   # transpose the last two dimensions (post-grad graphs take permute, not transpose)
                return call(aten.permute.default, t, [0, 2, 1] if batched else [1, 0])

            with graph.inserting_before(node):
                if k == 1:                                      # outer product: exact
                    out = call(aten.mul.Tensor, a, b)
                elif n == 1:                                    # matrix times vector
                    out = call(aten.sum.dim_IntList, call(aten.mul.Tensor, a, swap(b)), [c], True)
                elif m == 1:                                    # vector times matrix
                    out = call(aten.sum.dim_IntList, call(aten.mul.Tensor, swap(a), b), [r], True)
                elif k <= SMALL_INNER and work <= SMALL_WORK:   # [m, k, 1] * [1, k, n], summed over k
                    product = call(aten.mul.Tensor, call(aten.unsqueeze.default, a, c + 1), call(aten.unsqueeze.default, b, r))
                    out = call(aten.sum.dim_IntList, product, [c])
                else:
                    return
                alpha, beta = node.kwargs.get("alpha", 1), node.kwargs.get("beta", 1)
                if alpha != 1:
                    out = call(aten.mul.Tensor, out, alpha)
                if accumulate:
                    out = call(aten.add.Tensor, out, acc if beta == 1 else call(aten.mul.Tensor, acc, beta))
            out.meta.update(node.meta)
            node.replace_all_uses_with(out)
            graph.erase_node(node)

        def uuid(self):   # part of inductor's cache key: a change to this file recompiles
            return get_hash_for_files((__file__,))

    return SmallMatmuls()


def _configure_dynamo() -> None:
    """Set in the compiling thread: torch keeps these settings per thread (a context variable)."""
    import torch._dynamo

    config = torch._dynamo.config
    config.trace_autograd_ops = True   # the autograd paths' autograd.grad / backward join the same graph
    if not config.suppress_errors:     # a step recompiled over and over would silently turn eager
        config.fail_on_recompile_limit_hit = True


def _own_code(fn: Callable) -> Callable:
    """``fn`` with a code object of its own: dynamo keeps compiled graphs and counts recompiles per
    code object, so every trainer's step gets its own cache (freed with it) rather than one shared
    cache that fills up after a few runs in one window session."""
    return types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__)


def _settings(algorithm, iteration: int) -> tuple:
    """What of the algorithm changes with the iteration: second order or not, multi-step loss weights."""
    second_order = getattr(algorithm, "second_order_at", None)
    step_weights = getattr(algorithm, "step_weights", None)
    weights = step_weights(iteration) if step_weights is not None else None
    return (second_order(iteration) if second_order is not None else None,
            tuple(weights.tolist()) if weights is not None else None)


class _Weights(tuple):
    """Fixed multi-step loss weights, read as constants by the traced graph."""

    def tolist(self) -> list[float]:
        return list(self)


def _frozen(algorithm, second_order, weights):
    """A copy of ``algorithm`` whose iteration-dependent settings are fixed, so the traced graph
    does not depend on the iteration number."""
    frozen = copy.copy(algorithm)
    if second_order is not None:
        frozen.second_order_at = lambda iteration: second_order
    if hasattr(algorithm, "step_weights"):
        fixed = None if weights is None else _Weights(weights)
        frozen.step_weights = lambda iteration: fixed
    return frozen


def _reason(exc: BaseException) -> str:
    """The first line of the error underneath (torch wraps a backend's error in its own)."""
    for _ in range(8):
        inner = getattr(exc, "inner_exception", None) or exc.__cause__
        if inner is None:
            break
        exc = inner
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    line = lines[0].strip() if lines else ""
    line = line if len(line) <= 160 else line[:157] + "…"
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
