"""``maml-gui bench``: the speed (and optionally memory or compile) measurements, printed."""

from __future__ import annotations

import json
from typing import Callable

from core.cli.parser import UsageError
from core.config import ExperimentConfig


# -- bench ------------------------------------------------------------------------------------
def run(args, gui_bench: Callable[..., dict] | None = None) -> int:
    if args.images and not args.gui:
        raise UsageError("maml-gui bench: --images goes with --gui (an image run in the window vs headless)")
    if args.gui:
        if gui_bench is None:
            raise UsageError("maml-gui bench: --gui measures the window, which the engine cannot open; "
                             "run `maml-gui bench --gui` or `python -m maml_gui bench --gui`")
        result = gui_bench(args.seconds, images=True) if args.images else gui_bench(args.seconds)
        print(json.dumps(result) if args.json else "  ".join(f"{k}={v}" for k, v in result.items()))
        return 0
    if args.rl:
        return _bench_rl(args)
    config = ExperimentConfig().replace("algorithm", name=args.algorithm, inner_steps=args.inner_steps).replace(
        "train", meta_batch=args.meta_batch, device=args.device)
    config.validate()
    if args.memory is not None:
        from core.training.bench import bench_memory

        if args.memory < 1:
            raise UsageError("maml-gui bench: --memory needs a positive iteration count")
        rows = [{"iteration": i, "rss_mib": round(cur, 1), "peak_rss_mib": round(peak, 1)}
                for i, cur, peak in bench_memory(config, args.memory, max(1, args.memory // 10))]
        if args.json:
            print(json.dumps({"memory": rows}))
        else:
            for r in rows:
                print(f"iteration {r['iteration']:>7}  rss {r['rss_mib']:8.1f} MiB  peak {r['peak_rss_mib']:8.1f} MiB")
        return 0
    if args.compile and args.conv:
        from core.training.bench import bench_conv_compile, conv_compile_lines

        given = {"meta_batch": args.meta_batch} if "--meta-batch" in args.argv else {}
        result = bench_conv_compile(rounds=args.rounds if "--rounds" in args.argv else 2, device=args.device, **given)
        print(json.dumps(result) if args.json else "\n".join(conv_compile_lines(result)))
        return 0
    if args.compile:
        return _bench_compile(args, config)
    if args.conv:
        return _bench_conv(args)
    from core.training.bench import bench_speed

    result = bench_speed(config, rounds=args.rounds)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"{args.algorithm}, {args.inner_steps} inner step(s), meta-batch {args.meta_batch}, sinusoid 1-40-40-1, "
              f"K=10+10 on {result.device}: engine {result.engine_it_s:.1f} it/s, per-task loop "
              f"{result.loop_it_s:.1f} it/s, speedup {result.speedup:.1f}x"
              + (f" (batched-autograd path: {result.autograd_it_s:.1f} it/s, "
                 f"{result.autograd_it_s / result.loop_it_s:.1f}x)" if result.autograd_it_s else ""))
    return 0


def _bench_compile(args, config: ExperimentConfig) -> int:
    from core.training.bench import bench_compile

    result = bench_compile(config, rounds=args.rounds)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    setting = (f"{args.algorithm}, {args.inner_steps} inner step(s), meta-batch {args.meta_batch}, sinusoid 1-40-40-1, "
               f"K=10+10 on {result.device} ({result.gradient_path})")
    if result.compiled_it_s is None:
        print(f"{setting}: eager {result.eager_it_s:.1f} it/s; {result.note}")
        return 0

    def seconds(x):
        return "failed" if x is None else f"{x:.1f} s"

    print(f"{setting}: eager {result.eager_it_s:.1f} it/s, compiled {result.compiled_it_s:.1f} it/s, "
          f"speedup {result.speedup:.2f}x; compile time {seconds(result.compile_cold_s)} cold, "
          f"{seconds(result.compile_warm_s)} warm")
    return 0


def _bench_rl(args) -> int:
    from core.rl.bench import bench_rl

    result = bench_rl(quick=args.quick, rounds=args.rounds if "--rounds" in args.argv else 2)
    if args.json:
        print(json.dumps(result.to_dict()))
        return 0
    print(f"MAML-TRPO on nav2d, {result.tasks} tasks x {result.rollouts} trajectories x {result.horizon} steps: "
          f"rollouts {result.engine_steps_s:,.0f} env steps/s vs per-task per-trajectory loop "
          f"{result.loop_steps_s:,.0f} ({result.rollout_speedup:.1f}x); meta-iterations {result.engine_it_s:.3f} it/s "
          f"vs loop {result.loop_it_s:.3f} it/s ({result.iteration_speedup:.1f}x)")
    return 0


def _bench_conv(args) -> int:
    """Second order (engine vs per-task loop, peak memory), then evaluation and first-order training
    (grouped vs per-task convolutions); ``--quick`` shrinks all three for a sanity check."""
    from core.training.bench import bench_conv, conv_lines
    from core.training.bench_images import QUICK_TASKS, bench_evaluation, bench_first_order, image_lines

    given = {"meta_batch": args.meta_batch} if "--meta-batch" in args.argv else {}
    quick = {"meta_batch": 8} if args.quick and not given else given
    rounds = args.rounds if "--rounds" in args.argv else (1 if args.quick else 2)
    result = bench_conv(rounds=rounds, device=args.device, memory=not args.quick, **quick)
    evaluation = bench_evaluation(QUICK_TASKS if args.quick else 600)
    first_order = bench_first_order(rounds=rounds, meta_batch=quick.get("meta_batch"))
    if args.json:
        print(json.dumps({**result, "evaluation": evaluation, "first_order": first_order}))
    else:
        print("\n".join(conv_lines(result) + image_lines(evaluation, first_order)))
    return 0
