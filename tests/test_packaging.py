"""A built wheel is the whole app: every module, the icons and the example task sets, and nothing else.

The wheel is built from a copy of the working tree by the installed setuptools (no network, no build
isolation), so a stale ``build/`` folder can neither hide a missing file nor be left in the repository.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib.resources import files
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSETS = ROOT / "assets"
SKIP = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "*.pyc")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    source, out = tmp_path_factory.mktemp("source") / "maml-gui", tmp_path_factory.mktemp("wheel")
    shutil.copytree(ROOT, source, ignore=SKIP)
    build = f"from setuptools import build_meta; print(build_meta.build_wheel({str(out)!r}))"
    proc = subprocess.run([sys.executable, "-c", build], cwd=source, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with zipfile.ZipFile(out / proc.stdout.strip().splitlines()[-1]) as archive:
        yield archive


def _names(wheel: zipfile.ZipFile) -> set[str]:
    return set(wheel.namelist())


def test_wheel_holds_every_module(wheel):
    modules = {p.relative_to(ROOT).as_posix() for package in ("core", "maml_gui")
               for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts}
    missing = sorted(modules - _names(wheel))
    assert not missing, f"not in the wheel (a new subpackage belongs in pyproject.toml's packages): {missing}"
    assert "maml_explorer_assets/__init__.py" in _names(wheel)


def test_wheel_holds_the_icons_and_examples(wheel):
    shipped = [p for p in ASSETS.rglob("*") if p.is_file() and p.suffix in (".svg", ".csv")]
    wanted = {"maml_explorer_assets/" + p.relative_to(ASSETS).as_posix()
              for p in [*shipped, ASSETS / "examples" / "README.md"]}
    assert len([w for w in wanted if w.endswith(".svg")]) >= 8
    assert {"maml_explorer_assets/examples/growth.csv", "maml_explorer_assets/examples/sites/alder_creek.csv"} <= wanted
    assert sorted(wanted - _names(wheel)) == []
    with wheel.open("maml_explorer_assets/examples/growth.csv") as packed:
        assert packed.read() == (ASSETS / "examples" / "growth.csv").read_bytes()


def test_wheel_holds_nothing_else(wheel):
    tops = {name.split("/")[0] for name in _names(wheel) if ".dist-info/" not in name}
    assert tops == {"core", "maml_gui", "maml_explorer_assets"}
    assert not [n for n in _names(wheel) if n.endswith((".png", ".pyc")) or "/tests/" in n or n.startswith("tests/")]


def test_wheel_command_starts_in_the_launcher(wheel):
    [entry_points] = [wheel.read(n).decode() for n in _names(wheel) if n.endswith(".dist-info/entry_points.txt")]
    assert "maml-gui = maml_gui.launcher:main" in entry_points


def test_installed_resources_are_found():
    """Through importlib.resources, as in a wheel; this also checks the (editable) install the tests run in."""
    from core.tasks.csv_family import EXAMPLE

    assets = files("maml_explorer_assets")
    assert (assets / "icons" / "start.svg").is_file() and (assets / "examples" / "sites").is_dir()
    assert EXAMPLE.is_file() and EXAMPLE.name == "growth.csv"
