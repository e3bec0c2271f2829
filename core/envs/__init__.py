"""Environment families for meta-RL (the RL counterpart of `tasks/`): each samples tasks and steps all tasks × rollouts as one batch."""
