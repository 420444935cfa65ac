"""`llmops apply`: idempotent, versioned, secrets shown once, errors that name the field."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from llmops.admin.apply import apply_document
from llmops.admin.document import DocumentError, parse_document
from llmops.cli import run_in_store
from llmops.keys import Keyring
from llmops.settings import Settings
from llmops.store import schema as s

EXAMPLE = Path(__file__).parent.parent / "examples" / "llmops.yaml"


def _settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings.load({}, database_url=database_url, data_dir=tmp_path / "data")


def _apply(settings: Settings, doc: dict[str, Any]) -> Any:
    keyring = Keyring.load(settings.secret_key, settings.data_dir)
    parsed = parse_document(doc)
    return run_in_store(settings, lambda c: apply_document(c, parsed, keyring))


def _count(settings: Settings, table: sa.Table) -> int:
    return int(
        run_in_store(
            settings,
            lambda c: c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one(),
        )
    )


def test_example_applies_once_and_reapplying_changes_nothing(
    database_url: str, tmp_path: Path
) -> None:
    settings = _settings(database_url, tmp_path)
    doc = yaml.safe_load(EXAMPLE.read_text())
    first = _apply(settings, doc)
    assert "created environment production" in first.changes
    assert set(first.secrets) == {"production", "staging"}
    assert all(t.startswith("llmops_") for t in first.secrets.values())
    second = _apply(settings, doc)
    assert second.changes == [] and second.secrets == {}
    assert _count(settings, s.variant_versions) == 3


def test_changing_a_variant_creates_a_new_immutable_version(
    database_url: str, tmp_path: Path
) -> None:
    settings = _settings(database_url, tmp_path)
    doc = yaml.safe_load(EXAMPLE.read_text())
    _apply(settings, doc)
    changed = copy.deepcopy(doc)
    changed["configs"][0]["variants"][0]["parameters"]["temperature"] = 0.7
    result = _apply(settings, changed)
    assert result.changes == ["created variant support-bot/baseline version 2"]
    rows = run_in_store(
        settings,
        lambda c: c.execute(
            sa.select(s.variant_versions.c.version, s.variant_versions.c.parameters)
            .join(s.variants)
            .where(s.variants.c.name == "baseline")
            .order_by(s.variant_versions.c.version)
        ).all(),
    )
    assert [(v, p["temperature"]) for v, p in rows] == [(1, 0.2), (2, 0.7)]
    assert _apply(settings, changed).changes == []


def test_provider_keys_are_encrypted_and_secrets_hashed_at_rest(
    database_url: str, tmp_path: Path
) -> None:
    settings = _settings(database_url, tmp_path)
    doc = {
        "environments": ["prod"],
        "providers": [{"slug": "p", "type": "openai", "api_key": "sk-live-PLAINTEXT-KEY"}],
    }
    result = _apply(settings, doc)
    token = result.secrets["prod"]
    dump = run_in_store(
        settings,
        lambda c: repr(
            [c.execute(sa.select(t)).all() for t in (s.provider_credentials, s.environment_secrets)]
        ),
    )
    assert "sk-live-PLAINTEXT-KEY" not in dump
    secret_part = token[len("llmops_12345678_") :]
    assert token not in dump and secret_part not in dump
    if settings.database_url.startswith("sqlite"):
        raw = Path(settings.database_url.removeprefix("sqlite:///")).read_bytes()
        assert b"sk-live-PLAINTEXT-KEY" not in raw and token.encode() not in raw


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"environments": [{"slug": "Bad Slug"}]}, "environments[0].slug"),
        ({"providers": [{"slug": "x", "type": "nope"}]}, "providers[0].type"),
        ({"providers": [{"slug": "x", "type": "openai-compatible"}]}, "providers[0].base_url"),
        (
            {"configs": [{"slug": "c", "variants": [{"name": "v", "model": "m"}]}]},
            "configs[0].variants[0].provider",
        ),
        (
            {"configs": [{"slug": "c", "variants": [], "targeting": {"prod": {"variant": "x"}}}]},
            "configs[0].targeting.prod",
        ),
        ({"configs": [{"slug": "c", "colour": "red"}]}, "configs[0].colour"),
        (
            {
                "configs": [
                    {
                        "slug": "c",
                        "variants": [
                            {
                                "name": "v",
                                "provider": "p",
                                "model": "m",
                                "parameters": {"model": "x"},
                            }
                        ],
                    }
                ]
            },
            "configs[0].variants[0].parameters.model",
        ),
    ],
)
def test_invalid_documents_name_the_offending_field(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(DocumentError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_document(doc)


def test_cli_apply_prints_secrets_only_when_it_creates_them(tmp_path: Path) -> None:
    env = {"LLMOPS_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "llmops.cli", "apply", str(EXAMPLE)]
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert first.stdout.count("secret for environment") == 2
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert second.stdout.strip() == "no changes"
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - slug: x\n    type: nope\n")
    failed = subprocess.run(
        [*cmd[:-1], str(bad)], env=env, capture_output=True, text=True, timeout=60
    )
    assert failed.returncode == 2 and "providers[0].type" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_cli_secrets_create_rotate_revoke(gateway_factory: Any) -> None:
    import time

    import openai

    gw = gateway_factory(snapshot_ttl=0.1)
    env = {
        "LLMOPS_DATA_DIR": str(gw.settings.data_dir),
        "PATH": "/usr/bin:/bin",
        "LLMOPS_SECRET_KEY": gw.settings.secret_key,
        "LLMOPS_DATABASE_URL": gw.settings.database_url,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmops.cli", "secrets", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    token = cli("create", "test").stdout.strip()
    prefix = token[: len("llmops_12345678")]
    assert prefix in cli("list", "test").stdout
    time.sleep(0.5)
    hello = [{"role": "user", "content": "hi"}]
    assert gw.client(api_key=token).chat.completions.create(model="m", messages=hello).choices
    rotated = cli("rotate", "test", prefix, "--overlap-hours", "1")
    assert rotated.returncode == 0 and "keeps working until" in rotated.stderr
    assert cli("revoke", "test", prefix).returncode == 0
    time.sleep(0.5)
    with pytest.raises(openai.AuthenticationError):
        gw.client(api_key=token).chat.completions.create(model="m", messages=hello)
    new = rotated.stdout.strip()
    assert gw.client(api_key=new).chat.completions.create(model="m", messages=hello).choices
    missing = cli("revoke", "test", "llmops_00000000")
    assert missing.returncode == 1 and "no secret" in missing.stderr
