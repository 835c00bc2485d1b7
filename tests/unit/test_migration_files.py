from __future__ import annotations

from pathlib import Path

import pytest

from loopline_core.db.migrations import core_migrations, load_folder
from loopline_core.db.pool import check_schema_name
from loopline_core.errors import InvalidArgument


def test_files_load_in_version_order(tmp_path: Path) -> None:
    (tmp_path / "0002_second.sql").write_text("SELECT 2")
    (tmp_path / "0001_first.sql").write_text("SELECT 1")
    (tmp_path / "README.md").write_text("ignored")
    assert [(m.version, m.name) for m in load_folder("svc", tmp_path)] == [(1, "first"), (2, "second")]


def test_badly_named_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "1_first.sql").write_text("SELECT 1")
    with pytest.raises(InvalidArgument, match="1_first.sql"):
        load_folder("svc", tmp_path)


def test_core_ships_the_inbox() -> None:
    assert [m.name for m in core_migrations()] == ["inbox"]


@pytest.mark.parametrize("schema", ["Registry", "x;drop", "", "a" * 64, '"q"'])
def test_schema_names_are_plain_identifiers(schema: str) -> None:
    with pytest.raises(InvalidArgument):
        check_schema_name(schema)
