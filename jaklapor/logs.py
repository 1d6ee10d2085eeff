"""Structured logs: one JSON object per line. A record's `extra` fields become fields of the object: the report id
wherever there is one (`extra={"report_id": ...}`), never reporter identity or contact."""

from __future__ import annotations

from typing import Any

from pythonjsonlogger.json import JsonFormatter as _BaseJsonFormatter


class JsonFormatter(_BaseJsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s")
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__(*args, **kwargs)
