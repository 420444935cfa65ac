"""A page's query string: the state of every dashboard view, so each one can be bookmarked.

The analytics filters use the analytics API's parameter names (``range``, ``from``, ``to``,
``environment``, ``config``, ``variant``, ``model``, ``status``, ``tag=key=value``…); pages add
their own (``sort``, ``cursor``, ``by_tag``…). ``PageQuery`` keeps the pairs in order, drops empty
values (an HTML form sends them for "any"), and builds links that change some parameters and keep
the rest.

One leniency over the API: typed ``from``/``to`` dates win over a ``range`` preset that the filter
form carried along, instead of being an error.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Collection, Iterable, Mapping, Sequence

from llmops.analytics import Filters, parse_filters

FILTER_PARAMS = (
    "range",
    "from",
    "to",
    "environment",
    "config",
    "variant",
    "provider",
    "model",
    "endpoint",
    "status",
    "streaming",
    "tag",
    "min_latency",
    "max_latency",
    "min_cost",
    "max_cost",
)
Pair = tuple[str, str]


class PageQuery:
    def __init__(self, pairs: Iterable[Pair], root: str = "") -> None:
        """``root``: the path the app is mounted at, put in front of every link."""
        kept = [(k, v.strip()) for k, v in pairs if v.strip()]
        if any(k in ("from", "to") for k, _ in kept):
            kept = [(k, v) for k, v in kept if k != "range"]
        self.pairs: list[Pair] = kept
        self.root = root

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``."""
        return next((v for k, v in self.pairs if k == name), default)

    def getlist(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name]

    def mapping(self) -> dict[str, str | list[str]]:
        """Parameters as ``parse_filters`` takes them (a list for a repeated one)."""
        out: dict[str, str | list[str]] = {}
        for key, value in self.pairs:
            existing = out.get(key)
            if existing is None:
                out[key] = value
            elif isinstance(existing, list):
                existing.append(value)
            else:
                out[key] = [existing, value]
        return out

    def filters(self, now: dt.datetime) -> Filters:
        """The analytics filters; raises ``FilterError`` naming a bad parameter."""
        return parse_filters(self.mapping(), now)

    def only(self, names: Collection[str]) -> PageQuery:
        return PageQuery([(k, v) for k, v in self.pairs if k in names], self.root)

    @property
    def filter_query(self) -> str:
        """The filters alone, urlencoded (what nav links carry from page to page)."""
        return urllib.parse.urlencode(self.only(FILTER_PARAMS).pairs)

    def link(
        self,
        path: str,
        *,
        replace: Mapping[str, str | Sequence[str] | None] | None = None,
        drop: Collection[str] = (),
        add: Iterable[Pair] = (),
        remove: Iterable[Pair] = (),
        keep: Collection[str] | None = None,
    ) -> str:
        """``path`` with this query, changed: ``replace`` sets parameters (None removes),
        ``drop`` removes parameters, ``add``/``remove`` one ``(name, value)`` pair each,
        ``keep`` (if given) keeps only those names."""
        replace = replace or {}
        gone = set(remove)
        pairs = [
            (k, v)
            for k, v in self.pairs
            if (keep is None or k in keep) and k not in drop and k not in replace
            if (k, v) not in gone
        ]
        for name, value in replace.items():
            if value is not None:
                pairs += [(name, value)] if isinstance(value, str) else [(name, v) for v in value]
        pairs += [pair for pair in add if pair not in pairs]
        query = urllib.parse.urlencode(pairs)
        return self.root + path + (f"?{query}" if query else "")

    def __contains__(self, pair: object) -> bool:
        return pair in self.pairs
