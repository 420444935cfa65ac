"""The benchmark's upstream: ``llmops.testing.FakeProvider`` in its own process, 0 ms latency.

Every request gets the default (unscripted) answer, except that the answer text has exactly
``--chunks`` words, and the fake streams one word per event: a streamed chat completion therefore
carries exactly ``--chunks`` content chunks (then the finish chunk, the usage chunk if asked for,
and ``[DONE]``). Served by uvicorn with uvloop and httptools, access log off, on 127.0.0.1 only::

    python bench/fake_provider.py --port 8101 --chunks 16
"""

from __future__ import annotations

import argparse
import collections
from typing import Any

import uvicorn

from llmops.testing import FakeProvider, Scripted


def answer_text(chunks: int) -> str:
    """``chunks`` words; the fake splits a default answer on spaces, one word per stream event."""
    return " ".join(f"word{i}" for i in range(chunks))


class BenchFake(FakeProvider):
    """The fake with a fixed answer and a bounded request log (a long run must not grow memory)."""

    def __init__(self, chunks: int) -> None:
        super().__init__()
        self._answer = answer_text(chunks)
        self.requests: Any = collections.deque(maxlen=16)

    def _next(self) -> Scripted:
        return Scripted(text=self._answer)


def serve(app: BenchFake, port: int) -> None:
    """Serve a fake on 127.0.0.1 the way every benchmark does: uvloop, httptools, no access log."""
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunks", type=int, default=16, help="content chunks per stream")
    args = parser.parse_args()
    serve(BenchFake(args.chunks), args.port)


if __name__ == "__main__":
    main()
