"""The commands a MongoDB client sent, by name: tests count what a batch costs in round trips against the wire
stand-in (devtools/mongo_standin.py), as the services use it."""

from __future__ import annotations

from collections import Counter

from pymongo import monitoring

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
