"""The Adapt panel: adapt the learned initialisation to one new task and watch it."""
