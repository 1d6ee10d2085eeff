"""MongoDB access for the services: pymongo against `MONGO_URI` (mongodb:// or mongodb+srv://), nothing else.

On a development machine `make run` starts a local store (devtools/mongo_standin.py, MongoDB's wire protocol over
mongomock) and points MONGO_URI at it; the services cannot tell it from MongoDB except by the marker it announces,
which they refuse outside the local mode.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from nameko.extensions import DependencyProvider, SharedExtension
from pymongo import MongoClient
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, PyMongoError, WriteConcernError, WriteError

from jaklapor.config import LOCAL_MODE, InsecureConfiguration, run_mode, setting

log = logging.getLogger(__name__)

SCHEMES = ("mongodb://", "mongodb+srv://")
#: the field the development stand-in adds to its hello / buildInfo replies (devtools.mongo_standin.STANDIN_MARKER)
STANDIN_MARKER = "jaklaporStandIn"
NOT_CONFIGURED = "MONGO_URI is not set: point it at MongoDB, or use `make run` which starts the local store"

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


#: the server's codes for a unique index violation (as pymongo's own insert_one tells them apart)
_DUPLICATE_KEY_CODES = (11000, 11001, 12582)


class _PendingInsert:
    __slots__ = ("document", "error", "ready", "written")

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.written = False
        self.error: BaseException | None = None
        self.ready = threading.Event()  # set when it is written, or when it is its turn to write


class GroupedInserts:
    """`insert_one` for many concurrent callers, written together (group commit): while one `insert_many` is on
    its way to the store, the documents of the callers that arrive meanwhile wait and go in the next one.

    Each caller still returns only once its own document is acknowledged, and gets its own outcome, as from
    pymongo's `insert_one`: `DuplicateKeyError` or `WriteError` for its document alone, the batch's `PyMongoError`
    when the write as a whole failed. There is no timer: a lone insert goes at once, and batches grow only with
    the load. One insert costs the store a command, a lock and a journal write whatever its size, so at intake's
    peak this cuts the store's and intake's CPU per report (docs/performance.md, issue 19).

    Callers are threads or green threads (the lock and events are eventlet's under its monkey patching). Invariant,
    under the lock: while nobody is writing, nobody waits; the one writer takes the oldest waiting documents, and
    hands over to the oldest left, so every waiting caller is written or becomes the writer.
    """

    def __init__(self, collection: Collection, max_documents: int = 64) -> None:
        self.collection = collection
        self.max_documents = max_documents
        self._lock = threading.Lock()
        self._waiting: list[_PendingInsert] = []
        self._writing = False

    def insert_one(self, document: dict[str, Any]) -> None:
        entry = _PendingInsert(document)
        with self._lock:
            self._waiting.append(entry)
            writer = not self._writing
            self._writing = True
        if not writer:
            try:
                entry.ready.wait()
            except BaseException:  # killed while waiting: its document may still go, but it never writes
                self._abandon(entry)
                raise
        if not entry.written:  # its turn: it heads the waiting documents
            self._write_next_batch(entry)
        if entry.error is not None:
            raise entry.error

    def _write_next_batch(self, own: _PendingInsert) -> None:
        batch: list[_PendingInsert] = []
        try:
            # let the threads that can run now go first (under eventlet: the green threads ready to run), so that
            # those about to insert join this batch instead of waiting for the next; a lone insert loses a switch
            time.sleep(0)
            with self._lock:
                batch = self._waiting[: self.max_documents]
                del self._waiting[: self.max_documents]
            self._write(batch)
        finally:
            with self._lock:
                if not batch:  # interrupted before it took the batch that its own document heads
                    self._waiting.remove(own)
                following = self._hand_over()
            for entry in batch:
                entry.written = True
                entry.ready.set()
            if following is not None:
                following.ready.set()

    def _abandon(self, entry: _PendingInsert) -> None:
        """A waiting caller is gone: if it had been handed the turn, the next one gets it."""
        with self._lock:
            if entry not in self._waiting:  # taken into a batch: written with it
                return
            had_the_turn = entry.ready.is_set()
            self._waiting.remove(entry)
            following = self._hand_over() if had_the_turn else None
        if following is not None:
            following.ready.set()

    def _hand_over(self) -> _PendingInsert | None:
        """Under the lock: the next writer, the oldest waiting caller; without one, nobody is writing."""
        following = self._waiting[0] if self._waiting else None
        self._writing = following is not None
        return following

    def _write(self, batch: list[_PendingInsert]) -> None:
        try:
            self.collection.insert_many([entry.document for entry in batch], ordered=False)
        except BulkWriteError as exc:
            details = exc.details or {}
            for failure in details.get("writeErrors", []):
                batch[failure["index"]].error = _single_write_error(failure)
            for concern in details.get("writeConcernErrors", [])[:1]:
                for entry in batch:
                    if entry.error is None:
                        entry.error = WriteConcernError(concern.get("errmsg", ""), concern.get("code"), concern)
        except PyMongoError as exc:
            for entry in batch:
                entry.error = exc
        except BaseException as exc:  # the writer (batch[0]) was killed or failed: it raises, the others must not hang
            for entry in batch[1:]:
                entry.error = AutoReconnect(f"the grouped insert was interrupted: {exc!r}")
            raise


def _single_write_error(failure: dict[str, Any]) -> WriteError:
    """The error pymongo's insert_one would have raised for this document of a bulk insert."""
    kind = DuplicateKeyError if failure.get("code") in _DUPLICATE_KEY_CODES else WriteError
    return kind(failure.get("errmsg", ""), failure.get("code"), failure)
