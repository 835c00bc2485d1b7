"""API keys: authenticate a presented key, and let admins create and revoke keys.

Only the sha256 of a key is stored. Lookups are cached for a few seconds so that
reads on the hot path (alias resolution) cost no extra round trip; a revocation
made through this process takes effect at once, one made elsewhere within the TTL.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from loopline_core.errors import AlreadyExists, NotFound, Unauthenticated

from loopline_registry.domain.auth import ApiKey, Caller, Role, hash_key, require
from loopline_registry.domain.names import check_name
from loopline_registry.service.commands import CreateApiKey
from loopline_registry.service.common import audit
from loopline_registry.service.deps import Deps

MISSING = "missing API key: send the header 'authorization: Bearer <key>'"
SYSTEM = Caller("registry", Role.ADMIN)


class Authenticator:
    def __init__(self, deps: Deps, ttl: timedelta = timedelta(seconds=5)) -> None:
        self._deps = deps
        self._ttl = ttl
        self._cache: dict[str, tuple[datetime, ApiKey]] = {}

    def forget(self) -> None:
        self._cache.clear()

    async def authenticate(self, secret: str | None, *, trace_id: str = "", traceparent: str = "") -> Caller:
        if not secret:
            raise Unauthenticated(MISSING, field="authorization")
        digest = hash_key(secret)
        now = self._deps.clock()
        cached = self._cache.get(digest)
        key: ApiKey | None
        if cached is not None and cached[0] > now:
            key = cached[1]
        else:
            async with self._deps.uow(readonly=True) as uow:
                key = await uow.api_keys.by_hash(digest)
            if key is not None:  # unknown keys are not cached: a key created a moment later must work
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[digest] = (now + self._ttl, key)
        if key is None or key.revoked:
            raise Unauthenticated("the API key is unknown or has been revoked", field="authorization")
        return Caller(key.name, key.role, trace_id, traceparent)


async def create_api_key(deps: Deps, caller: Caller, cmd: CreateApiKey) -> tuple[ApiKey, str]:
    """Returns the key and its secret; the secret is shown this once and never stored."""
    require(caller, Role.ADMIN, "creating API keys")
    name, role = check_name(cmd.name, "name"), Role.parse(cmd.role)
    secret = "llk_" + secrets.token_urlsafe(32)
    key = ApiKey(name, role, hash_key(secret), caller.actor)
    async with deps.uow() as uow:
        if await uow.api_keys.get(name) is not None:
            raise AlreadyExists(f"API key {name!r} already exists", field="name")
        await uow.api_keys.add(key, deps.clock())
        await audit(uow, deps, caller, "api_key.created", f"api-keys/{name}", after={"role": role.label})
        await uow.commit()
    return key, secret


async def revoke_api_key(deps: Deps, caller: Caller, name: str, authenticator: Authenticator) -> None:
    require(caller, Role.ADMIN, "revoking API keys")
    async with deps.uow() as uow:
        key = await uow.api_keys.get(check_name(name, "name"))
        if key is None:
            raise NotFound(f"API key {name!r} does not exist", field="name")
        await uow.api_keys.revoke(name, deps.clock())
        await audit(uow, deps, caller, "api_key.revoked", f"api-keys/{name}", before={"role": key.role.label})
        await uow.commit()
    authenticator.forget()


async def seed_api_keys(deps: Deps, seeds: Sequence[tuple[str, Role, str]]) -> None:
    """Keys from settings (name, role, secret), written at start; an existing name is replaced."""
    async with deps.uow() as uow:
        for name, role, secret in seeds:
            key = ApiKey(check_name(name, "name"), role, hash_key(secret), SYSTEM.actor)
            known = await uow.api_keys.get(name)
            if known is not None and (known.key_hash, known.role, known.revoked) == (key.key_hash, role, False):
                continue
            await uow.api_keys.add(key, deps.clock())
            await audit(uow, deps, SYSTEM, "api_key.seeded", f"api-keys/{name}", after={"role": role.label})
        await uow.commit()
