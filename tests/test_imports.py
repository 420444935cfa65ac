"""What the gateway's process imports: each module it loads for nothing is idle memory (bench/)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BUILD_POSTGRES_GATEWAY = """
import sys
import llmops.cli
from llmops.app import create_app
from llmops.settings import Settings

settings = Settings.load({}, database_url="postgresql://u@127.0.0.1:1/x", data_dir=sys.argv[1])
store = create_app(settings).state.services.store
assert type(store).__name__ == "PostgresStore", store
print(" ".join(sorted(sys.modules)))
"""


def test_a_postgres_gateway_loads_neither_the_orm_nor_the_cli_progress_bar(
    tmp_path: Path,
) -> None:
    # A fresh interpreter: this test process has imported anything other tests needed.
    done = subprocess.run(
        [sys.executable, "-c", BUILD_POSTGRES_GATEWAY, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    modules = set(done.stdout.split())
    assert "llmops.store.postgres" in modules
    # sqlalchemy.ext.asyncio imports the ORM (5–6 MB); rich.progress is for `llmops export`.
    unwanted = {"sqlalchemy.ext.asyncio", "sqlalchemy.orm", "rich"}
    assert modules & unwanted == set()
