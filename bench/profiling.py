"""Sampling the gateway with py-spy under load, and summarising where its CPU time goes.

``py-spy record --format raw`` writes collapsed stacks (``frame;frame;… count``); idle threads
(waiting in epoll, or the SQLite writer thread waiting for work) are left out, so every sample is
time on a CPU. Time inside C extensions (uvloop, httptools, orjson, asyncpg's protocol) has no
Python frame of its own and counts towards the Python function that called into it.
"""

from __future__ import annotations

import collections
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")

# Where a file belongs, by the first path fragment it contains (checked in order).
_PACKAGES = (
    ("/llmops/", "llmops"),
    ("/aiohttp/", "aiohttp (upstream client)"),
    ("/uvicorn/", "uvicorn (server)"),
    ("/starlette/", "starlette"),
    ("/sqlalchemy/", "sqlalchemy (log writer)"),
    ("/asyncpg/", "asyncpg (log writer)"),
    ("/genai_prices/", "genai_prices (pricing)"),
    ("/yarl/", "yarl/multidict (URLs, headers)"),
    ("/multidict/", "yarl/multidict (URLs, headers)"),
    ("/asyncio/", "asyncio"),
    ("/concurrent/", "threads (executor)"),
    ("threading.py", "threads (executor)"),
    ("sqlite3", "sqlite3 (log writer)"),
)


def available() -> bool:
    return shutil.which("py-spy") is not None


def start(pid: int, out: Path, rate: int = 250) -> subprocess.Popen[bytes]:
    """Start sampling ``pid``; stop with ``finish`` (py-spy writes its file on SIGINT)."""
    cmd = ["py-spy", "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"]
    cmd += ["--full-filenames", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _parse(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    if not m:
        return frame, ""
    return m["func"], m["file"]


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/src/", "/lib/python3.11/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


def _package(path: str) -> str:
    for fragment, name in _PACKAGES:
        if fragment in path:
            return name
    return "other Python"


def summarise(raw: Path, top: int = 15) -> dict[str, Any]:
    """Per function: self time (the leaf frame) and, for llmops code, inclusive time; and self
    time per package. Percentages of all on-CPU samples."""
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_parse(f) for f in stack.split(";")]
        func, path = frames[-1]
        self_time[f"{_short(path)}:{func}"] += count
        packages[_package(path)] += count
        seen = {f"{_short(p)}:{f}" for f, p in frames if "/llmops/" in p}
        for name in seen:
            inclusive[name] += count

    def pct(counter: collections.Counter[str]) -> list[tuple[str, float]]:
        return [(name, 100 * n / total) for name, n in counter.most_common(top)] if total else []

    return {
        "samples": total,
        "self": pct(self_time),
        "inclusive_llmops": pct(inclusive),
        "packages": pct(packages),
    }
