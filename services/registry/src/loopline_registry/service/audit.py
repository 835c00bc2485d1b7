"""Reading the audit trail, and "which version served model X at time T"."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from loopline_core.errors import InvalidArgument

from loopline_registry.domain.audit import AuditEntry, ServedAt
from loopline_registry.domain.auth import Caller, Role, require
from loopline_registry.domain.model import CHAMPION
from loopline_registry.domain.names import check_name
from loopline_registry.service.common import load_model
from loopline_registry.service.deps import Deps
from loopline_registry.service.queries import AuditFilter, Page, decode_int_token, encode_token


async def list_audit(deps: Deps, caller: Caller, query: AuditFilter, page: Page) -> tuple[list[AuditEntry], str]:
    require(caller, Role.READER, "reading the audit log")
    if query.model:
        check_name(query.model, "model")
    if query.since and query.until and query.since > query.until:
        raise InvalidArgument("since is after until", field="since")
    limit = page.limit
    async with deps.uow(readonly=True) as uow:
        found = await uow.audit.list(replace(query, after_id=decode_int_token(page.token), limit=limit + 1))
    more = len(found) > limit
    found = found[:limit]
    return found, encode_token(str(found[-1].id)) if more else ""


async def served_at(deps: Deps, caller: Caller, model: str, moment: datetime) -> ServedAt:
    """The deployment in force and the champion at ``moment``, from their histories."""
    require(caller, Role.READER, "reading deployment history")
    if moment.tzinfo is None:
        raise InvalidArgument("the time must carry a UTC offset", field="at")
    async with deps.uow(readonly=True) as uow:
        found = await load_model(uow, model)
        deployment = await uow.deployments.at(found.name, moment)
        champion = await uow.aliases.at(found.name, CHAMPION, moment)
    return ServedAt(found.name, moment, deployment, champion)
