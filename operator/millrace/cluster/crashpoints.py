"""Named points where a test can make the operator die at once, as a crash would.

`MILLRACE_CRASH_AT=<point>:<n>` ends the process (exit 137, no cleanup) the
n-th time it passes `<point>`. Unset, as in production, a point costs one
dictionary lookup. This is how the reliability tests kill the operator at
the moments that matter, rather than at a time they can only guess.
"""

from __future__ import annotations

import os
import threading
from collections import Counter

_PASSED: Counter[str] = Counter()
_LOCK = threading.Lock()


def crash_point(name: str) -> None:
    wanted = os.environ.get("MILLRACE_CRASH_AT")
    if not wanted:
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    with _LOCK:
        _PASSED[name] += 1
        if _PASSED[name] == int(nth or 1):
            os._exit(137)
