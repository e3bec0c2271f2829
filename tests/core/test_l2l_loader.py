"""The benches' learn2learn loader finds a user's source, loads single modules past a broken package
``__init__``, and the conv bench refuses a wrong ``--l2l`` with one line, exit code 2 (no learn2learn needed:
a fake source tree stands in for it)."""

import sys

import pytest

from scripts import bench_learn2learn_conv
from scripts.l2l_loader import import_l2l_maml, source_root

FAKE = {
    "__init__.py": "raise ImportError('torchvision is broken here')\n",   # what a real package import can do
    "utils/__init__.py": "def clone_module(m):\n    return m\n\ndef update_module(m):\n    return m\n",
    "algorithms/__init__.py": "raise ImportError('never imported')\n",
    "algorithms/base_learner.py": "class BaseLearner:\n    pass\n",
    "algorithms/maml.py": ("from learn2learn.algorithms.base_learner import BaseLearner\n"
                           "from learn2learn.utils import clone_module, update_module\n\n"
                           "class MAML(BaseLearner):\n    uses = (clone_module, update_module)\n"),
}


@pytest.fixture
def fake_sdist(tmp_path):
    """An extracted sdist: ``tmp/learn2learn-x/learn2learn/...``; learn2learn's modules are dropped after."""
    package = tmp_path / "learn2learn-x" / "learn2learn"
    for name, text in FAKE.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    before = {k: v for k, v in sys.modules.items() if k.split(".")[0] == "learn2learn"}
    yield package
    for name in [k for k in sys.modules if k.split(".")[0] == "learn2learn"]:
        del sys.modules[name]
    sys.modules.update(before)


def test_source_root_takes_the_package_folder_or_the_sdist_above_it(fake_sdist):
    assert source_root(fake_sdist)[0] == fake_sdist.resolve()
    assert source_root(fake_sdist.parent)[0] == fake_sdist.resolve()


def test_maml_module_loads_alone_past_a_broken_package_init(fake_sdist):
    maml, how = import_l2l_maml(fake_sdist.parent)
    assert maml is not None, how
    assert maml.__name__ == "MAML" and maml.__module__ == "learn2learn.algorithms.maml"
    assert maml.__mro__[1].__name__ == "BaseLearner" and "loaded alone" in how


def test_a_folder_without_learn2learn_is_named(tmp_path):
    maml, why = import_l2l_maml(tmp_path)
    assert maml is None and str(tmp_path) in why and "no learn2learn source" in why


def test_bench_refuses_a_wrong_source_with_one_line(tmp_path, capsys):
    assert bench_learn2learn_conv.main(["--l2l", str(tmp_path), "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err and "Traceback" not in err


def test_bench_refuses_more_threads_than_cores(tmp_path, capsys):
    assert bench_learn2learn_conv.main(["--threads", "100000", "--l2l", str(tmp_path)]) == 2
    assert "--threads 100000" in capsys.readouterr().err
