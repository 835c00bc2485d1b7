"""Who is calling, and what their role allows.

Roles are ordered: each one may do everything the roles below it may.

>>> require(Caller("ci", Role.TRAINER), Role.READER, "reading models")
>>> Role.parse("operator") > Role.TRAINER
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

from loopline_core.errors import InvalidArgument, PermissionDenied


class Role(IntEnum):
    READER = 1
    TRAINER = 2
    OPERATOR = 3
    ADMIN = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str, field: str = "role") -> Role:
        try:
            return cls[value.upper()]
        except KeyError:
            names = ", ".join(r.label for r in cls)
            raise InvalidArgument(f"{field} {value!r} is not one of {names}", field=field) from None


@dataclass(frozen=True)
class Caller:
    """An authenticated caller: the API key's name, its role and the request's trace."""

    actor: str
    role: Role
    trace_id: str = ""
    traceparent: str = ""


@dataclass(frozen=True)
class ApiKey:
    name: str
    role: Role
    key_hash: str
    created_by: str
    revoked: bool = False


def require(caller: Caller, role: Role, action: str) -> None:
    if caller.role < role:
        raise PermissionDenied(
            f"{action} needs the {role.label} role; API key {caller.actor!r} has the {caller.role.label} role")


def hash_key(secret: str) -> str:
    """Keys are random 256-bit tokens, so one unsalted sha256 is enough to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()
