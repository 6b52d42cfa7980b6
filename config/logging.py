"""Structured logging: one JSON object per line, tagged with the request's ids."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from config.redact import scrub_text
from config.request_context import request_id_var, user_id_var

# One JSON object per line, for Django's loggers (settings.LOGGING) and the web server's own (config.serve).
JSON_FORMATTER = {
    "()": "config.logging.JsonFormatter",
    "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
    "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
}


class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        if not hasattr(record, "user_id"):
            record.user_id = user_id_var.get()
        return True


class JsonFormatter(_JsonFormatter):
    """python-json-logger's formatter; ISO-8601 UTC times, empty context fields dropped, and every text
    field redacted (an exception's message or traceback can quote a card number, a token or a secret)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def process_log_record(self, log_record: dict) -> dict:
        for key in ("request_id", "user_id"):
            if log_record.get(key) is None:
                log_record.pop(key, None)
        for key, value in log_record.items():
            if isinstance(value, str) and key not in _PLAIN_FIELDS:
                log_record[key] = scrub_text(value)
        return log_record


# Fields the platform writes itself and that never hold a secret: skipping them keeps the access line cheap.
_PLAIN_FIELDS = frozenset({"time", "level", "logger", "request_id", "user_id", "method", "status"})
