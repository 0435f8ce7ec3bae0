"""The one clock every default time source reads."""

from __future__ import annotations

import time


def now() -> float:
    """Return the current time in seconds since the epoch.

    ``time.time`` is looked up at each call rather than bound once, so that
    freezegun's patched clock is what every component sees in tests.
    """
    return time.time()
