"""The report-number high-water mark, kept on disk in the local mode.

The local store (the MongoDB stand-in `make run` starts) can be wiped (`make reset`) or lost while the numbers already
handed out live on: in RabbitMQ's queues (which a reset keeps), in the agencies' systems (which deduplicate on
`message_id` = `<report_id>:<hop>`) and on citizens' receipts. Starting the day again at 000001 would hand a second
report a number the world already knows. The mark is a small file in LOCAL_DATA_DIR (beside, not inside, the local
stores' data) holding, per day, the end of the last block of numbers reserved; it is synced to disk before any number
of a block is handed out, and the next block starts above it, so a restart, even after `kill -9` or a wiped store,
continues the day's numbering.

In deployment MongoDB keeps the counters itself (and is backed up); the mark is not used there.
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# days kept in the file: only today matters; a few more cover a clock set back across midnight
DAYS_KEPT = 7


class NumberingMarkError(Exception):
    """The mark cannot be read or written: numbers could repeat, so none is handed out."""


class NumberingMark:
    """`report-numbers.json` in a data directory: {"YYYYMMDD": last number reserved}. Processes sharing the directory
    take turns through a lock file, so they never reserve overlapping blocks either."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "report-numbers.json"
        self.lock_path = directory / "report-numbers.lock"
        # workers of this process queue here (green under eventlet) rather than blocking the process on the file lock
        self._in_process = threading.Lock()

    def check(self) -> None:
        """At start: the directory is writable and the mark readable, or `NumberingMarkError` saying why."""
        with self.locked():
            pass

    @contextmanager
    def locked(self) -> Iterator[dict[str, int]]:
        """The marks per day, under an exclusive lock held until the block is reserved and `save`d."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(self.lock_path, "a")  # noqa: SIM115 (closed below, after the lock is released)
        except OSError as exc:
            raise NumberingMarkError(f"cannot write the report-number mark in {self.path.parent}: {exc}") from exc
        try:
            with self._in_process:
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield self._read()
        finally:
            lock.close()  # releases the file lock

    def _read(self) -> dict[str, int]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise NumberingMarkError(f"cannot read the report-number mark {self.path}: {exc}") from exc
        try:
            marks = json.loads(text)
            if not isinstance(marks, dict) or not all(
                isinstance(day, str) and isinstance(end, int) for day, end in marks.items()
            ):
                raise ValueError('expected {"YYYYMMDD": number, ...}')
        except ValueError as exc:
            raise NumberingMarkError(
                f"the report-number mark {self.path} is damaged ({exc}); it holds the last report number handed out "
                'per day: restore it, or write the highest number the agencies have seen, e.g. {"20261128": 500}'
            ) from exc
        return marks

    def save(self, marks: dict[str, int], day: str, end: int) -> None:
        """Record `end` as the day's last reserved number, durably (call inside `locked`)."""
        kept = dict(sorted({**marks, day: max(end, marks.get(day, 0))}.items())[-DAYS_KEPT:])
        try:
            with tempfile.NamedTemporaryFile("w", dir=self.path.parent, prefix=".report-numbers.", delete=False) as tmp:
                json.dump(kept, tmp)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise NumberingMarkError(f"cannot write the report-number mark {self.path}: {exc}") from exc
