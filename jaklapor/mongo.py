"""MongoDB access for the services, through pymongo in production and mongomock where no server exists.

The stand-in is chosen only by configuration (`MONGO_URI=mongomock://...`), so the code path the services run is the
pymongo API either way. mongomock keeps its data inside one process: every service in that process shares it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider
from pymongo.database import Database

from jaklapor.config import setting

log = logging.getLogger(__name__)

MONGOMOCK_SCHEME = "mongomock://"
_shared_mock_clients: dict[str, Any] = {}
_lock = threading.Lock()


def is_in_process(uri: str) -> bool:
    return uri.startswith(MONGOMOCK_SCHEME)


def connect(uri: str) -> Any:
    """A MongoClient for `uri`; for `mongomock://` one client per URI per process, so services share its data."""
    if is_in_process(uri):
        from jaklapor.mongo_standin import FastClient

        with _lock:
            client = _shared_mock_clients.get(uri)
            if client is None:
                log.warning(
                    "MONGO_URI is %s: reports are kept IN THIS PROCESS ONLY (mongomock) and are lost when it "
                    "stops. Set MONGO_URI=mongodb://... for a real MongoDB.",
                    uri,
                )
                # mongomock with O(1) _id lookups and hashed and field indexes: plain mongomock scans every document
                # on every query and every unique-index check, which collapses as reports accumulate
                client = _shared_mock_clients[uri] = FastClient(tz_aware=True)
            return client
    import pymongo

    return pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, socketTimeoutMS=20000, tz_aware=True
    )


def database_for(config: dict[str, Any], name: str) -> tuple[Any, Database]:
    """The client and the database a service owns (`<prefix>_<name>`)."""
    client = connect(setting(config, "MONGO_URI", "mongomock://localhost"))
    prefix = setting(config, "MONGO_DB_PREFIX", "jaklapor")
    return client, client[f"{prefix}_{name}"]


def ping(db: Database) -> bool:
    """True if the database's server answers now (health checks)."""
    try:
        db.client.admin.command("ping")
    except Exception as exc:  # any failure means unhealthy
        log.warning("MongoDB ping failed: %r", exc)
        return False
    return True


def close(client: Any, uri: str) -> None:
    if not is_in_process(uri):
        client.close()


class MongoDatabase(DependencyProvider):
    """Opens the service's own database in `setup`, closes it in `stop`, hands workers a narrow repository.

    Subclasses set `database` and implement `make_repository(db)`; `prepare(db)` creates indexes once at start.
    """

    database: str = ""

    def setup(self) -> None:
        self.uri = setting(self.container.config, "MONGO_URI", "mongomock://localhost")
        self.client, self.db = database_for(self.container.config, self.database)
        self.repository = self.make_repository(self.db)
        self.prepare(self.repository)

    def stop(self) -> None:
        close(self.client, self.uri)

    def kill(self) -> None:
        self.stop()

    def prepare(self, repository: Any) -> None:
        ensure = getattr(repository, "ensure_indexes", None)
        if ensure is not None:
            ensure()

    def make_repository(self, db: Database) -> Any:
        raise NotImplementedError

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.repository
