"""Run folders on disk: their files, atomic writes, the writer's lock, following, sweeps."""
