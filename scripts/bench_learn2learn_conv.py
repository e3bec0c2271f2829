"""This engine's MAML and first-order MAML next to learn2learn's ``MAML`` + ``OmniglotCNN`` at the Omniglot setting.

    python scripts/bench_learn2learn_conv.py --l2l PATH [--quick] [--threads 1] [--meta-batch 32] [--rounds 3] [--steps 2]

The setting (``OMNIGLOT`` in core/training/bench.py): 28×28 grey, 5-way 1-shot, 15 query per class,
meta-batch 32, one inner step at lr 0.4, conv-4 with 64 channels, stride 2, batch norm. Each contender
takes whole meta-iterations (meta-gradient and an Adam step) on the same batches, timed in turns round by
round in one process on the same number of intra-op threads, so a shared machine's drift hits all alike.
learn2learn runs the loop of its Omniglot example: per task ``clone()``, ``adapt()`` on the support loss,
the query loss's ``backward()``; then the gradients are divided by the meta-batch and Adam steps.

learn2learn's OmniglotCNN is not quite the engine's conv-4 (the bench prints both and how they differ:
conv biases, the head on the spatial mean of the last map; in learn2learn 0.2.0 its batch norm's
``eps=1e-3`` is commented out, so both use PyTorch's 1e-5), so learn2learn's MAML also runs on the
engine's conv-4 as an ``nn.Module``: the same architecture and, before timing, the same weights, on
which the two meta-gradients are compared. learn2learn is never a dependency of this project; ``--l2l``
names its source (see scripts/l2l_loader.py).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.training.bench import OMNIGLOT, _conv_setup, image_batches, interleaved_seconds, meta_stepper  # noqa: E402
from core.tasks import TaskBatch  # noqa: E402
from core.training.optim import MetaAdam  # noqa: E402
from scripts.l2l_loader import import_l2l_maml, import_l2l_omniglot_cnn  # noqa: E402

META_LR = 1e-3
ENGINE_ALGORITHMS = {False: "maml", True: "fomaml"}   # first order? -> the engine's algorithm
ORDER = {False: "second order", True: "first order "}


def engine_iteration(algorithm, params, rates):
    """One meta-iteration of the engine: its meta-gradient and its Adam step (as the trainer takes them)."""
    gradient = meta_stepper(algorithm, params, rates)
    opt = MetaAdam([*params.values(), *rates.tensors.values()], lr=META_LR)

    def step(batch):
        gradient(batch)
        opt.step()

    return step


def l2l_gradient(wrapper, batch, inner_steps: int) -> None:
    """learn2learn's Omniglot example's meta-gradient: per task clone, adapt, query loss backward
    (accuracy computed as it does); the summed gradients are divided by the meta-batch."""
    for p in wrapper.parameters():
        p.grad = None
    for t in range(batch.n_tasks):
        learner = wrapper.clone()
        for _ in range(inner_steps):
            learner.adapt(F.cross_entropy(learner(batch.support_x[t]), batch.support_y[t]))
        out = learner(batch.query_x[t])
        F.cross_entropy(out, batch.query_y[t]).backward()
        (out.argmax(1) == batch.query_y[t]).float().mean()
    for p in wrapper.parameters():
        p.grad.mul_(1.0 / batch.n_tasks)


def l2l_iteration(wrapper, inner_steps: int):
    opt = torch.optim.Adam(wrapper.parameters(), lr=META_LR)

    def step(batch):
        l2l_gradient(wrapper, batch, inner_steps)
        opt.step()

    return step


def describe(module: nn.Module, channels: int) -> str:
    """Weight count and the details in which conv-4 variants differ, read off the module itself."""
    count = sum(p.numel() for p in module.parameters())
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    head = [m for m in module.modules() if isinstance(m, nn.Linear)][-1]
    eps = sorted({m.eps for m in norms})
    tracked = any(m.track_running_stats for m in norms)
    return (f"{count:,} weights: {len(convs)} conv {convs[0].kernel_size[0]}x{convs[0].kernel_size[1]} stride "
            f"{convs[0].stride[0]} ({'with' if convs[0].bias is not None else 'no'} bias), batch norm eps "
            f"{', '.join(f'{e:g}' for e in eps)} ({'running statistics tracked, ' if tracked else ''}batch statistics "
            f"in training), head {head.in_features}->{head.out_features} "
            f"({'on the spatial mean of the last map' if head.in_features == channels else 'on the flattened last map'})")


def bn_eps(module: nn.Module) -> set[float]:
    return {m.eps for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def gradient_check(maml_cls, setting, batch, first_order: bool, dtype: torch.dtype) -> tuple[float, float, float | None]:
    """From the same weights (the engine's initialisation copied into its conv-4 module, wrapped in
    learn2learn's MAML): max |engine − learn2learn| over every meta-gradient element, max |gradient|,
    and, in float32, max |learn2learn(w) − learn2learn(w·(1 + 1e-6·noise))|: how far rounding-sized changes
    move this meta-gradient (measured touchy at this setting), the floor under which two float32
    computations cannot be told apart; float64 is the exactness check."""
    net, params, algorithm, rates = _conv_setup(ENGINE_ALGORITHMS[first_order], setting, torch.device("cpu"),
                                                torch.Generator().manual_seed(1))
    params = {n: p.detach().to(dtype).requires_grad_(True) for n, p in params.items()}
    batch = TaskBatch(batch.support_x.to(dtype), batch.support_y, batch.query_x.to(dtype), batch.query_y)
    meta_stepper(algorithm, params, rates)(batch)

    def l2l(weights):
        module = net.module().to(dtype)
        module.load_state_dict(weights, strict=True)
        wrapper = maml_cls(module, lr=setting["inner_lr"], first_order=first_order)
        l2l_gradient(wrapper, batch, setting["inner_steps"])
        return {n: p.grad for n, p in module.named_parameters()}

    theirs = l2l({n: p.detach() for n, p in params.items()})
    diff = max((params[n].grad - theirs[n]).abs().max().item() for n in params)
    floor = None
    if dtype == torch.float32:   # 1e-6: about the relative rounding error of float32 activations here
        noise = torch.Generator().manual_seed(2)
        moved = l2l({n: p.detach() * (1 + 1e-6 * torch.randn(p.shape, generator=noise)) for n, p in params.items()})
        floor = max((moved[n] - theirs[n]).abs().max().item() for n in params)
    return diff, max(p.grad.abs().max().item() for p in params.values()), floor


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--l2l", metavar="PATH", help="learn2learn's source: its package folder or the extracted "
                                                      "sdist (default: an installed learn2learn)")
    parser.add_argument("--quick", action="store_true", help="meta-batch 4, one round: a sanity check, not a measurement")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, the same for every contender")
    parser.add_argument("--meta-batch", type=int, default=OMNIGLOT["meta_batch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2, help="meta-iterations per contender per round")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    if not 1 <= args.threads <= cores:
        print(f"bench_learn2learn_conv: --threads {args.threads}: must be between 1 and this machine's {cores} cores",
              file=sys.stderr)
        return 2
    if args.meta_batch < 1 or args.rounds < 1 or args.steps < 1:
        print("bench_learn2learn_conv: --meta-batch, --rounds and --steps must be at least 1", file=sys.stderr)
        return 2
    maml_cls, maml_how = import_l2l_maml(args.l2l)
    if maml_cls is None:
        print(f"bench_learn2learn_conv: learn2learn's MAML: {maml_how}", file=sys.stderr)
        return 2
    cnn_cls, cnn_how = import_l2l_omniglot_cnn(args.l2l)

    torch.set_num_threads(args.threads)
    meta_batch, rounds, steps, n_batches = (4, 1, 1, 1) if args.quick else (args.meta_batch, args.rounds, args.steps, 2)
    setting = {**OMNIGLOT, "meta_batch": meta_batch}
    ways, channels, inner_steps = setting["ways"], setting["channels"], setting["inner_steps"]
    batches = image_batches(setting, n_batches, torch.device("cpu"), torch.Generator().manual_seed(0))
    load_before = os.getloadavg()

    print(f"Omniglot setting: {setting['image'][1]}x{setting['image'][2]} grey, {ways}-way {setting['shots']}-shot, "
          f"{setting['query']} query per class, meta-batch {meta_batch}, {inner_steps} inner step(s) at lr "
          f"{setting['inner_lr']}, conv-4 {channels} channels stride 2 with batch norm; CPU, torch {torch.__version__}, "
          f"{torch.get_num_threads()} intra-op thread(s) for every contender"
          f"{' (--quick: not a measurement)' if args.quick else ''}")
    print(f"learn2learn MAML: {maml_how}")
    print(f"learn2learn OmniglotCNN: {cnn_how if cnn_cls is not None else 'not measured: ' + cnn_how}")

    engines, same_arch = {}, {}
    for first_order, name in ENGINE_ALGORITHMS.items():
        net, params, algorithm, rates = _conv_setup(name, setting, torch.device("cpu"), torch.Generator().manual_seed(0))
        engines[first_order] = (engine_iteration(algorithm, params, rates), algorithm.gradient_path(params, rates))
        module = net.module()
        module.load_state_dict({n: p.detach() for n, p in params.items()}, strict=True)
        same_arch[first_order] = module
    print("architectures:")
    engine_count, module_count = (sum(p.numel() for p in ps) for ps in (params.values(), same_arch[False].parameters()))
    print(f"  engine conv-4: {engine_count:,} weights in its parameter dict, {module_count:,} in its nn.Module "
          f"({'the same' if engine_count == module_count else 'DIFFERENT'})")
    print(f"  engine conv-4 as an nn.Module (learn2learn's MAML wraps it): {describe(same_arch[False], channels)}")
    if cnn_cls is not None:
        with torch.random.fork_rng():   # OmniglotCNN draws its initialisation from the global generator
            torch.manual_seed(0)
            omniglot = {fo: cnn_cls(output_size=ways, hidden_size=channels, layers=setting["depth"]) for fo in (False, True)}
        print(f"  learn2learn OmniglotCNN: {describe(omniglot[False], channels)}")
        if bn_eps(omniglot[False]) != bn_eps(same_arch[False]):
            print("  batch-norm eps differs: the meta-gradient check below runs on the engine's conv-4, so both sides "
                  "use the engine's eps there; the timings do not depend on eps")

    print("meta-gradient check, batch 0, the same weights (learn2learn's MAML on the engine's conv-4 module):")
    for dtype in (torch.float64, torch.float32):
        for first_order in (False, True):
            diff, scale, floor = gradient_check(maml_cls, setting, batches[0], first_order, dtype)
            line = f"  {str(dtype)[6:]}, {ORDER[first_order].strip()}: max |engine - learn2learn| = {diff:.1e} " \
                   f"(largest element {scale:.1e})"
            if floor is not None:
                line += f"; learn2learn's own moves by {floor:.1e} when its weights change by one part in a million"
            print(line)

    rows = []   # (first order?, contender, label, step)
    for first_order in (False, True):
        if cnn_cls is not None:
            wrapper = maml_cls(omniglot[first_order], lr=setting["inner_lr"], first_order=first_order)
            rows.append((first_order, "omniglot", "learn2learn MAML(OmniglotCNN)", l2l_iteration(wrapper, inner_steps)))
        step, path = engines[first_order]
        rows.append((first_order, "engine", f"engine {ENGINE_ALGORITHMS[first_order]} ({path})", step))
        wrapper = maml_cls(same_arch[first_order], lr=setting["inner_lr"], first_order=first_order)
        rows.append((first_order, "same", "learn2learn MAML(engine's conv-4)", l2l_iteration(wrapper, inner_steps)))
    seconds = interleaved_seconds([(row[-1], steps) for row in rows], batches, rounds)
    rates = {(first_order, who): rounds * steps / s for (first_order, who, _, _), s in zip(rows, seconds)}
    load_after = os.getloadavg()

    print(f"meta-iterations/s (meta-gradient + Adam step; {rounds} round(s) of {steps} each, after one warm-up pass):")
    for first_order, who, label, _ in rows:
        print(f"  {ORDER[first_order]}  {label:<72} {rates[(first_order, who)]:7.3f} it/s")
    print("engine / learn2learn:")
    for first_order in (False, True):
        engine = rates[(first_order, "engine")]
        parts = [f"{engine / rates[(first_order, 'omniglot')]:.2f}x vs OmniglotCNN"] if cnn_cls is not None else []
        parts.append(f"{engine / rates[(first_order, 'same')]:.2f}x on the same architecture")
        print(f"  {ORDER[first_order]}: {', '.join(parts)}")
    print(f"load average (1, 5, 15 min): {', '.join(f'{x:.2f}' for x in load_before)} before timing, "
          f"{', '.join(f'{x:.2f}' for x in load_after)} after, on {cores} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
