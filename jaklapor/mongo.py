"""MongoDB access for the services: pymongo against `MONGO_URI` (mongodb:// or mongodb+srv://), nothing else.

On a development machine `make run` starts a local store (devtools/mongo_standin.py, MongoDB's wire protocol over
mongomock) and points MONGO_URI at it; the services cannot tell it from MongoDB except by the marker it announces,
which they refuse outside the local mode.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from nameko.extensions import DependencyProvider, SharedExtension
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from jaklapor.config import LOCAL_MODE, InsecureConfiguration, run_mode, setting

log = logging.getLogger(__name__)

SCHEMES = ("mongodb://", "mongodb+srv://")
#: the field the development stand-in adds to its hello / buildInfo replies (devtools.mongo_standin.STANDIN_MARKER)
STANDIN_MARKER = "jaklaporStandIn"
NOT_CONFIGURED = "MONGO_URI is not set: point it at MongoDB, or use `make run` which starts the local store"

_DUPLICATE_KEY = 11000

_warned_standins: set[tuple[str, int]] = set()
_warned_lock = threading.Lock()


class StoreNotConfigured(Exception):
    """MONGO_URI is empty or not a MongoDB connection string."""


def connect(uri: str) -> MongoClient:
    """A pymongo client for `uri` (connecting lazily); StoreNotConfigured unless it is a MongoDB connection string."""
    uri = (uri or "").strip()
    if not uri:
        raise StoreNotConfigured(NOT_CONFIGURED)
    if not uri.startswith(SCHEMES):
        scheme = uri.split("://", 1)[0] if "://" in uri else uri
        raise StoreNotConfigured(
            f"MONGO_URI must start with mongodb:// or mongodb+srv:// (got {scheme!r}); for a local store use "
            "`make run`, which starts one"
        )
    return MongoClient(uri, serverSelectionTimeoutMS=5000, connectTimeoutMS=5000, socketTimeoutMS=20000, tz_aware=True)


def is_standin(client: MongoClient) -> bool:
    """True if the server behind `client` announces itself as jaklapor's development stand-in."""
    return bool(client.admin.command("hello").get(STANDIN_MARKER))


def refuse_standin(client: MongoClient, config: dict[str, Any], service: str) -> None:
    """Stop a service outside the local mode whose store is the development stand-in (InsecureConfiguration): it
    keeps everything in one process's memory with a journal, has no replication, no authentication, no backups.
    In the local mode, say once per process and server what it is."""
    if not is_standin(client):
        return
    host, port = client.address or ("?", 0)
    if run_mode(config) == LOCAL_MODE:
        with _warned_lock:
            first = (host, port) not in _warned_standins
            _warned_standins.add((host, port))
        if first:
            log.warning(
                "the report store at %s:%s is the development stand-in (devtools/mongo_standin.py), not MongoDB: "
                "local mode only",
                host,
                port,
            )
        return
    message = (
        f"{service} refuses to start: the store at {host}:{port} (MONGO_URI) is jaklapor's development stand-in "
        "(devtools/mongo_standin.py, mongomock behind the wire protocol), not MongoDB. Point MONGO_URI at a MongoDB "
        f"server, or set JAKLAPOR_MODE={LOCAL_MODE} on a development machine."
    )
    log.error(message)
    raise InsecureConfiguration(message)


def ping(db: Database) -> bool:
    """True if the database's server answers now (health checks)."""
    try:
        db.client.admin.command("ping")
    except Exception as exc:  # any failure means unhealthy
        log.warning("MongoDB ping failed: %r", exc)
        return False
    return True


class MongoConnection(SharedExtension):
    """One MongoDB client per service container, shared by all its dependency providers (nameko's SharedExtension),
    closed in `stop`, after the providers that use it have stopped.

    nameko sets a container's extensions up all at once, in no order, so the client is opened (and the store checked,
    `refuse_standin`) by whichever comes first: this extension's `setup` or a provider asking for its database.
    """

    def __init__(self) -> None:
        self._client: MongoClient | None = None
        self._opening = threading.Lock()

    def setup(self) -> None:
        self.client()

    def client(self) -> MongoClient:
        with self._opening:
            if self._client is None:
                config = self.container.config
                try:
                    client = connect(setting(config, "MONGO_URI", ""))
                except StoreNotConfigured as exc:
                    log.error("%s: %s", self.container.service_name, exc)
                    raise
                try:
                    refuse_standin(client, config, self.container.service_name)
                except BaseException:
                    client.close()
                    raise
                self._client = client
            return self._client

    def database(self, name: str) -> Database:
        """The database `<MONGO_DB_PREFIX>_<name>` on the container's client."""
        return self.client()[f"{setting(self.container.config, 'MONGO_DB_PREFIX', 'jaklapor')}_{name}"]

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()

    def kill(self) -> None:
        self.stop()


class MongoDatabase(DependencyProvider):
    """Opens the service's own database on the container's shared client in `setup`, hands workers a narrow
    repository.

    Subclasses set `database` and implement `make_repository(db)`; `prepare(db)` creates indexes once at start.
    """

    database: str = ""
    connection = MongoConnection()

    def setup(self) -> None:
        self.db = self.connection.database(self.database)
        self.repository = self.make_repository(self.db)
        self.prepare(self.repository)

    def prepare(self, repository: Any) -> None:
        ensure = getattr(repository, "ensure_indexes", None)
        if ensure is not None:
            ensure()

    def make_repository(self, db: Database) -> Any:
        raise NotImplementedError

    def get_dependency(self, worker_ctx: Any) -> Any:
        return self.repository


class _PendingInsert:
    __slots__ = ("document", "done", "error", "leads")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.leads = False  # handed the writing of the next batch (it is that batch's first document)


class GroupedInserts:
    """Single-document inserts into one collection, group-committed: the inserts that arrive while one is being
    written go to the store together, in one unordered `insert_many`, as a database groups the commits that wait
    for one journal flush.

    Each caller still inserts one document and gets that document's own outcome: it returns once the document is
    stored, raises `DuplicateKeyError` (or another `WriteError`) when the store refused that document alone, or the
    batch's exception (e.g. `AutoReconnect`) when the write as a whole failed, exactly as its own `insert_one` would.
    Nothing waits for company: a lone insert is written at once with `insert_one`, and a batch forms only from
    inserts that would otherwise have queued for the store in parallel (issue 19: a report's insert was 12 % of
    intake's CPU, mostly per-operation overhead in pymongo and the store). One batch is written at a time per
    collection; whoever's document heads the queue writes the next one, so no thread of our own is needed, and
    `threading` primitives are green under eventlet.
    """

    def __init__(self, collection: Any, max_batch: int = 100) -> None:
        self._collection = collection
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[_PendingInsert] = []
        self._writing = False

    @property
    def waiting(self) -> int:
        """How many inserts wait for the batch being written to finish."""
        with self._lock:
            return len(self._queue)

    def insert(self, document: dict[str, Any]) -> None:
        """Store `document`, with the same outcome as `insert_one(document)` (see the class)."""
        pending = _PendingInsert(document)
        with self._lock:
            self._queue.append(pending)
            leads = pending.leads = not self._writing
            self._writing = True
        if not leads:
            pending.done.wait()
        if pending.leads:
            self._write_next_batch()
        if pending.error is not None:
            raise pending.error

    def _write_next_batch(self) -> None:
        with self._lock:
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
        try:
            self._write(batch)
        except BaseException as exc:  # e.g. the green thread killed mid-write: nobody of the batch may wait forever
            for pending in batch:
                pending.error = pending.error or exc
            raise
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._writing = False
                else:
                    successor.leads = True
            for pending in batch[1:]:
                pending.done.set()
            if successor is not None:
                successor.done.set()

    def _write(self, batch: list[_PendingInsert]) -> None:
        if len(batch) == 1:
            try:
                self._collection.insert_one(batch[0].document)
            except Exception as exc:
                batch[0].error = exc
            return
        try:
            self._collection.insert_many([pending.document for pending in batch], ordered=False)
        except BulkWriteError as exc:
            for error in exc.details.get("writeErrors", []):
                cls = DuplicateKeyError if error.get("code") == _DUPLICATE_KEY else WriteError
                batch[error["index"]].error = cls(error.get("errmsg", ""), error.get("code"), error)
            # whatever the store did not report as refused was written; a write concern error concerns them all
            if exc.details.get("writeConcernErrors"):
                for pending in batch:
                    pending.error = pending.error or exc
        except Exception as exc:
            for pending in batch:
                pending.error = exc
