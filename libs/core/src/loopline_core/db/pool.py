"""asyncpg pool for one service schema, with driver errors mapped to the taxonomy."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator

import asyncpg

from loopline_core.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable
from loopline_core.settings import PostgresSettings

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def check_schema_name(schema: str) -> str:
    """Schemas are interpolated into DDL, so only plain identifiers are allowed."""
    if not _SCHEMA_NAME.match(schema):
        raise InvalidArgument(f"invalid schema name {schema!r}", field="schema")
    return schema


async def create_pool(settings: PostgresSettings, schema: str) -> asyncpg.Pool:
    """A pool whose connections resolve unqualified names in ``schema`` first."""
    check_schema_name(schema)
    try:
        return await asyncpg.create_pool(
            settings.dsn,
            min_size=settings.min_pool_size,
            max_size=settings.max_pool_size,
            server_settings={"search_path": f"{schema},public", "application_name": schema},
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc


@contextlib.asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn driver exceptions into the error taxonomy at the adapter boundary."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise AlreadyExists(exc.detail or str(exc)) from exc
    except (asyncpg.ForeignKeyViolationError, asyncpg.CheckViolationError) as exc:
        raise FailedPrecondition(exc.detail or str(exc)) from exc
    except (asyncpg.DataError,) as exc:
        raise InvalidArgument(str(exc)) from exc
    except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError) as exc:
        # Two transactions collided; running it again succeeds: retryable.
        raise Unavailable(f"PostgreSQL transaction conflict, to be retried: {exc}") from exc
    except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
        raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc


async def ping(pool: asyncpg.Pool) -> None:
    """Readiness check: one round trip."""
    async with translated_errors():
        await pool.fetchval("SELECT 1")
