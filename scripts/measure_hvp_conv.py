"""Would a hand-written Hessian-vector product (Pearlmutter's R-operator) speed up second-order MAML on
conv-4? (issue 23, item 4: build it only if it beats today's formulation by at least 1.5×.)

Measures, at the MAML paper's Omniglot setting (conv-4, 64 channels, stride 2, 28×28 grey, 5-way
1-shot, 15 query per class, one inner step, meta-batch 32 unless --meta-batch), in one process,
interleaved round by round:

* ``second``: today's second-order meta-gradient (the engine's ``maml`` meta-step: an inner step
  differentiated twice, one ordinary convolution per task);
* ``first``: the first-order meta-gradient (``fomaml``): support forward+backward, query forward+backward,
  everything an R-operator route runs too;
* ``support``: one forward+backward of every task's support set as one batched convolution (the
  fastest kernels for that pass).

An R-operator route adds to ``first`` one Hessian-vector product of the support loss per task: an
R-forward (per conv layer ``conv(Rh, W) + conv(h, V)``: two convolutions) and an R-backward (input and
weight gradients of both terms: four), i.e. about twice a forward+backward (three convolutions per
layer). Its optimistic cost is therefore ``first + 2 × support`` (batch norm's, ReLU's and the head's
R-operators left out, so the true cost is higher), and the best speed-up it could give is
``second / (first + 2 × support)``. ``--quick``: meta-batch 4, one round.

    python3 scripts/measure_hvp_conv.py [--meta-batch 32] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from core.training.bench import OMNIGLOT, _conv_setup, image_batches, interleaved_seconds, meta_stepper  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meta-batch", type=int, default=OMNIGLOT["meta_batch"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    setting = {**OMNIGLOT, "meta_batch": 4 if args.quick else args.meta_batch}
    rounds = 1 if args.quick else args.rounds
    generator = torch.Generator().manual_seed(0)
    net, params, second_algo, rates = _conv_setup("maml", setting, "cpu", generator)
    _, _, first_algo, first_rates = _conv_setup("fomaml", setting, "cpu", torch.Generator().manual_seed(0))
    batches = image_batches(setting, 2, "cpu", torch.Generator().manual_seed(1))

    def support(batch):
        out = net.forward(params, batch.support_x)   # shared weights: all tasks' images in one convolution
        loss = F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.support_y.reshape(-1))
        torch.autograd.grad(loss, list(params.values()))

    second, first, support_s = interleaved_seconds(
        [(meta_stepper(second_algo, params, rates), 1), (meta_stepper(first_algo, params, first_rates), 1),
         (support, 1)], batches, rounds)
    second, first, support_s = second / rounds, first / rounds, support_s / rounds
    bound = first + 2 * support_s
    print(f"Omniglot setting, meta-batch {setting['meta_batch']}, {torch.get_num_threads()} thread(s), "
          f"{rounds} round(s), seconds per meta-gradient:")
    print(f"  second order today            {second:.3f} s")
    print(f"  first order                   {first:.3f} s")
    print(f"  support forward+backward      {support_s:.3f} s (all tasks, one batched convolution per layer)")
    print(f"  R-operator route, optimistic  {bound:.3f} s (first order + 2 x support forward+backward)")
    print(f"  best speed-up it could give   {second / bound:.2f}x (needed: 1.5x)")


if __name__ == "__main__":
    main()
