"""Structured logs as the services configure them (`jaklapor.logs.configure_logging` with config.yaml's LOGGING):
one JSON object per line, with the record's extra fields, and without the per-record lookups no line shows."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from jaklapor.config import load_config
from jaklapor.logs import configure_logging


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    saved = (logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    config = load_config(None)["LOGGING"]
    levels = {name: logging.getLogger(name).level for name in config.get("loggers", {})}
    configure_logging(config)
    stream = io.StringIO()
    (handler,) = [h for h in root.handlers if h not in handlers]
    handler.setStream(stream)
    yield stream
    root.removeHandler(handler)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, logger_level in levels.items():  # config.yaml quiets nameko, kombu...: later tests see them as before
        logging.getLogger(name).setLevel(logger_level)
    logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved


def test_a_log_line_is_one_json_object_with_the_records_extra_fields(configured: io.StringIO) -> None:
    logging.getLogger("services.intake.service").info("report submitted", extra={"report_id": "JK-20261205-000001"})

    (line,) = configured.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "report submitted"
    assert (record["level"], record["logger"], record["report_id"]) == (
        "INFO",
        "services.intake.service",
        "JK-20261205-000001",
    )
    assert record["time"][:4].isdigit()


def test_records_skip_the_caller_thread_and_process_lookups(configured: io.StringIO) -> None:
    record = logging.getLogger("x").makeRecord("x", logging.INFO, "(unknown file)", 0, "m", (), None)

    assert logging._srcfile is None
    assert (record.thread, record.process) == (None, None)
