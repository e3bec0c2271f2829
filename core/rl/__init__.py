"""Meta-reinforcement learning: environment families, policies, rollouts and their meta-training."""
