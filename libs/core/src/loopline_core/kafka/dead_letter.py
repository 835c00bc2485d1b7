"""Dead-letter records: the original key, value and headers, plus why and where from.

A record in ``<topic>.dlq`` can be replayed to its source topic as it is: the
``dlq_*`` headers describe the failure, every other header is the original's
(CloudEvents attributes and trace context included). Earlier ``dlq_*`` headers
are replaced, so a record that fails again after a replay names its latest failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from loopline_core.kafka.cloudevents import format_time

PREFIX = "dlq_"
#: Long messages are cut: headers are not the place for a whole traceback.
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class Failure:
    error: BaseException
    attempts: int
    consumer_group: str
    failed_at: datetime


def error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def dead_letter_headers(headers: Sequence[tuple[str, bytes]], *, topic: str, partition: int, offset: int,
                        failure: Failure) -> list[tuple[str, bytes]]:
    reason = str(failure.error) or error_type(failure.error)
    extra = {
        "dlq_reason": reason[:MAX_REASON_CHARS],
        "dlq_error_type": error_type(failure.error),
        "dlq_attempts": str(failure.attempts),
        "dlq_source_topic": topic,
        "dlq_source_partition": str(partition),
        "dlq_source_offset": str(offset),
        "dlq_consumer_group": failure.consumer_group,
        "dlq_failed_at": format_time(failure.failed_at),
    }
    kept = [(k, v) for k, v in headers if not k.startswith(PREFIX)]
    return kept + [(k, v.encode()) for k, v in extra.items()]
