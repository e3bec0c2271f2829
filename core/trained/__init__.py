"""A trained network in use: loading, adapting, held-out scores, task views, export."""
