"""Migrations apply and re-apply cleanly on the real PostgreSQL, one schema per service."""

from __future__ import annotations

from importlib import resources

import asyncpg
import pytest

from loopline_core.db.migrations import Migration, core_migrations, load_folder, migrate
from loopline_core.errors import FailedPrecondition

SERVICES = {
    "registry": "loopline_registry",
    "trainer": "loopline_trainer",
    "feedback": "loopline_feedback_collector",
    "drift": "loopline_drift_detector",
}


@pytest.fixture
async def conn(postgres_dsn: str):
    connection = await asyncpg.connect(postgres_dsn)
    yield connection
    await connection.close()


@pytest.mark.parametrize("schema", sorted(SERVICES))
async def test_service_migrations_apply_then_reapply_as_noop(conn: asyncpg.Connection, schema: str) -> None:
    package = SERVICES[schema]
    migrations = [*core_migrations(), *load_folder(schema, resources.files(package) / "migrations")]
    await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}_t" CASCADE')
    applied = await migrate(conn, f"{schema}_t", migrations)
    assert [(m.source, m.version) for m in applied] == [(m.source, m.version) for m in migrations]
    assert await migrate(conn, f"{schema}_t", migrations) == []
    tables = await conn.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", f"{schema}_t")
    assert {"schema_migrations", "inbox"} <= {t["table_name"] for t in tables}


async def test_new_migration_applies_and_changed_one_is_refused(conn: asyncpg.Connection) -> None:
    await conn.execute('DROP SCHEMA IF EXISTS "mig_t" CASCADE')
    first = Migration("svc", 1, "things", "CREATE TABLE things (id int PRIMARY KEY)")
    await migrate(conn, "mig_t", [first])
    second = Migration("svc", 2, "more", "ALTER TABLE things ADD COLUMN name text")
    assert await migrate(conn, "mig_t", [first, second]) == [second]
    changed = Migration("svc", 1, "things", "CREATE TABLE things (id bigint PRIMARY KEY)")
    with pytest.raises(FailedPrecondition, match="changed after it was applied"):
        await migrate(conn, "mig_t", [changed, second])


async def test_failed_migration_leaves_nothing_behind(conn: asyncpg.Connection) -> None:
    await conn.execute('DROP SCHEMA IF EXISTS "mig_fail" CASCADE')
    good = Migration("svc", 1, "good", "CREATE TABLE good (id int)")
    bad = Migration("svc", 2, "bad", "CREATE TABLE broken (id nosuchtype)")
    with pytest.raises(asyncpg.PostgresError):
        await migrate(conn, "mig_fail", [good, bad])
    exists = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = 'mig_fail'")
    assert exists == 0
