"""A small migrations runner: each service owns one schema and a folder of SQL files.

Files are named ``NNNN_description.sql`` and applied in order, all missing ones in
one transaction (a failure leaves the schema as it was), recorded in
``<schema>.schema_migrations`` with a checksum. Applying
again is a no-op; an applied file whose content changed is refused (write a new
migration instead). A transaction-scoped advisory lock serialises replicas that
start at the same time. Core ships shared migrations (the Kafka inbox table) that
run before the service's own, under the source name ``core``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import asyncpg

from loopline_core.db.pool import check_schema_name
from loopline_core.errors import FailedPrecondition, InvalidArgument

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    source: str
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_folder(source: str, folder: Path | resources.abc.Traversable) -> list[Migration]:
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE.match(entry.name)
        if not match:
            raise InvalidArgument(f"migration file {entry.name!r} is not NNNN_name.sql", field="migrations")
        found.append(Migration(source, int(match[1]), match[2], entry.read_text()))
    return sorted(found, key=lambda m: m.version)


def core_migrations() -> list[Migration]:
    return load_folder("core", resources.files("loopline_core.db") / "sql")


async def migrate(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[Migration]:
    """Apply what is missing; return the migrations applied now."""
    check_schema_name(schema)
    applied_now = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"migrate:{schema}")
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        await conn.execute(
            f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
            " source text NOT NULL, version int NOT NULL, name text NOT NULL,"
            " checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),"
            " PRIMARY KEY (source, version))"
        )
        rows = await conn.fetch(f'SELECT source, version, checksum FROM "{schema}".schema_migrations')
        done = {(r["source"], r["version"]): r["checksum"] for r in rows}
        await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
        for migration in migrations:
            key = (migration.source, migration.version)
            if key in done:
                if done[key] != migration.checksum:
                    raise FailedPrecondition(
                        f"migration {migration.source}/{migration.version:04d}_{migration.name} "
                        "changed after it was applied; add a new migration instead"
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                f'INSERT INTO "{schema}".schema_migrations (source, version, name, checksum) '
                "VALUES ($1, $2, $3, $4)",
                migration.source, migration.version, migration.name, migration.checksum,
            )
            applied_now.append(migration)
    return applied_now
