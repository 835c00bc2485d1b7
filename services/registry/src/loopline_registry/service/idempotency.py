"""Idempotency keys on creates: the same key and request give the same result once.

A key is scoped by operation and caller. Repeating a request with a key returns
what the first one created; reusing the key for a different request is refused.
The key is stored in the create's own transaction, so either both exist or neither;
concurrent requests with the same key are serialised on the key (PostgreSQL: a
transaction-scoped advisory lock), so the later one replays the first's result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, is_dataclass
from typing import Any

from loopline_core.errors import FailedPrecondition

from loopline_registry.domain.auth import Caller
from loopline_registry.domain.names import check_text
from loopline_registry.service.ports import UnitOfWork


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, type(None))) else str(value)


def fingerprint(command: Any) -> str:
    assert is_dataclass(command) and not isinstance(command, type)
    fields = {k: v for k, v in asdict(command).items() if k != "idempotency_key"}
    return hashlib.sha256(json.dumps(_plain(fields), sort_keys=True).encode()).hexdigest()


class Idempotency:
    def __init__(self, operation: str, caller: Caller, key: str, command: Any) -> None:
        self.scope = f"{operation}:{caller.actor}"
        self.key = check_text(key, "idempotency_key", 200)
        self.fingerprint = fingerprint(command) if key else ""

    async def previous(self, uow: UnitOfWork) -> str | None:
        """The result reference of the first request with this key, if there was one."""
        if not self.key:
            return None
        found = await uow.idempotency.get(self.scope, self.key)
        if found is None:
            return None
        first_fingerprint, result = found
        if first_fingerprint != self.fingerprint:
            raise FailedPrecondition("idempotency_key was already used for a different request",
                                     field="idempotency_key")
        return result

    async def remember(self, uow: UnitOfWork, result: str, at: Any) -> None:
        if self.key:
            await uow.idempotency.put(self.scope, self.key, self.fingerprint, result, at)
