"""A blank database migrated to head matches schema.py on both backends; re-migrating is a no-op."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from llmops.cli import run_in_store
from llmops.settings import Settings
from llmops.store import schema
from llmops.store.migrate import migrate, pending
from llmops.store.migrations import MIGRATIONS


def _columns(conn: sa.Connection) -> dict[str, set[str]]:
    insp = sa.inspect(conn)
    return {t: {c["name"] for c in insp.get_columns(t)} for t in insp.get_table_names()}


def test_migrated_database_matches_schema_and_rerun_is_a_no_op(
    database_url: str, tmp_path: Path
) -> None:
    settings = Settings.load({}, database_url=database_url, data_dir=tmp_path)
    run_in_store(settings, migrate)  # on PostgreSQL the test database is already migrated
    assert run_in_store(settings, pending) == []
    assert run_in_store(settings, migrate) == []
    found = run_in_store(settings, _columns)
    expected = {t.name: {c.name for c in t.columns} for t in schema.metadata.sorted_tables}
    for table, columns in expected.items():
        assert found.get(table) == columns, table
    assert "llmops_migrations" in found
    applied = run_in_store(
        settings,
        lambda c: (
            c.execute(sa.text("SELECT name FROM llmops_migrations ORDER BY name")).scalars().all()
        ),
    )
    assert applied == [name for name, _ in MIGRATIONS]


def test_tags_have_a_gin_index_on_postgres(database_url: str, tmp_path: Path) -> None:
    settings = Settings.load({}, database_url=database_url, data_dir=tmp_path)
    run_in_store(settings, migrate)
    indexes = run_in_store(
        settings, lambda c: {i["name"] for i in sa.inspect(c).get_indexes("llm_requests")}
    )
    assert "ix_llm_requests_created_at" in indexes
    if settings.is_postgres:
        assert "ix_llm_requests_tags" in indexes
        kind = run_in_store(
            settings,
            lambda c: c.execute(
                sa.text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_llm_requests_tags'")
            ).scalar(),
        )
        assert "gin" in kind and "jsonb_path_ops" in kind
