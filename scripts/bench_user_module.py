"""What the generic path (your own nn.Module) costs next to the built-in MLP's fast path, and how it
compares with learn2learn's ``MAML`` wrapper and a plain per-task ``autograd.grad`` loop, all on the
same architecture (1-40-40-1 ReLU, written as a user module), the same batches and the same Adam step.

    python scripts/bench_user_module.py [--quick] [--meta-batch 25] [--steps 1] [--rounds 6] [--l2l PATH]

Every contender takes whole meta-iterations (sinusoid, second-order MAML, 10 shots / 10 query),
timed in turns round by round so a shared machine's drift hits all alike; the ratios are printed
side by side from one run. learn2learn is optional and never a dependency of this project: when it
cannot be imported, its row says why.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.algorithms.reference import loop_meta_gradient  # noqa: E402
from core.config import ExperimentConfig  # noqa: E402
from core.nets import user_module  # noqa: E402
from core.training.bench import interleaved_seconds  # noqa: E402
from core.training.optim import MetaAdam  # noqa: E402
from core.training.trainer import MetaTrainer  # noqa: E402
from scripts.l2l_loader import import_l2l_maml  # noqa: E402

MODULE = '''import torch
from torch import nn

class MLP(nn.Module):
    def __init__(self, in_features, out_features, hidden=40):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(in_features, hidden), nn.Linear(hidden, hidden),
                                     nn.Linear(hidden, out_features)])
    def forward(self, x):
        x = torch.relu(self.layers[0](x))
        x = torch.relu(self.layers[1](x))
        return self.layers[2](x)
'''


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few steps only: a sanity check, not a measurement")
    parser.add_argument("--meta-batch", type=int, default=25)
    parser.add_argument("--steps", type=int, default=1, help="inner steps")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--l2l", metavar="PATH", help="learn2learn's source folder (default: an installed learn2learn)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds, fast_steps, slow_steps = (1, 4, 2) if args.quick else (args.rounds, 40, 8)

    folder = Path(tempfile.mkdtemp(prefix="bench_user_module_"))
    path = folder / "mlp.py"
    path.write_text(MODULE)
    source = user_module.read_source(path)
    user_module.allow(source)
    base = (ExperimentConfig().replace("algorithm", name="maml", inner_steps=args.steps, inner_lr=0.01)
            .replace("train", meta_batch=args.meta_batch, shots=10, query=10, device="cpu", seed=0))
    builtin = MetaTrainer(base.replace("model", name="mlp", hidden=(40, 40), activation="relu"))
    generic = MetaTrainer(base.replace("model", name="module", module=f"{path}:MLP", module_sha256=source.sha256))
    batches = [builtin.sample_batch() for _ in range(4)]
    module = generic.net.module()

    params = {n: p.detach().clone().requires_grad_(True) for n, p in generic.params.items()}
    loop_opt = MetaAdam(list(params.values()), lr=1e-3)

    def loop_step(batch):
        loop_opt.zero_grad(set_to_none=True)
        _, grads = loop_meta_gradient(module, params, batch, args.steps, 0.01)
        for n, p in params.items():
            p.grad = grads[n]
        loop_opt.step()

    rows = [("built-in MLP (fast path: " + builtin.gradient_path + ")", builtin.step, fast_steps),
            ("your module, generic path (" + generic.gradient_path + ")", generic.step, fast_steps),
            ("plain per-task autograd.grad loop (reference)", loop_step, slow_steps)]
    maml_cls, how = import_l2l_maml(args.l2l)
    if maml_cls is not None:
        l2l_module = generic.net.module()
        l2l_module.load_state_dict({n: p.detach() for n, p in generic.params.items()})
        wrapper = maml_cls(l2l_module, lr=0.01, first_order=False)
        l2l_opt = torch.optim.Adam(wrapper.parameters(), lr=1e-3)

        def l2l_step(batch):
            l2l_opt.zero_grad(set_to_none=True)
            total = 0.0
            for t in range(batch.n_tasks):
                learner = wrapper.clone()
                for _ in range(args.steps):
                    learner.adapt(F.mse_loss(learner(batch.support_x[t]), batch.support_y[t]))
                total = total + F.mse_loss(learner(batch.query_x[t]), batch.query_y[t])
            (total / batch.n_tasks).backward()
            l2l_opt.step()

        short = "package" if how == "learn2learn.algorithms.MAML" else "its maml.py loaded alone"
        rows.append((f"learn2learn MAML wrapper ({short})", l2l_step, slow_steps))
    seconds = interleaved_seconds([(step, count) for _, step, count in rows], batches, rounds)
    rates = [count * rounds / s for (_, _, count), s in zip(rows, seconds)]
    print(f"sinusoid, second-order MAML, {args.steps} inner step(s), meta-batch {args.meta_batch}, 10 shots / 10 query, "
          f"1-40-40-1 ReLU, CPU, 1 thread, {rounds} round(s){' (--quick: not a measurement)' if args.quick else ''}")
    generic_rate = rates[1]
    for (label, _, _), rate in zip(rows, rates):
        print(f"  {label:<62} {rate:9.1f} it/s   {rate / generic_rate:6.2f}x the generic path")
    if maml_cls is None:
        print(f"  learn2learn MAML wrapper: not measured: {how}")
    elif "alone" in how:
        print(f"  note: {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
