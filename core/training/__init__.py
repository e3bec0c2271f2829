"""Meta-training: the trainer, its optimiser, the compiled step, distributed ranks, bench."""
