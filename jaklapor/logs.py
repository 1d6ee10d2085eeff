"""Structured logs: one JSON object per line, with the report id as a field wherever there is one."""

from __future__ import annotations

import logging
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)


def report_log(logger: logging.Logger, level: int, message: str, report_id: str | None, **fields: Any) -> None:
    """Log with the report id as a structured field. Never pass reporter identity or contact here."""
    logger.log(level, message, extra={"report_id": report_id, **fields})
