"""The process policy of replicas and agents (``mca.process``), in a child interpreter: it
changes process-wide settings (the GIL interval, the collector) that this test process keeps."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent(
    """
    import gc, sys, weakref
    import mca.process as p

    p.tune()
    p.tune()  # once: a second call adds no second callback
    assert sys.getswitchinterval() == p.GIL_SWITCH_SECONDS
    assert gc.callbacks.count(p._after_collection) == 1
    frozen_at_start = gc.get_freeze_count()
    assert frozen_at_start > 0  # what importing built is out of the scans

    class Node:
        pass

    kept = [Node() for _ in range(1000)]
    gc.collect()  # a full collection: its survivors are frozen after it
    assert gc.get_freeze_count() >= frozen_at_start + 1000
    assert all(gc.is_tracked(n) for n in kept)

    # A frozen object still goes the moment nothing refers to it (reference counting).
    probe = weakref.ref(kept[0])
    del kept[0]
    assert probe() is None

    # Once UNFREEZE_SECONDS have passed, the frozen go back: the next full scan sees them all.
    p._last_unfreeze -= p.UNFREEZE_SECONDS
    gc.collect()
    assert gc.get_freeze_count() == 0
    gc.collect()  # and the collection after that freezes its survivors again
    assert gc.get_freeze_count() >= 999
    print("ok")
    """
)


def test_tune_sets_the_gil_interval_and_freezes_what_survives_a_full_collection() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"
