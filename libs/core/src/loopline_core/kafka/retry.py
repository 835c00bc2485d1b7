"""Exponential backoff between retries of a retryable failure."""

from __future__ import annotations

from dataclasses import dataclass

from loopline_core.settings import KafkaSettings


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    max_s: float

    @classmethod
    def from_settings(cls, settings: KafkaSettings) -> Backoff:
        return cls(settings.retry_backoff_ms / 1000, settings.retry_backoff_max_ms / 1000)

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, ...): doubling, capped.

        >>> [Backoff(0.2, 1.0).delay(n) for n in (1, 2, 3, 4)]
        [0.2, 0.4, 0.8, 1.0]
        """
        return min(self.initial_s * 2.0 ** (retry - 1), self.max_s)


def is_retryable(exc: BaseException) -> bool:
    """Only errors that say so are retried (``Unavailable`` and its kind)."""
    return bool(getattr(exc, "retryable", False))
