"""Costs end to end: rows priced from genai-prices at their own time, unknown models unpriced
(never $0), overrides from `llmops prices set`, and `llmops prices reprice` fixing history and
its rollups."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import sqlalchemy as sa

from llmops.store import schema as s
from llmops.testing import FakeProviderServer
from tests.conftest import Gateway

HELLO = [{"role": "user", "content": "Hello there, how are you today?"}]


def _cli(
    gw: Gateway, *args: str, command: str = "prices", **env_vars: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "LLMOPS_DATA_DIR": str(gw.settings.data_dir),
        "LLMOPS_DATABASE_URL": gw.settings.database_url,
        "PATH": "/usr/bin:/bin",
        **env_vars,
    }
    return subprocess.run(
        [sys.executable, "-m", "llmops.cli", command, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def _hourly_cost(gw: Gateway) -> Any:
    return gw.query(
        lambda c: c.execute(
            sa.select(
                sa.func.sum(s.llm_rollup_hourly.c.total_cost),
                sa.func.sum(s.llm_rollup_hourly.c.unpriced),
            )
        ).one()
    )


def test_rows_are_priced_by_hand_checkable_rates(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    fake.enqueue(
        usage={
            "prompt_tokens": 1000,
            "completion_tokens": 200,
            "total_tokens": 1200,
            "prompt_tokens_details": {"cached_tokens": 400},
        }
    )
    gateway.client().chat.completions.create(model="m", messages=HELLO)
    (row,) = gateway.rows(1)
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million tokens.
    assert row["input_cost"] == 90  # 600 uncached × 0.15
    assert row["cached_cost"] == 30  # 400 × 0.075
    assert row["output_cost"] == 120  # 200 × 0.60
    assert row["cache_write_cost"] == 0
    assert row["total_cost"] == 240
    assert row["price_source"].endswith("openai/gpt-4o-mini")
    assert row["cached_tokens"] == 400


def test_unknown_models_are_unpriced_then_repriced_after_an_override(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    client = gateway.client("ab")
    for user in ("u1", "u2", "u3", "u4", "u5", "u6"):
        client.chat.completions.create(model="m", messages=HELLO, metadata={"userId": user})
    rows = gateway.rows(6)
    assert all(r["total_cost"] is None and r["prompt_tokens"] for r in rows)
    assert all(r["usage_source"] == "provider" for r in rows)
    assert _hourly_cost(gateway) == (0, 6)
    dry = _cli(gateway, "reprice", "--since", "2020-01-01", "--dry-run")
    assert "would change 0" in dry.stdout
    _cli(gateway, "set", "model-*", "--input", "2", "--output", "8", "--from", "2020-01-01")
    dry = _cli(gateway, "reprice", "--since", "2020-01-01", "--dry-run")
    assert "would change 6" in dry.stdout
    assert all(r["total_cost"] is None for r in gateway.rows())  # a dry run writes nothing
    out = _cli(gateway, "reprice", "--since", "2020-01-01")
    assert "changed 6" in out.stdout and "unpriced 6 -> 0" in out.stdout
    repriced = gateway.rows()
    for r in repriced:
        assert r["input_cost"] == r["prompt_tokens"] * 2
        assert r["output_cost"] == r["completion_tokens"] * 8
        assert r["total_cost"] == r["input_cost"] + r["output_cost"]
        assert r["price_source"].startswith("override:")
    assert _hourly_cost(gateway) == (sum(r["total_cost"] for r in repriced), 0)
    tag_counts = gateway.query(
        lambda c: c.execute(sa.select(sa.func.sum(s.llm_tag_values.c.requests))).scalar()
    )
    assert tag_counts == 6  # the rebuild did not count the tags twice


def test_a_running_gateway_prices_new_rows_with_a_new_override(
    gateway_factory: Any, fake: FakeProviderServer
) -> None:
    gw = gateway_factory(snapshot_ttl=0.1)
    _cli(gw, "set", "gpt-4o-mini", "--input", "1", "--output", "1", "--from", "2020-01-01")
    import time

    time.sleep(0.5)
    gw.client().chat.completions.create(model="m", messages=HELLO)
    (row,) = gw.rows(1)
    assert row["total_cost"] == row["prompt_tokens"] + row["completion_tokens"]
    assert row["price_source"].startswith("override:")
    listed = _cli(gw, "list").stdout
    assert "gpt-4o-mini" in listed


def test_rebuilding_rollups_covers_a_newly_indexed_tag_key(
    gateway: Gateway, fake: FakeProviderServer
) -> None:
    client = gateway.client("ab")
    for user in ("u1", "u2", "u1"):
        client.chat.completions.create(model="m", messages=HELLO, metadata={"userId": user})
    gateway.rows(3)

    def user_totals(c: sa.Connection) -> dict[str, int]:
        t = s.llm_rollup_tag_daily
        q = sa.select(t.c.tag_value, t.c.requests).where(t.c.tag_key == "userId", t.c.tagged)
        return {value: n for value, n in c.execute(q)}

    assert gateway.query(user_totals) == {}  # userId is not indexed by default
    out = _cli(
        gateway,
        "rebuild",
        "--since",
        "2020-01-01",
        command="rollups",
        LLMOPS_INDEXED_TAGS="tenantSlug,feature,userId",
    )
    # Every stored row was in the rebuilt days: the rollups count userId from the beginning.
    assert "tag userId: rollups count every request from 1970-01-01 00:00 UTC" in out.stdout
    assert gateway.query(user_totals) == {"u1": 2, "u2": 1}
