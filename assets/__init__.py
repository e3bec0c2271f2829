"""The app's icons and example task sets, installed as the data package ``maml_explorer_assets``.

pyproject.toml maps this folder to that name, so the files stay here in the repository yet ship
inside the wheel. Read them with ``importlib.resources.files("maml_explorer_assets")``, never with
paths relative to a module: those break once the packages are installed apart from this folder.
The engine may import this package; it holds no code and imports nothing.
"""
