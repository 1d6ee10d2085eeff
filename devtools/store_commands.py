"""The commands a MongoDB client sent, by name: tests count what a batch costs in round trips against the wire
stand-in (devtools/mongo_standin.py), as the services use it."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pymongo
from pymongo import monitoring
from pymongo.database import Database

#: the driver's own handshakes and session housekeeping, not the code under test
HOUSEKEEPING = frozenset({"hello", "isMaster", "ismaster", "endSessions"})


class StoreCommands(monitoring.CommandListener):
    """Pass as `pymongo.MongoClient(..., event_listeners=[commands])`; `names` in the order sent."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in HOUSEKEEPING:
            self.names.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> dict[str, int]:
        """How many of each command since the last take."""
        counts, self.names = Counter(self.names), []
        return dict(counts)


@contextmanager
def recorded_database(uri: str, prefix: str) -> Iterator[tuple[Database, StoreCommands]]:
    """A fresh database on the server at `uri` whose client records its commands; dropped afterwards."""
    commands = StoreCommands()
    client: pymongo.MongoClient = pymongo.MongoClient(uri, tz_aware=True, event_listeners=[commands])
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        yield client[name], commands
    finally:
        client.drop_database(name)
        client.close()
