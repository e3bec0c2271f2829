"""Networks as a parameter dict plus a functional forward: the MLP and the MAML paper's conv-4."""
