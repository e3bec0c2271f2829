"""Meta-training: the trainer, its optimiser, the compiled step, distributed ranks and their launcher, bench."""
