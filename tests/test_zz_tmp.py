import time, sys
from pathlib import Path
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test
import tests.test_cluster_statemachine as m

def test_x(tmp_path):
    M = m.cluster_machine(3, bugs=("no-log-check",), out=tmp_path)
    stats = []
    orig_init = M.__init__
    def init(self):
        orig_init(self); stats.append(time.perf_counter())
    M.__init__ = init
    t0=time.perf_counter()
    try:
        run_state_machine_as_test(M, settings=settings(m.SETTINGS, max_examples=60, stateful_step_count=20))
    except AssertionError as e:
        pass
    print("\nEXAMPLES", len(stats), time.perf_counter()-t0)
