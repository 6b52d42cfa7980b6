from __future__ import annotations

import io
import json
import logging

import pytest

from config.logging import JsonFormatter


class JsonLog:
    """What the platform's JSON log handler wrote during a test, one parsed object per line."""

    def __init__(self, buffer: io.StringIO) -> None:
        self._buffer = buffer

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self._buffer.getvalue().splitlines() if line.strip()]

    def text(self) -> str:
        """Everything written, as written."""
        return self._buffer.getvalue()

    def access(self, request_id: str) -> dict:
        matches = [line for line in self.lines() if line.get("logger") == "access" and line["request_id"] == request_id]
        assert len(matches) == 1, self.lines()
        return matches[0]


@pytest.fixture
def json_log():
    """Captures the configured console handler's output (formatter and filters as in production)."""
    root = logging.getLogger()
    handler = next(h for h in root.handlers if isinstance(h.formatter, JsonFormatter))
    assert isinstance(handler, logging.StreamHandler)
    buffer = io.StringIO()
    previous_stream = handler.setStream(buffer)
    access = logging.getLogger("access")
    previous_level = access.level
    access.setLevel(logging.INFO)
    try:
        yield JsonLog(buffer)
    finally:
        access.setLevel(previous_level)
        handler.setStream(previous_stream)
