"""Environment families for meta-RL; each samples tasks and steps all tasks × rollouts as one batch."""
