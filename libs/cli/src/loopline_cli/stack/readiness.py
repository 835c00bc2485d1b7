"""Polling with a deadline: how the stack waits for anything (never a fixed sleep)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable


class Aborted(Exception):
    """Raised by an ``abort`` check to stop waiting early (e.g. the process exited)."""


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    abort: Callable[[], str | None] = lambda: None,
    first_interval: float = 0.05,
    max_interval: float = 0.5,
) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` passes (False).

    ``abort`` returning a reason raises :class:`Aborted` at once; the interval
    grows from ``first_interval`` so quick parts are seen quickly.
    """
    deadline = time.monotonic() + timeout
    interval = first_interval
    while True:
        if check():
            return True
        reason = abort()
        if reason:
            raise Aborted(reason)
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
        interval = min(interval * 1.5, max_interval)


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """GET ``url`` answers 200 (without a proxy: these are loopback endpoints)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
