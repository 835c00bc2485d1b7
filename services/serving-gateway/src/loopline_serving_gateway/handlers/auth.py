"""Optional client API keys, each with its own token-bucket rate limit."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

from loopline_core.errors import PermissionDenied, Unauthenticated, Unavailable


class RateLimited(Unavailable):
    """The key's request rate is above its limit; retry later."""


class Gatekeeper:
    def __init__(self, keys: list[str], per_key_rate: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = [k.encode() for k in keys]
        self._rate = per_key_rate
        self._clock = clock
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def admit(self, authorization: str) -> None:
        """Check ``authorization: Bearer <key>``; a no-op when no keys are configured."""
        if not self._keys:
            return
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("an API key is required: send authorization: Bearer <key>", field="authorization")
        presented = token.encode()
        key = next((k for k in self._keys if hmac.compare_digest(k, presented)), None)
        if key is None:
            raise PermissionDenied("the API key is not valid", field="authorization")
        if self._rate > 0:
            self._take(key)

    def _take(self, key: bytes) -> None:
        now = self._clock()
        tokens, last = self._buckets.get(key, (self._rate, now))
        tokens = min(self._rate, tokens + (now - last) * self._rate)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            raise RateLimited(f"rate limit of {self._rate:g} requests/s for this key exceeded", field="authorization")
        self._buckets[key] = (tokens - 1.0, now)
