"""learn2learn's ``MAML`` wrapper and ``OmniglotCNN``, loaded from the user's copy for side-by-side benches.

learn2learn is never a dependency of this project, and its 0.2.0 sdist does not build on Python 3.11.
Its package ``__init__`` imports its vision, text and gym modules (torchvision …), so when the package
cannot be imported the few pure-PyTorch modules a bench needs are loaded on their own from the source
folder, under stub packages that bypass the ``__init__``s. Nothing from learn2learn is copied here.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

GET_SOURCE = ("get its source with `pip download learn2learn==0.2.0 --no-deps --no-binary :all:`, "
              "extract it and pass --l2l PATH/learn2learn-0.2.0")


def source_root(path: str | Path | None) -> tuple[Path | None, str]:
    """The learn2learn package folder (the one holding ``algorithms/maml.py``) given the user's path —
    that folder or the extracted sdist above it — or, without a path, an installed package's folder.
    ``(None, why)`` when there is none."""
    if path is not None:
        given = Path(path).expanduser()
        for folder in (given, given / "learn2learn"):
            if (folder / "algorithms" / "maml.py").is_file():
                return folder.resolve(), ""
        return None, f"{given}: no learn2learn source there (no algorithms/maml.py nor learn2learn/algorithms/maml.py)"
    spec = importlib.util.find_spec("learn2learn")
    if spec is None or not spec.submodule_search_locations:
        return None, f"learn2learn is not installed; {GET_SOURCE}"
    return Path(list(spec.submodule_search_locations)[0]), ""


def import_l2l_maml(path: str | Path | None = None):
    """``(learn2learn.algorithms.MAML, how)``, or ``(None, why not)``. Without ``path`` the installed
    package is imported, its MAML module loaded alone when the package import fails; with ``path``
    the module is loaded alone from that source."""
    first = ""
    if path is None:
        try:
            import learn2learn

            return learn2learn.algorithms.MAML, "learn2learn.algorithms.MAML"
        except Exception as exc:  # noqa: BLE001 - ImportError, or torchvision failing to load its operators
            first = _failed(exc)
    root, why = source_root(path)
    if root is None:
        return None, why + first
    try:
        _stub_packages(root)
        sys.modules["learn2learn.utils"] = _load("learn2learn.utils", root / "utils" / "__init__.py")
        _load("learn2learn.algorithms.base_learner", root / "algorithms" / "base_learner.py")
        maml = _load("learn2learn.algorithms.maml", root / "algorithms" / "maml.py")
    except Exception as exc:  # noqa: BLE001 - any failure is reported as the row's reason
        return None, f"{root}: loading learn2learn/algorithms/maml.py alone failed ({type(exc).__name__}: {exc}){first}"
    return maml.MAML, f"{root / 'algorithms' / 'maml.py'} loaded alone{first}"


def import_l2l_omniglot_cnn(path: str | Path | None = None):
    """``(learn2learn.vision.models.OmniglotCNN, how)``, or ``(None, why not)``: as
    :func:`import_l2l_maml`; ``cnn4.py`` alone needs ``l2l.nn``'s ``Lambda`` and ``Flatten`` (its
    ``nn/misc.py``, loaded alone as ``learn2learn.nn``) and scipy."""
    first = ""
    if path is None:
        try:
            import learn2learn

            return learn2learn.vision.models.OmniglotCNN, "learn2learn.vision.models.OmniglotCNN"
        except Exception as exc:  # noqa: BLE001 - as in import_l2l_maml
            first = _failed(exc)
    root, why = source_root(path)
    if root is None:
        return None, why + first
    try:
        package = _stub_packages(root)
        package.nn = _load("learn2learn.nn", root / "nn" / "misc.py")
        cnn4 = _load("learn2learn.vision.models.cnn4", root / "vision" / "models" / "cnn4.py")
    except Exception as exc:  # noqa: BLE001 - e.g. scipy missing
        return None, f"{root}: loading learn2learn/vision/models/cnn4.py alone failed ({type(exc).__name__}: {exc}){first}"
    return cnn4.OmniglotCNN, f"{root / 'vision' / 'models' / 'cnn4.py'} loaded alone{first}"


def _failed(exc: Exception) -> str:
    """Why an installed package would not import, for the message; nothing when it is simply not installed."""
    if isinstance(exc, ModuleNotFoundError) and exc.name == "learn2learn":
        return ""
    return f" (the package import failed: {type(exc).__name__}: {exc})"


def _stub_packages(root: Path) -> types.ModuleType:
    """Empty ``learn2learn`` packages pointing at ``root`` (once; a failed package import's half-loaded
    modules are dropped first), so single modules import each other without any ``__init__``."""
    package = sys.modules.get("learn2learn")
    if getattr(package, "__l2l_stub__", None) == str(root):
        return package
    for name in [k for k in sys.modules if k == "learn2learn" or k.startswith("learn2learn.")]:
        del sys.modules[name]
    for name, folder in (("learn2learn", root), ("learn2learn.algorithms", root / "algorithms"),
                         ("learn2learn.utils", root / "utils"), ("learn2learn.vision", root / "vision"),
                         ("learn2learn.vision.models", root / "vision" / "models")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(folder)]
        sys.modules[name] = stub
    sys.modules["learn2learn"].__l2l_stub__ = str(root)
    return sys.modules["learn2learn"]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
