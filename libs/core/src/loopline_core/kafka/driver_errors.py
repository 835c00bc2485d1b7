"""aiokafka exceptions turned into the error taxonomy at the adapter boundary."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from aiokafka import errors as kafka_errors

from loopline_core.errors import InvalidArgument, PermissionDenied, Unavailable

_TOO_LARGE = (kafka_errors.MessageSizeTooLargeError, kafka_errors.RecordTooLargeError,
              kafka_errors.RecordListTooLargeError)
_DENIED = (kafka_errors.TopicAuthorizationFailedError, kafka_errors.GroupAuthorizationFailedError,
           kafka_errors.ClusterAuthorizationFailedError)


@contextlib.asynccontextmanager
async def translated_kafka_errors(action: str) -> AsyncIterator[None]:
    """A record that can never fit is the caller's fault and authorisation is a
    configuration problem; every other driver failure (no broker, timeouts, leader
    moves, a missing topic) may pass, so it is Unavailable and retryable."""
    try:
        yield
    except _TOO_LARGE as exc:
        raise InvalidArgument(f"{action}: record too large ({exc})", field="value") from exc
    except _DENIED as exc:
        raise PermissionDenied(f"{action}: {exc}") from exc
    except kafka_errors.UnknownTopicOrPartitionError as exc:
        raise Unavailable(f"{action}: topic or partition does not exist (yet)") from exc
    except (kafka_errors.KafkaError, OSError) as exc:
        raise Unavailable(f"{action}: Kafka unavailable ({type(exc).__name__}: {exc})") from exc
