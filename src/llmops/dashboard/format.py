"""Numbers for people: the Jinja filters the dashboard templates use.

Every filter takes ``None`` (an unpriced cost, a request without usage, an average over no rows)
and shows an em dash for it, so a missing value never reads as zero.

- ``money``: integer micro-dollars (fractions allowed, for averages) → ``$1,234.56`` from one dollar
  up, three significant digits below (``$0.0123``, ``$0.000042``), and ``<$0.000001`` for a
  positive amount too small to show; never ``$0.0000`` for a cost that is not zero.
- ``tokens``: ``850``, ``1.2k``, ``34k``, ``3.4M``, ``1.2B``.
- ``latency``: milliseconds → ``850 ms``, ``1.2 s``, ``2.5 min``.
- ``number``: ``12,345``; ``percent``: a ratio → ``99.1%`` (``<0.1%``/``>99.9%`` at the edges).
- ``signed_money`` and ``change``: differences, for comparisons (``+$0.0012``, ``-12.5%``).
- ``when``: an ISO timestamp → ``2026-03-01 12:00:05`` (UTC); ``period``: a time range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

DASH = "—"
_MICRO = Decimal(1_000_000)
_CENT = Decimal("0.01")
_SMALLEST = Decimal("0.000001")

Number = int | float | Decimal


def _dollars(micro: Number) -> Decimal:
    return Decimal(str(micro)) / _MICRO if isinstance(micro, float) else Decimal(micro) / _MICRO


def _plain_money(dollars: Decimal) -> str:
    """A non-negative amount without its sign."""
    if dollars == 0:
        return "$0.00"
    if dollars < _SMALLEST:
        return "<$0.000001"
    cents = dollars.quantize(_CENT, rounding=ROUND_HALF_UP)
    if cents >= 1:
        return f"${cents:,.2f}"
    # Below a dollar: three significant digits, at least two decimals, at most six.
    places = min(6, max(2, 2 - dollars.adjusted()))
    shown = dollars.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if shown == 0:  # rounds to nothing at six places: still not free
        return "<$0.000001"
    if shown >= 1:
        return "$1.00"
    text = f"{shown:.{places}f}"
    whole, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0").ljust(2, "0")
    return f"${whole}.{fraction}"


def money(micro: Number | None) -> str:
    """Micro-dollars as dollars for people (see the module docstring)."""
    if micro is None:
        return DASH
    dollars = _dollars(micro)
    return ("-" if dollars < 0 else "") + _plain_money(abs(dollars))


def signed_money(micro: Number | None) -> str:
    """A difference in micro-dollars, always with its sign (``+$0.0012``, ``-$3.00``)."""
    if micro is None:
        return DASH
    dollars = _dollars(micro)
    if dollars == 0:
        return "$0.00"
    return ("-" if dollars < 0 else "+") + _plain_money(abs(dollars))


def tokens(count: Number | None) -> str:
    """A token count: ``850``, ``1.2k``, ``34k``, ``3.4M``, ``1.2B``."""
    if count is None:
        return DASH
    value = float(count)
    sign, value = ("-" if value < 0 else ""), abs(value)
    if round(value) < 1000:
        return f"{sign}{value:,.0f}"
    for size, suffix in ((1e3, "k"), (1e6, "M"), (1e9, "B")):
        scaled = value / size
        text = f"{scaled:.{0 if scaled >= 99.95 else 1}f}"
        if float(text) < 1000 or suffix == "B":  # 999.96k reads better as 1M
            return sign + text.removesuffix(".0") + suffix
    raise AssertionError("unreachable: billions always answer")


def latency(ms: Number | None) -> str:
    """Milliseconds: ``0.4 ms``, ``850 ms``, ``1.2 s``, ``2.5 min``."""
    if ms is None:
        return DASH
    value = float(ms)
    if value < 10 and round(value, 1) != round(value):
        return f"{value:.1f} ms"
    if round(value) < 1000:
        return f"{value:.0f} ms"
    seconds = value / 1000
    if round(seconds, 1) < 60:
        text = f"{seconds:.1f}" if seconds < 9.95 else f"{seconds:.0f}"
        return f"{text} s"
    return f"{seconds / 60:.1f} min"


def number(value: Number | None) -> str:
    """A count with thousands separators."""
    if value is None:
        return DASH
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def percent(ratio: Number | None) -> str:
    """A ratio (0–1) as a percentage with one decimal; never ``0.0%`` or ``100.0%`` unless so."""
    if ratio is None:
        return DASH
    value = float(ratio)
    if value == 0:
        return "0%"
    if value == 1:
        return "100%"
    text = f"{value * 100:.1f}%"
    if text == "0.0%" and value > 0:
        return "<0.1%"
    if text == "100.0%" and value < 1:
        return ">99.9%"
    return text


def change(before: Number | None, after: Number | None) -> str:
    """The relative change from ``before`` to ``after``: ``+12.5%``, ``-3%``, ``new``."""
    if before is None or after is None:
        return DASH
    old, new = float(before), float(after)
    if old == new:
        return "0%"
    if old == 0:
        return "new"
    ratio = (new - old) / abs(old) * 100
    text = f"{ratio:+.1f}" if abs(ratio) < 100 else f"{ratio:+.0f}"
    return (text[:-2] if text.endswith(".0") else text) + "%"


def when(value: str | dt.datetime | None) -> str:
    """A timestamp in UTC to the second."""
    if value is None or value == "":
        return DASH
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def period(start: dt.datetime, end: dt.datetime) -> str:
    """A time range in UTC, to the minute for short ranges and to the day for long ones."""
    fmt = "%b %d %H:%M" if end - start < dt.timedelta(days=3) else "%b %d, %Y"
    return f"{start.astimezone(dt.UTC):{fmt}} – {end.astimezone(dt.UTC):{fmt}} UTC"


FILTERS: dict[str, Callable[..., Any]] = {
    "money": money,
    "signed_money": signed_money,
    "tokens": tokens,
    "latency": latency,
    "number": number,
    "percent": percent,
    "change": change,
    "when": when,
    "period": period,
}
