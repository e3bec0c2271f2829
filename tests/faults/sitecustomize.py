"""Fault injection for the distributed tests, loaded by every process the test starts (this folder is
put first on their ``PYTHONPATH``): ``MAML_TEST_FAULT="die:RANK:ITERATION"`` kills rank RANK as an
out-of-memory kill does when it reaches ITERATION's exchange; ``"hang:RANK:ITERATION"`` makes it hang there."""

import os

_FAULT = os.environ.get("MAML_TEST_FAULT")
if _FAULT and os.environ.get("RANK") == _FAULT.split(":")[1]:
    import signal
    import sys
    import time

    sys.path.insert(0, os.environ["MAML_TEST_ROOT"])
    from core.training import distributed

    _kind, _, _at = _FAULT.split(":")
    _reduce = distributed.Group.reduce

    def _misbehaving_reduce(self, meta_parameters, numbers, share, iteration):
        if iteration + 1 == int(_at):
            if _kind == "die":
                os.kill(os.getpid(), signal.SIGKILL)
            while _kind == "hang":
                time.sleep(3600)
        return _reduce(self, meta_parameters, numbers, share, iteration)

    distributed.Group.reduce = _misbehaving_reduce
