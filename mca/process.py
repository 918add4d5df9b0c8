"""Theory of operation: how a replica or agent process runs Python's runtime.

Two settings, applied once per process by ``tune`` (the Ray actors call it first thing):

* **The GIL hand-over interval** (``GIL_SWITCH_SECONDS``). A replica runs two busy threads (the
  event loop, and pysyncobj's tick thread; an agent, the loop and Ray's), and a thread that wants
  the GIL back after a socket call waits up to this long for the other to let go: at Python's
  default of 5 ms, every Raft round trip and every gRPC exchange paid several such waits.

* **Full garbage collections that stay short.** CPython's cyclic collector stops every thread
  while it scans; a full (generation 2) collection scans every tracked object. A replica holds
  the ledger (5,000 settled sessions of frozen dataclasses, a few dozen objects each) and the
  latest records: about 150,000 tracked objects, so a full collection took 120-210 ms, every
  2-3 s at 300 tasks/s (the ledger retires and creates sessions all the time, and Python runs a
  full collection whenever a quarter as many objects as it holds have been promoted). Measured
  on the leader at 1,024 in flight, those pauses were the longest stalls of pysyncobj's tick
  thread: with an entry being applied around them, 230-250 ms without a heartbeat, the
  shortest election timeout. They collected 0-10 objects each: nearly all of what survives to
  the old generation is the ledger, which dies by reference counting when a session retires.

  So after each full collection the survivors are frozen (``gc.freeze``: moved to the permanent
  generation, never scanned again). The next full collection scans only what was promoted
  since, a few thousand objects (a few ms). A frozen object is still freed by reference
  counting the moment nothing refers to it; what freezing gives up is the collection of a
  frozen object that later ends in a reference cycle. That is the handful per collection
  measured above, so every ``UNFREEZE_SECONDS`` the permanent generation is handed back and the
  next full collection scans everything once: one long pause an hour instead of one every few
  seconds, and what cycles there were are reclaimed.

The embedded cluster (``mca.embedded``) runs inside a caller's process (a test, a program) and
does not change that process's settings.
"""

from __future__ import annotations

import gc
import sys
import time
from typing import Any

GIL_SWITCH_SECONDS = 0.0005
#: How often the frozen survivors go back to the collector for one full scan.
UNFREEZE_SECONDS = 3600.0

_tuned = False
_last_unfreeze = 0.0


def tune() -> None:
    """Set this process's GIL interval and collector policy (once; later calls do nothing)."""
    global _tuned, _last_unfreeze
    if _tuned:
        return
    _tuned = True
    sys.setswitchinterval(GIL_SWITCH_SECONDS)
    gc.collect()  # what importing left as garbage goes now, before it could be frozen
    gc.freeze()  # modules, classes, functions: alive for the process's life
    _last_unfreeze = time.monotonic()
    gc.callbacks.append(_after_collection)


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    """gc's callback: after a full collection, freeze its survivors (or, once an hour, let the
    next full collection see everything again)."""
    global _last_unfreeze
    if phase != "stop" or info.get("generation") != 2:
        return
    now = time.monotonic()
    if now - _last_unfreeze >= UNFREEZE_SECONDS:
        _last_unfreeze = now
        gc.unfreeze()
    else:
        gc.freeze()
