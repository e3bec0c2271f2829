"""Meta-reinforcement learning (MAML paper §5.3) over the environment families of `core/envs/`: rollouts, returns
and advantages, the policy-gradient inner step, TRPO and the clipped-surrogate outer steps, the trainer, held-out
evaluation with its baselines, adapting to one task, the speed bench. Imports envs, nets, storage and training;
never `cli`, Qt or `maml_gui`."""
