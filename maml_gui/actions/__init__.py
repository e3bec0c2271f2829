"""What the menus do: files, experiments, plots, weights, sweeps and launches."""
