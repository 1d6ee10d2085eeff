"""A MongoDB stand-in for development and tests: mongomock behind the MongoDB wire protocol.

No MongoDB server can be installed on the development machines, and mongomock alone keeps its data inside one
process. This module serves mongomock over TCP, so several service processes share one store that outlives them
(a process can be SIGKILLed while the data stays). Services keep
the production code path: a real `pymongo.MongoClient("mongodb://127.0.0.1:27017/")`, chosen by `MONGO_URI`.

    python -m devtools.mongo_standin --host 127.0.0.1 --port 27017 [--data-dir DIR]

or, from tests, `MongoStandIn("127.0.0.1", 0).start()` (`.address`, `.uri`, `.stop()`).

Wire protocol: OP_MSG (kind 0 body, kind 1 document sequences, checksum ignored, moreToCome honoured) and OP_QUERY
on `<db>.$cmd` answered with OP_REPLY (pymongo's handshake on every new connection is a legacy OP_QUERY `isMaster`).
The server reports a standalone MongoDB 6.0 (wire version 17) with sessions, without `topologyVersion` (so pymongo
polls instead of streaming heartbeats) and without compression. Its `hello` / `isMaster` and `buildInfo` replies carry
`jaklaporStandIn: true` (STANDIN_MARKER), so a service can tell it from a real MongoDB and refuse it in deployment.

Commands: hello/isMaster, ping, buildInfo, getParameter, serverStatus, hostInfo, whatsmyuri, connectionStatus,
getCmdLineOpts, startSession/endSessions/refreshSessions, insert, find, getMore, killCursors, update, delete,
findAndModify, aggregate, count, distinct, createIndexes, listIndexes, dropIndexes, listCollections, listDatabases,
create, drop, dropDatabase, renameCollection, collMod (ignored), dbStats. Anything else: CommandNotFound (59).

Query and update semantics are mongomock's; only how documents are found is faster. Filters on `_id` (equality,
`$eq`, `$in`) are direct lookups; a filter with an equality, `$in`, range, `$exists: true`... condition on the
leading field of an index only checks the documents holding a value there (mongomock's matcher still decides);
unique indexes keep a hash map instead of scanning the collection on every write; documents are encoded straight
from the store instead of being deep-copied. Other filters scan the collection, as mongomock does. Unsorted results
found through an index come in index order (as in MongoDB), not in insertion order.

One lock serialises every access to mongomock (it is not thread-safe); each connection has its own thread.
With `--data-dir`, every write appends the resulting documents to a journal (BSON records) that is replayed and
compacted at start, so the stand-in itself can restart without losing data. `fsync=True` (`--fsync always`) answers
a write only once its record is on disk, so an OS crash or power loss loses no acknowledged write; writes arriving
while one fsync runs share the next (group commit). Without it a process crash loses nothing, an OS crash can lose
the last writes.

Not supported: transactions, change streams, authentication, compression, collations, arrayFilters, `$merge`,
tailable cursors, retryable-write bookkeeping (writes are applied once per request).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import errno
import faulthandler
import itertools
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import bson
import mongomock
from bson.binary import Binary
from bson.codec_options import CodecOptions
from bson.errors import BSONError
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from mongomock import aggregate as mm_aggregate
from mongomock import filtering as mm_filtering
from mongomock import helpers as mm_helpers
from mongomock.collection import Collection as _MockCollection
from mongomock.database import Database as _MockDatabase
from pymongo.errors import CollectionInvalid, DuplicateKeyError, OperationFailure, WriteError

log = logging.getLogger("devtools.mongo_standin")

#: the field in the hello / isMaster and buildInfo replies that says "this is the development stand-in, not MongoDB"
#: (jaklapor/mongo.py looks for it by name; a real server never sends it)
STANDIN_MARKER = "jaklaporStandIn"

# MongoDB's TTL monitor removes expired documents in the background, once every 60 s; mongomock instead scans the
# whole collection on every read and write of a collection with a TTL index (O(n) per operation: with routing's
# index of recent reports that was most of the stand-in's CPU under load). The stand-in sweeps a collection at most
# once a second: an expired document may be seen for up to a second, well inside what MongoDB itself allows.
TTL_SWEEP_SECONDS = 1.0
_sweep_expired = mongomock.store.CollectionStore._remove_expired_documents


def _sweep_expired_at_most_every_second(store: Any) -> None:
    now = time.monotonic()
    if now - getattr(store, "_jaklapor_swept_at", float("-inf")) < TTL_SWEEP_SECONDS:
        return
    store._jaklapor_swept_at = now
    _sweep_expired(store)


mongomock.store.CollectionStore._remove_expired_documents = _sweep_expired_at_most_every_second

__all__ = ["MongoStandIn", "main"]

OP_REPLY = 1
OP_QUERY = 2004
OP_COMPRESSED = 2012
OP_MSG = 2013

FLAG_CHECKSUM = 1
FLAG_MORE_TO_COME = 2

MAX_BSON_SIZE = 16 * 1024 * 1024
MAX_MESSAGE_SIZE = 48_000_000
MAX_WRITE_BATCH = 100_000
MAX_WIRE_VERSION = 17  # MongoDB 6.0
SERVER_VERSION = "6.0.0"
DEFAULT_FIRST_BATCH = 101
BATCH_BYTES = MAX_BSON_SIZE - 64 * 1024  # room for the reply envelope around a batch
CURSOR_IDLE_SECONDS = 600
RECV_SIZE = 256 * 1024
SESSION_TIMEOUT_MINUTES = 30

_HEADER = struct.Struct("<iiii")
_INT32 = struct.Struct("<i")
_UINT32 = struct.Struct("<I")
_OP_MSG_PREFIX = struct.Struct("<iiiiIB")  # header, flagBits, section kind 0
_OP_REPLY_PREFIX = struct.Struct("<iiiiiqii")  # header, responseFlags, cursorID, startingFrom, numberReturned

# stored documents hold naive UTC datetimes (mongomock's convention); bson encodes them as UTC, and each client
# decodes them with its own tz_aware setting
CODEC = CodecOptions(tz_aware=False)
_encode = bson.encode
_decode = bson.decode

CODE_NAMES = {
    1: "InternalError",
    2: "BadValue",
    9: "FailedToParse",
    14: "TypeMismatch",
    20: "IllegalOperation",
    26: "NamespaceNotFound",
    27: "IndexNotFound",
    43: "CursorNotFound",
    48: "NamespaceExists",
    59: "CommandNotFound",
    66: "ImmutableField",
    72: "InvalidOptions",
    73: "InvalidNamespace",
    85: "IndexOptionsConflict",
    238: "NotImplemented",
    11000: "DuplicateKey",
}


class CommandError(Exception):
    """A command failure to report as `{ok: 0, errmsg, code, codeName}`."""

    def __init__(self, message: str, code: int = 2, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


def _opcounters(commands: Mapping[str, int]) -> dict[str, Int64]:
    """MongoDB's serverStatus `opcounters` from the commands run (findAndModify counts as a command, as there)."""
    counters = dict.fromkeys(("insert", "query", "update", "delete", "getmore", "command"), 0)
    kinds = {"insert": "insert", "find": "query", "update": "update", "delete": "delete", "getMore": "getmore"}
    for key, count in commands.items():
        counters[kinds.get(key.rsplit(".", 1)[-1], "command")] += count
    return {kind: Int64(count) for kind, count in counters.items()}


def _error_doc(message: str, code: int, **extra: Any) -> dict[str, Any]:
    return {"ok": 0.0, "errmsg": message, "code": code, "codeName": CODE_NAMES.get(code, "UnknownError"), **extra}


def _exception_code(exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        return exc.code
    if isinstance(exc, OperationFailure) and exc.code:
        return int(exc.code)
    if isinstance(exc, NotImplementedError):
        return 238
    if isinstance(exc, (WriteError, OperationFailure, ValueError, TypeError, KeyError, BSONError)):
        return 2
    return 1


def _exception_extra(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, CommandError):
        return exc.extra
    details = getattr(exc, "details", None)
    if isinstance(exc, DuplicateKeyError) and isinstance(details, Mapping):
        return {k: details[k] for k in ("keyPattern", "keyValue") if k in details}
    return {}


def _exception_message(exc: BaseException) -> str:
    if isinstance(exc, NotImplementedError):
        return f"not supported by the mongomock stand-in: {exc}"
    plain = getattr(exc, "plain_message", None)
    if plain is not None:
        return plain
    if isinstance(exc, OperationFailure) and exc.args:
        return str(exc.args[0]).split(", full error: ")[0]
    return str(exc) or type(exc).__name__


# --- mongomock with a few fast paths --------------------------------------------------------------------------

_SCALAR_ID_TYPES = frozenset({str, int, Int64, float, ObjectId, bytes, Binary, datetime.datetime, uuid.UUID})
_UPDATE_PIPELINE_STAGES = frozenset({"$addFields", "$set", "$project", "$unset", "$replaceRoot", "$replaceWith"})
_UNHASHABLE = object()
_SKIP = object()
_MISSING = object()


def _store_key(value: Any) -> Any:
    """The key mongomock's CollectionStore uses for an `_id`."""
    return mm_helpers.hashdict(value) if isinstance(value, dict) else value


def _id_lookup_keys(value: Any) -> list[Any] | None:
    """Store keys an `_id` condition can match, or None when it needs a scan."""
    kind = type(value)
    if kind in _SCALAR_ID_TYPES or value is None:
        return [value]
    if kind is dict and len(value) == 1:
        ((op, arg),) = value.items()
        if op == "$eq" and (type(arg) in _SCALAR_ID_TYPES or arg is None):
            return [arg]
        if op == "$in" and type(arg) is list and all(type(v) in _SCALAR_ID_TYPES for v in arg):
            return list(dict.fromkeys(arg))
    return None


class _UniqueIndex:
    """A hash map from index key to the `_id` store key that holds it, for one unique index.

    Entries are never removed: a hit is checked against the holder's current value, so a stale entry (holder
    deleted, changed or rolled back) cannot cause a false duplicate. Values that are not hashable scalars (arrays,
    sub-documents) and partial indexes fall back to mongomock's scan for good.
    """

    __slots__ = ("entries", "fields", "paths", "slow", "sparse", "spec")

    def __init__(self, spec: dict[str, Any], documents: Mapping[Any, dict[str, Any]], exclude: Any) -> None:
        self.spec = spec
        self.fields = [field for field, _ in spec["key"]]
        self.paths = [field.split(".") for field in self.fields]
        self.sparse = bool(spec.get("sparse"))
        self.slow = spec.get("partialFilterExpression") is not None
        self.entries: dict[Any, Any] = {}
        if not self.slow:
            for key, doc in documents.items():
                if key == exclude:
                    continue  # the document being checked: it must not pass for the holder of its own key
                value = self.key_of(doc)
                if value is _SKIP:
                    continue
                if value is _UNHASHABLE:
                    self.slow = True
                    self.entries.clear()
                    break
                self.entries[value] = key

    def key_of(self, doc: Mapping[str, Any]) -> Any:
        values = []
        present = False
        for parts in self.paths:
            current: Any = doc
            for part in parts:
                if isinstance(current, dict):
                    current = current.get(part, _MISSING)
                    if current is _MISSING:
                        break
                elif isinstance(current, list):
                    return _UNHASHABLE
                else:
                    current = _MISSING
                    break
            if current is _MISSING or current is None:
                values.append(None)
                continue
            if isinstance(current, (list, dict)) or type(current) is bool or current != current:  # NaN too
                return _UNHASHABLE
            present = True
            values.append(current)
        if self.sparse and not present:
            return _SKIP
        key = tuple(values)
        try:
            hash(key)
        except TypeError:
            return _UNHASHABLE
        return key


class _DuplicateKey(DuplicateKeyError):
    """pymongo's DuplicateKeyError (mongomock rolls back on it) that remembers the server's plain message."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message, 11000, details)
        self.plain_message = message


def _snapshot(value: Any) -> Any:
    """A copy of a stored document's containers, sharing its (immutable) leaves: equal to copy.deepcopy for the
    rollback and change detection of an update (NaN stays identical to itself), about 3 times faster."""
    kind = type(value)
    if kind is dict:
        return {k: (v if type(v) in _LEAVES else _snapshot(v)) for k, v in value.items()}
    if kind is list:
        return [(v if type(v) in _LEAVES else _snapshot(v)) for v in value]
    if isinstance(value, dict):
        return kind((k, _snapshot(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_snapshot(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_snapshot(v) for v in value)
    return value


_LEAVES = frozenset({str, int, float, bool, type(None), datetime.datetime, ObjectId, Int64, bytes})
_TIMELESS_LEAVES = _LEAVES - {datetime.datetime}


def _as_stored(value: Any) -> Any:
    """mongomock's `patch_datetime_awareness_in_document` (a copy of the containers, datetimes as MongoDB keeps
    them: naive UTC, millisecond precision), with plain leaves passed over by their exact type. mongomock's own
    walk tests every value against five types in a generator: the largest function in a profile of the stand-in
    at max rate (issue 19)."""
    kind = type(value)
    if kind is dict:
        return {k: (v if type(v) in _TIMELESS_LEAVES else _as_stored(v)) for k, v in value.items()}
    if kind is list:
        return [(v if type(v) in _TIMELESS_LEAVES else _as_stored(v)) for v in value]
    if kind is collections.OrderedDict:  # what mongomock builds for an upsert's new document (_discard_operators)
        stored = ((k, v if type(v) in _TIMELESS_LEAVES else _as_stored(v)) for k, v in value.items())
        return collections.OrderedDict(stored)
    if kind is datetime.datetime and value.tzinfo is None and not value.microsecond % 1000:
        return value  # as every datetime off the wire is: naive UTC in milliseconds
    # other datetimes, SONs and other dict kinds, tuples, an empty Timestamp, other leaves: as mongomock does them
    return mm_helpers.patch_datetime_awareness_in_document(value)


def _validate_update_pipeline(pipeline: list[Any]) -> None:
    for stage in pipeline:
        for name in stage:
            mm_aggregate.validate_stage_name(name)
            if name not in _UPDATE_PIPELINE_STAGES:
                raise WriteError(f"{name} is not allowed to be used within an update", 2)


def _duplicate_key_error(namespace: str, index_name: str, fields: list[str], values: list[Any]) -> DuplicateKeyError:
    shown = ", ".join(f"{field}: {json.dumps(value, default=str)}" for field, value in zip(fields, values, strict=True))
    message = f"E11000 duplicate key error collection: {namespace} index: {index_name} dup key: {{ {shown} }}"
    details = {"keyPattern": dict.fromkeys(fields, 1), "keyValue": dict(zip(fields, values, strict=True))}
    return _DuplicateKey(message, details)


_INDEXABLE_TYPES = frozenset({str, int, Int64, float, bool, ObjectId, bytes, datetime.datetime, type(None)})
_COMPLEX = object()
_PRESENT = object()
_RANGE_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})
_PATH_OPS = frozenset({"$regex", "$size", "$elemMatch", "$all"})  # match only where the path exists


class _FieldIndex:
    """Candidate sets for one indexed path: value -> store keys, plus the documents whose value there is complex.

    It over-approximates: every stored document is filed under its current value (maintained on insert, update
    and delete), while entries left by other removals (TTL expiry, a dropped write) stay until a query meets them
    and drops them.
    Queries therefore only narrow the documents that mongomock's matcher then checks, so results are mongomock's.
    """

    __slots__ = ("by_value", "complex", "entries", "parts")

    def __init__(self, path: str, documents: Mapping[Any, dict[str, Any]]) -> None:
        self.parts = path.split(".")
        self.refile(documents)

    def refile(self, documents: Mapping[Any, dict[str, Any]]) -> None:
        """File every document afresh, dropping whatever stale entries had piled up."""
        self.by_value: dict[Any, dict[Any, None]] = {}
        self.complex: dict[Any, None] = {}
        self.entries = 0
        for key, doc in documents.items():
            self.add(key, doc)

    def value_of(self, doc: Mapping[str, Any]) -> Any:
        current: Any = doc
        for part in self.parts:
            if type(current) is dict:
                current = current.get(part, _MISSING)
                if current is _MISSING:
                    return _MISSING
            elif isinstance(current, list):
                return _COMPLEX
            elif isinstance(current, dict):
                current = current.get(part, _MISSING)
                if current is _MISSING:
                    return _MISSING
            else:
                return _MISSING
        if type(current) not in _INDEXABLE_TYPES or current != current:  # arrays, documents, other types, NaN
            return _COMPLEX
        return current

    def add(self, key: Any, doc: Mapping[str, Any]) -> None:
        value = self.value_of(doc)
        if value is _MISSING:
            return
        if value is _COMPLEX:
            if key not in self.complex:
                self.complex[key] = None
                self.entries += 1
            return
        bucket = self.by_value.get(value)
        if bucket is None:
            self.by_value[value] = {key: None}
            self.entries += 1
        elif key not in bucket:
            bucket[key] = None
            self.entries += 1

    def discard(self, key: Any, doc: Mapping[str, Any]) -> None:
        """Take `key` out from under the value `doc` holds here: the document's value before an update or a
        delete. Without it an index on a field that keeps changing (the outbox's due time) fills with stale
        entries until its estimate passes the collection's size, and every query on it scans the collection."""
        value = self.value_of(doc)
        if value is _MISSING:
            return
        if value is _COMPLEX:
            if self.complex.pop(key, _MISSING) is not _MISSING:
                self.entries -= 1
            return
        bucket = self.by_value.get(value)
        if bucket is not None and bucket.pop(key, _MISSING) is not _MISSING:
            self.entries -= 1
            if not bucket:
                del self.by_value[value]

    def estimate(self, values: list[Any] | None) -> int:
        if values is None:
            return self.entries
        return len(self.complex) + sum(len(self.by_value.get(value, ())) for value in values)

    def candidates(self, documents: Mapping[Any, dict[str, Any]], values: list[Any] | None) -> list[Any]:
        """Store keys of the documents that may hold one of `values` (None: any value) here, dropping stale ones."""
        found: dict[Any, None] = {}
        if values is None:
            buckets = list(self.by_value.items())
        else:
            buckets = [(value, self.by_value.get(value)) for value in values]
        for value, bucket in buckets:
            if not bucket:
                continue
            for key in list(bucket):
                doc = documents.get(key)
                current = _MISSING if doc is None else self.value_of(doc)
                if current is _MISSING or current is _COMPLEX or current != value:
                    del bucket[key]
                    self.entries -= 1
                    continue
                found[key] = None
            if not bucket:
                self.by_value.pop(value, None)
        for key in list(self.complex):
            doc = documents.get(key)
            if doc is None or self.value_of(doc) is not _COMPLEX:
                del self.complex[key]
                self.entries -= 1
                continue
            found[key] = None
        return list(found)


#: Stale entries an index may hold beyond twice its collection's size before it files every document afresh.
_STALE_ENTRIES_SLACK = 64


def _equality_restriction(value: Any) -> Any:
    if value is None or isinstance(value, (MinKey, MaxKey)):
        return None  # null also matches a missing field
    if type(value) in _INDEXABLE_TYPES:
        return [value]
    return _PRESENT  # a document, an array, a regex...: matches only where the path exists


def _restriction(condition: Any) -> Any:
    """What a filter condition on one path needs there: a list of values, _PRESENT (any value), or None."""
    if type(condition) is not dict or not condition or not next(iter(condition)).startswith("$"):
        return _equality_restriction(condition)
    best: Any = None
    for op, arg in condition.items():
        found: Any = None
        if op == "$eq":
            found = _equality_restriction(arg)
        elif op == "$in" and type(arg) is list:
            if all(type(v) in _INDEXABLE_TYPES and v is not None for v in arg):
                found = list(dict.fromkeys(arg)) if len(arg) > 1 else list(arg)
            elif all(v is not None and not isinstance(v, (MinKey, MaxKey, list)) for v in arg):
                found = _PRESENT
        elif op in _RANGE_OPS:
            if arg is not None and not isinstance(arg, (MinKey, MaxKey)):
                found = _PRESENT
        elif op == "$exists":
            if arg:
                found = _PRESENT
        elif op in _PATH_OPS:
            found = _PRESENT
        if found is None or (found is _PRESENT and best is not None):
            continue
        if best is None or best is _PRESENT or len(found) < len(best):
            best = found
    return best


def _field_indexes(store: Any) -> dict[str, _FieldIndex]:
    """The candidate index of each path that leads an index of the collection (kept in sync with the indexes)."""
    state = store.__dict__.get("_standin_fields")
    names = tuple(store.indexes)
    if state is not None and state[0] == names:
        return state[1]
    paths: dict[str, _FieldIndex] = {}
    previous = state[1] if state is not None else {}
    for spec in store.indexes.values():
        path = spec["key"][0][0]
        if path in paths or path.startswith("$"):
            continue
        paths[path] = previous.get(path) or _FieldIndex(path, store._documents)
    store.__dict__["_standin_fields"] = (names, paths)
    return paths


def _forget_indexes(store: Any) -> None:
    store.__dict__.pop("_standin_fields", None)
    store.__dict__.pop("_standin_unique", None)


class FastCollection(_MockCollection):
    """mongomock's Collection with O(1) `_id` lookups, hashed unique indexes and write recording."""

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        return self

    @property
    def _recorder(self) -> list[tuple[Any, ...]] | None:
        return self.database.client._recorder

    # reads without recording: the server's own handlers use this
    def _find_docs(self, filter: Any) -> Iterable[dict[str, Any]]:
        store = self._store
        if type(filter) is dict and "_id" in filter:
            keys = _id_lookup_keys(filter["_id"])
            if keys is not None:
                if store._ttl_indexes:
                    store._remove_expired_documents()
                documents = store._documents
                plain = len(filter) == 1
                found = []
                for key in keys:
                    doc = documents.get(key)
                    if doc is not None and (plain or mm_filtering.filter_applies(filter, doc)):
                        found.append(doc)
                return found
        if filter is None:
            filter = {}
        elif type(filter) is dict and filter and store.indexes:
            planned = self._planned(store, filter)
            if planned is not None:
                return planned
        return super()._iter_documents(filter)

    def _planned(self, store: Any, filter: dict[str, Any]) -> Iterator[dict[str, Any]] | None:
        """The documents a filter can match, narrowed through an indexed path; None when that would not help."""
        fields = _field_indexes(store)
        if not fields:
            return None
        best: tuple[int, _FieldIndex, list[Any] | None] | None = None
        for path, condition in filter.items():
            index = fields.get(path)
            if index is None:
                continue
            restriction = _restriction(condition)
            if restriction is None:
                continue
            values = None if restriction is _PRESENT else restriction
            estimate = index.estimate(values)
            if best is None or estimate < best[0]:
                best = (estimate, index, values)
        if best is None:
            return None
        if store._ttl_indexes:
            store._remove_expired_documents()
        documents = store._documents
        if best[1].entries > 2 * len(documents) + _STALE_ENTRIES_SLACK:
            # Documents that expired (TTL) leave their entries behind, and a query that scans never meets them to
            # drop them: refile, at a cost spread over at least as many expiries as there are documents.
            best[1].refile(documents)
            return self._planned(store, filter)
        if best[0] >= len(documents):
            return None
        keys = best[1].candidates(documents, best[2])
        return self._matching(documents, keys, filter)

    @staticmethod
    def _matching(documents: Mapping[Any, dict[str, Any]], keys: list[Any], filter: dict[str, Any]) -> Iterator[Any]:
        applies = mm_filtering.filter_applies
        for key in keys:
            doc = documents.get(key)
            if doc is not None and applies(filter, doc):
                yield doc

    def _internalize_dict(self, d: Mapping[str, Any]) -> dict[str, Any]:
        """A replacement document's copy: `_snapshot` instead of mongomock's `copy.deepcopy` of every value (`_update`
        made the document a plain dict with `_as_stored`)."""
        return _snapshot(d)

    def _index_document(self, key: Any, doc: dict[str, Any]) -> None:
        store = self._store
        if store.indexes:
            for index in _field_indexes(store).values():
                index.add(key, doc)

    def _reindex_document(self, key: Any, before: Mapping[str, Any], after: dict[str, Any]) -> None:
        """A document changed from `before` to `after`: file it under its new values only."""
        store = self._store
        if store.indexes:
            for index in _field_indexes(store).values():
                index.discard(key, before)
                index.add(key, after)

    def _unindex_document(self, key: Any, doc: Mapping[str, Any]) -> None:
        store = self._store
        if store.indexes:
            for index in _field_indexes(store).values():
                index.discard(key, doc)

    # used by mongomock internally (updates, unique checks): the documents it hands out are recorded as touched
    def _iter_documents(self, filter: Any) -> Iterable[dict[str, Any]]:
        docs = self._find_docs(filter)
        recorder = self.database.client._recorder
        if recorder is None:
            return docs
        return self._recording(docs, recorder)

    def _recording(self, docs: Iterable[dict[str, Any]], recorder: list[tuple[Any, ...]]) -> Iterator[dict[str, Any]]:
        db, name = self.database.name, self._name
        for doc in docs:
            recorder.append(("t", db, name, doc.get("_id")))
            yield doc

    def _update(
        self,
        spec: Any,
        document: Any,
        upsert: bool = False,
        manipulate: bool = False,
        multi: bool = False,
        check_keys: bool = False,
        hint: Any = None,
        session: Any = None,
        collation: Any = None,
        let: Any = None,
        array_filters: Any = None,
        decoded: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """mongomock 4.3's `Collection._update`, with a cheaper snapshot than `copy.deepcopy` (see `_snapshot`),
        a document left as it was when applying the update fails half-way (mongomock keeps the half-applied
        change; MongoDB updates a document atomically), the candidate indexes kept up to date, and without the
        per-call server-version check (this server reports 6.0). `decoded`: the update came off the wire as BSON
        (see `_replace_decoded`)."""
        if collation:
            raise NotImplementedError("collation")
        if array_filters:
            raise NotImplementedError("arrayFilters")
        if let:
            raise NotImplementedError("let")
        if not isinstance(spec, Mapping):
            raise TypeError("filter must be a mapping")
        if not isinstance(document, (Mapping, list)):
            raise TypeError("update must be a document or a pipeline")
        spec = _as_stored(spec)
        document = _as_stored(document)
        if isinstance(document, list):
            _validate_update_pipeline(document)
        self._unique_indexes()  # built from documents at rest, before any of them changes

        updated_existing = False
        upserted_id = None
        num_updated = 0
        num_matched = 0
        for existing_document in itertools.chain(self._iter_documents(spec), [None]):
            was_insert = False
            if existing_document is None:
                if not upsert or num_matched:
                    continue
                if spec.get("_id") is not None:
                    _id = spec["_id"]
                elif not isinstance(document, list) and document.get("_id") is not None:
                    _id = document["_id"]
                else:
                    _id = ObjectId()
                to_insert = dict(spec, _id=_id)
                to_insert = self._expand_dots(to_insert)
                to_insert, _ = self._discard_operators(to_insert)
                existing_document = to_insert
                was_insert = True
            else:
                original = _snapshot(existing_document)
                updated_existing = True
            num_matched += 1

            try:
                if isinstance(document, list):
                    self._apply_update_pipeline(existing_document, document, session)
                elif decoded and document and not any(key[:1] == "$" for key in document):
                    self._replace_decoded(existing_document, spec, document)
                else:
                    self._apply_update_document(existing_document, spec, document, was_insert)
            except BaseException:
                if not was_insert:
                    key = _store_key(original["_id"])
                    self._store[key] = original
                    self._index_document(key, original)
                raise

            if was_insert:
                upserted_id = self._insert(existing_document)
                num_updated += 1
            elif existing_document != original:
                key = _store_key(original["_id"])
                if original.get("_id") != existing_document.get("_id"):
                    self._store[key] = original
                    self._index_document(key, original)
                    raise WriteError(
                        "After applying the update, the (immutable) field '_id' was found to have been altered "
                        f"to _id: {existing_document.get('_id')}",
                        66,
                    )
                self._reindex_document(key, original, existing_document)
                try:
                    self._ensure_uniques(existing_document)
                    num_updated += 1
                except DuplicateKeyError:
                    self._store[key] = original
                    self._reindex_document(key, existing_document, original)
                    raise
            if not multi:
                break

        return {
            "n": num_matched,
            "nModified": num_updated if updated_existing else 0,
            "ok": 1,
            "upserted": upserted_id,
            "updatedExisting": updated_existing,
        }

    @staticmethod
    def _replace_decoded(existing_document: dict[str, Any], spec: Mapping[str, Any], document: dict[str, Any]) -> None:
        """mongomock's replacement of a whole document (the end of `Collection._apply_update_document`), for a
        replacement without `$` fields decoded off the wire: without mongomock's check that every key is free of
        the null character and that the document encodes as BSON, which decoding it from BSON already proved (a
        BSON key cannot hold a null character). The two were 5 % of the stand-in's busy samples at max rate (issue 19:
        stats replaces a report's projection at every step)."""
        _id = spec.get("_id", existing_document.get("_id"))
        existing_document.clear()
        if _id is not None:
            existing_document["_id"] = _id
        existing_document.update(_snapshot(document))
        if existing_document["_id"] != _id:
            # mongomock's words, in its order
            raise OperationFailure(f"The _id field cannot be changed from {existing_document['_id']} to {_id}")

    def _insert(self, data: Any, session: Any = None, ordered: bool = True) -> Any:
        if not isinstance(data, Mapping):
            return super()._insert(data, session, ordered=ordered)
        for field in data:
            if field[:1] == "$":
                raise WriteError(f"Document can't have $ prefixed field names: {field}", 2)
        if "_id" not in data:
            data["_id"] = ObjectId()
        object_id = data["_id"]
        if isinstance(object_id, list):
            raise WriteError("can't use an array for _id", 2)
        # stored as MongoDB stores it (naive UTC, millisecond precision) and as a copy: an in-process caller keeps
        # its own dict, and aware and naive datetimes never meet in a comparison
        data = _as_stored(data)
        key = _store_key(object_id)
        store = self._store
        if store._ttl_indexes:
            store._remove_expired_documents()
        # the server's lock serialises every access, so mongomock's own reader/writer lock is bypassed
        documents = store._documents
        if key in documents:
            raise _duplicate_key_error(self.full_name, "_id_", ["_id"], [object_id])
        if store.indexes:
            self._unique_indexes()
        documents[key] = data
        self._index_document(key, data)
        try:
            self._ensure_uniques(data)
        except DuplicateKeyError:
            del documents[key]
            raise
        recorder = self.database.client._recorder
        if recorder is not None:
            recorder.append(("t", self.database.name, self._name, object_id))
        return object_id

    def _unique_indexes(self) -> dict[str, _UniqueIndex]:
        """The hash maps of the unique indexes, built while no document is half-way through a change."""
        store = self._store
        state = store.__dict__.setdefault("_standin_unique", {})
        for name, spec in store.indexes.items():
            if spec.get("unique"):
                index = state.get(name)
                if index is None or index.spec is not spec:
                    state[name] = _UniqueIndex(spec, store._documents, _MISSING)
        return state

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        store = self._store
        if not store.indexes:
            return
        state = store.__dict__.setdefault("_standin_unique", {})
        own = _store_key(new_data["_id"])
        for name, spec in store.indexes.items():
            if not spec.get("unique"):
                continue
            index = state.get(name)
            if index is None or index.spec is not spec:
                index = state[name] = _UniqueIndex(spec, store._documents, own)
            if not index.slow:
                value = index.key_of(new_data)
                if value is _SKIP:
                    continue
                if value is _UNHASHABLE:
                    index.slow = True
                    index.entries.clear()
                else:
                    holder = index.entries.get(value, _MISSING)
                    if holder is not _MISSING and holder != own:
                        other = store._documents.get(holder)
                        if other is not None and index.key_of(other) == value:
                            raise _duplicate_key_error(self.full_name, name, index.fields, list(value))
                    index.entries[value] = own
                    continue
            self._ensure_unique_by_scan(name, spec, new_data)

    def _ensure_unique_by_scan(self, name: str, spec: dict[str, Any], new_data: dict[str, Any]) -> None:
        # mongomock's own check, for one index
        query: dict[str, Any] = {}
        for field, _ in spec["key"]:
            try:
                query[field] = mm_helpers.get_value_by_dot(new_data, field)
            except KeyError:
                query[field] = None
        if spec.get("sparse") and all(value is None for value in query.values()):
            return
        if spec.get("partialFilterExpression") is not None:
            if not mm_filtering.filter_applies(spec["partialFilterExpression"], new_data):
                return
            query = {"$and": [spec["partialFilterExpression"], query]}
        for matches, _ in enumerate(self._find_docs(query), start=1):
            if matches > 1:
                raise _duplicate_key_error(self.full_name, name, list(query), list(query.values()))

    def drop(self, session: Any = None) -> None:
        self.database.drop_collection(self._name)


class FastDatabase(_MockDatabase):
    def get_collection(self, name: str, *args: Any, **kwargs: Any) -> FastCollection:
        collection = self._collection_accesses.get(name)
        if collection is None:
            self._ensure_valid_collection_name(name)
            collection = self._collection_accesses[name] = FastCollection(
                self, name=name, _db_store=self._store, codec_options=self._codec_options
            )
        return collection

    def drop_collection(self, name_or_collection: Any, session: Any = None) -> None:
        name = name_or_collection if isinstance(name_or_collection, str) else name_or_collection.name
        recorder = self._client._recorder
        if recorder is not None:
            recorder.append(("s", {"o": "dc", "d": self.name, "c": name}))
        store = self._store[name]
        store.drop()
        _forget_indexes(store)

    def with_options(self, *args: Any, **kwargs: Any) -> Any:
        return self


class FastClient(mongomock.MongoClient):
    """mongomock's client with indexed lookups: the stand-in server's store."""

    def __init__(self, tz_aware: bool = False) -> None:
        super().__init__(tz_aware=tz_aware)
        self._recorder: list[tuple[Any, ...]] | None = None

    def get_database(self, name: str | None = None, *args: Any, **kwargs: Any) -> FastDatabase:
        if name is None:
            raise CommandError("no database name", 73)
        db = self._database_accesses.get(name)
        if db is None:
            db = self._database_accesses[name] = FastDatabase(
                self, name, _store=self._store[name], codec_options=self._codec_options
            )
        return db


# --- helpers for commands ---------------------------------------------------------------------------------------


def _project(collection: FastCollection, doc: dict[str, Any], projection: Mapping[str, Any] | None) -> dict[str, Any]:
    """The projected document; simple top-level projections are shallow (the result is encoded at once)."""
    if not projection:
        return doc
    include: set[str] = set()
    exclude: set[str] = set()
    id_wanted = True
    simple = True
    for field, flag in projection.items():
        if type(flag) not in (int, bool, float, Int64) or "." in field or field[:1] == "$":
            simple = False
            break
        if field == "_id":
            id_wanted = bool(flag)
        elif flag:
            include.add(field)
        else:
            exclude.add(field)
    if simple and not (include and exclude):
        if include or (id_wanted and not exclude and "_id" in projection):
            return {k: v for k, v in doc.items() if k in include or (k == "_id" and id_wanted)}
        return {k: v for k, v in doc.items() if k not in exclude and (id_wanted or k != "_id")}
    return collection._copy_only_fields(doc, dict(projection), dict)


def _sorted(docs: Iterable[dict[str, Any]], sort: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    result = list(docs)
    if not sort:
        return result
    for field, direction in reversed(list(sort.items())):
        if field == "$natural":
            if direction < 0:
                result.reverse()
            continue
        if isinstance(direction, Mapping) or field.startswith("$"):
            raise NotImplementedError(f"sort on {field}: {direction}")
        resolve = mm_filtering.resolve_sort_key
        result.sort(key=lambda doc, f=field: resolve(f, doc), reverse=direction < 0)
    return result


def _raw(doc: Mapping[str, Any]) -> RawBSONDocument:
    return RawBSONDocument(_encode(doc))


def _copy_doc(doc: dict[str, Any]) -> dict[str, Any]:
    return _snapshot(doc)


def _int(value: Any, default: int = 0) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CommandError(f"expected a number, got {value!r}", 14)
    return int(value)


class _Cursor:
    __slots__ = ("docs", "ns", "pos", "used")

    def __init__(self, ns: str, docs: list[RawBSONDocument], pos: int) -> None:
        self.ns = ns
        self.docs = docs
        self.pos = pos
        self.used = time.monotonic()


def _take_batch(docs: list[RawBSONDocument], pos: int, count: int | None) -> tuple[list[RawBSONDocument], int]:
    """Up to `count` documents (all if None) from `pos`, staying under the BSON size limit."""
    end = len(docs) if count is None else min(len(docs), pos + count)
    size = 0
    stop = pos
    while stop < end:
        size += len(docs[stop].raw) + 8
        if size > BATCH_BYTES and stop > pos:
            break
        stop += 1
    return docs[pos:stop], stop


# --- the journal (--data-dir) ----------------------------------------------------------------------------------


class Journal:
    """Append-only BSON records of the documents each write left behind; replayed and compacted at start."""

    FILE = "journal.bson"

    def __init__(self, directory: str, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        os.makedirs(directory, exist_ok=True)
        self.path = os.path.join(directory, self.FILE)
        self._lock_fd = os.open(os.path.join(directory, "LOCK"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl

            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            raise RuntimeError(f"{directory} is in use by another mongo stand-in") from exc
        self._fd: int | None = None
        self.size = 0
        self.compacted_size = 0
        # group commit: bytes ever appended, and how many of them are known to be on disk; one writer at a time
        # runs fsync, and every write that waits meanwhile is covered by the next one
        self.appended = 0
        self._synced = 0
        self._syncing = False
        self._sync_done = threading.Condition()

    def replay(self, client: FastClient) -> int:
        if not os.path.exists(self.path):
            return 0
        with open(self.path, "rb") as f:
            data = f.read()
        pos = count = 0
        view = memoryview(data)
        while pos + 4 <= len(data):
            (size,) = _INT32.unpack_from(data, pos)
            if size < 5 or pos + size > len(data):
                break
            try:
                record = _decode(view[pos : pos + size], CODEC)
            except BSONError:
                break
            self._apply(client, record)
            pos += size
            count += 1
        if pos != len(data):
            log.warning("mongo stand-in journal %s: ignoring %d torn bytes at the end", self.path, len(data) - pos)
        return count

    @staticmethod
    def _apply(client: FastClient, record: dict[str, Any]) -> None:
        op = record["o"]
        db_store = client._store[record["d"]]
        if op == "p":
            doc = record["doc"]
            db_store[record["c"]]._documents[_store_key(doc["_id"])] = doc
        elif op == "x":
            db_store[record["c"]]._documents.pop(_store_key(record["id"]), None)
        elif op == "i":
            spec = dict(record["spec"])
            spec["key"] = [tuple(pair) for pair in spec["key"]]
            db_store[record["c"]].create_index(record["n"], spec)
        elif op == "di":
            store = db_store[record["c"]]
            if record["n"] == "*":
                store.indexes = {}
                store._ttl_indexes = {}
            else:
                store.indexes.pop(record["n"], None)
                store._ttl_indexes.pop(record["n"], None)
        elif op == "dc":
            db_store[record["c"]].drop()
        elif op == "cc":
            db_store[record["c"]].create()
        elif op == "rn":
            db_store.rename(record["c"], record["to"])

    def open(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(data)
        self.appended += len(data)

    def sync(self, upto: int) -> None:
        """Return once the first `upto` bytes ever appended are on disk (called outside the server's lock, so the
        writes of other connections meanwhile share the next fsync)."""
        with self._sync_done:
            while self._synced < upto:
                if self._syncing:
                    self._sync_done.wait()
                    continue
                self._syncing, target, fd = True, self.appended, self._fd
                self._sync_done.release()
                try:
                    if fd is not None:
                        os.fsync(fd)
                except OSError as exc:
                    if exc.errno != errno.EBADF:  # EBADF: a compaction replaced the file, and synced all of it
                        raise
                finally:
                    self._sync_done.acquire()
                    self._syncing = False
                    self._synced = max(self._synced, target)
                    self._sync_done.notify_all()

    @property
    def wants_compaction(self) -> bool:
        return self.size > max(64 * 1024 * 1024, 3 * self.compacted_size)

    def compact(self, client: FastClient) -> None:
        tmp = self.path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            buffer: list[bytes] = []
            pending = 0
            for db_name, db_store in list(client._store._databases.items()):
                for name, store in list(db_store._collections.items()):
                    if not store.is_created:
                        continue
                    buffer.append(_encode({"o": "cc", "d": db_name, "c": name}))
                    for index_name, spec in store.indexes.items():
                        buffer.append(_encode({"o": "i", "d": db_name, "c": name, "n": index_name, "spec": spec}))
                    for doc in store._documents.values():
                        record = _encode({"o": "p", "d": db_name, "c": name, "doc": doc})
                        buffer.append(record)
                        pending += len(record)
                        if pending > 4 * 1024 * 1024:
                            os.write(fd, b"".join(buffer))
                            buffer.clear()
                            pending = 0
            os.write(fd, b"".join(buffer))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if self._fd is not None:
            os.close(self._fd)
        self.open()
        self.compacted_size = self.size
        with self._sync_done:  # everything up to now is in the new file, synced above
            self._synced = max(self._synced, self.appended)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        os.close(self._lock_fd)


# --- the server -------------------------------------------------------------------------------------------------


class _Connection:
    __slots__ = ("address", "id", "sock")

    def __init__(self, sock: socket.socket, address: Any, conn_id: int) -> None:
        self.sock = sock
        self.address = address
        self.id = conn_id


class _Writing:
    """The context of one write command (a class: cheaper than a generator-based context manager)."""

    __slots__ = ("recorder", "server")

    def __init__(self, server: MongoStandIn) -> None:
        self.server = server
        self.recorder: list[tuple[Any, ...]] | None = None

    def __enter__(self) -> None:
        server = self.server
        server._lock.acquire()
        if server._journal is not None:
            self.recorder = server._client._recorder = []

    def __exit__(self, *exc: object) -> None:
        server = self.server
        journal = server._journal
        durable_upto = 0
        try:
            if self.recorder is not None:
                server._client._recorder = None
                if self.recorder:
                    server._flush(self.recorder)
                    durable_upto = journal.appended if journal is not None and journal.fsync else 0
        finally:
            server._lock.release()
        if durable_upto:
            journal.sync(durable_upto)  # before the write is answered: it survives a crash of the machine


Handler = Callable[[dict[str, Any], str, _Connection], dict[str, Any]]


class MongoStandIn:
    """A MongoDB wire-protocol server backed by mongomock. `start()` returns once it listens."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 27017,
        data_dir: str | None = None,
        marked: bool = True,
        fsync: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.fsync = fsync
        # False leaves STANDIN_MARKER out of the replies: only for tests of the deployment mode, which refuses the
        # stand-in, on machines where no MongoDB can run
        self.marked = marked
        self._lock = threading.Lock()  # every mongomock access
        self._cursor_lock = threading.Lock()
        self._client = FastClient()
        self._journal: Journal | None = None
        self._cursors: dict[int, _Cursor] = {}
        self._collections: dict[tuple[str, Any], FastCollection] = {}
        self._last_sweep = time.monotonic()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._connections: dict[int, _Connection] = {}
        self._conn_lock = threading.Lock()
        self._conn_ids = itertools.count(1)
        self._request_ids = itertools.count(1)
        self._stopping = threading.Event()
        self._started_at = time.monotonic()
        self._total_connections = 0
        # commands run, by "database.collection.command" (serverStatus `jaklaporCommands`): what a benchmark divides
        # by its reports to say how many store operations one costs
        self._command_counts: collections.Counter[str] = collections.Counter()
        self._handlers: dict[str, Handler] = {
            "hello": self._cmd_hello,
            "isMaster": self._cmd_hello,
            "ismaster": self._cmd_hello,
            "ping": self._cmd_ok,
            "buildInfo": self._cmd_build_info,
            "buildinfo": self._cmd_build_info,
            "getParameter": self._cmd_get_parameter,
            "serverStatus": self._cmd_server_status,
            "hostInfo": self._cmd_host_info,
            "whatsmyuri": self._cmd_whatsmyuri,
            "connectionStatus": self._cmd_connection_status,
            "getCmdLineOpts": self._cmd_cmdline,
            "startSession": self._cmd_start_session,
            "endSessions": self._cmd_ok,
            "refreshSessions": self._cmd_ok,
            "killSessions": self._cmd_ok,
            "killAllSessions": self._cmd_ok,
            "commitTransaction": self._cmd_no_transactions,
            "abortTransaction": self._cmd_no_transactions,
            "insert": self._cmd_insert,
            "find": self._cmd_find,
            "getMore": self._cmd_get_more,
            "killCursors": self._cmd_kill_cursors,
            "update": self._cmd_update,
            "delete": self._cmd_delete,
            "findAndModify": self._cmd_find_and_modify,
            "findandmodify": self._cmd_find_and_modify,
            "aggregate": self._cmd_aggregate,
            "count": self._cmd_count,
            "distinct": self._cmd_distinct,
            "createIndexes": self._cmd_create_indexes,
            "listIndexes": self._cmd_list_indexes,
            "dropIndexes": self._cmd_drop_indexes,
            "deleteIndexes": self._cmd_drop_indexes,
            "listCollections": self._cmd_list_collections,
            "listDatabases": self._cmd_list_databases,
            "create": self._cmd_create,
            "drop": self._cmd_drop,
            "dropDatabase": self._cmd_drop_database,
            "renameCollection": self._cmd_rename,
            "collMod": self._cmd_ok,
            "dbStats": self._cmd_db_stats,
        }

    # lifecycle

    @property
    def address(self) -> tuple[str, int]:
        return self.host, self.port

    @property
    def uri(self) -> str:
        return f"mongodb://{self.host}:{self.port}/"

    def start(self) -> MongoStandIn:
        if self.data_dir:
            self._journal = Journal(self.data_dir, fsync=self.fsync)
            self._client = FastClient()  # the journal holds the data
            self._collections = {}
            try:
                started = time.monotonic()
                records = self._journal.replay(self._client)
                self._journal.compact(self._client)
                log.info(
                    "mongo stand-in: replayed %d journal records from %s in %.2fs",
                    records,
                    self.data_dir,
                    time.monotonic() - started,
                )
            except BaseException:
                self._journal.close()
                self._journal = None
                raise
        listener = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((self.host, self.port))
            listener.listen(512)
        except OSError:
            listener.close()
            if self._journal is not None:
                self._journal.close()
                self._journal = None
            raise
        listener.settimeout(0.5)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._stopping.clear()
        self._accept_thread = threading.Thread(target=self._accept_loop, name="mongo-standin-accept", daemon=True)
        self._accept_thread.start()
        log.info("mongo stand-in listening on %s:%d", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stop listening, drop every client connection, write the journal's compacted form."""
        self._stopping.set()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() at once on Linux
        if self._accept_thread is not None:
            self._accept_thread.join()
            self._accept_thread = None
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._conn_lock:
            connections = list(self._connections.values())
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with self._conn_lock:
                if not self._connections:
                    break
            time.sleep(0.01)
        with self._lock:
            if self._journal is not None:
                try:
                    self._journal.compact(self._client)
                finally:
                    self._journal.close()
                    self._journal = None
        with self._cursor_lock:
            self._cursors.clear()

    def __enter__(self) -> MongoStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def serve_forever(self) -> None:
        if self._listener is None:
            self.start()
        while not self._stopping.wait(1.0):
            pass

    # network

    def _accept_loop(self) -> None:
        assert self._listener is not None
        listener = self._listener
        while not self._stopping.is_set():
            try:
                sock, address = listener.accept()
            except TimeoutError:
                continue
            except OSError as exc:
                if self._stopping.is_set():
                    break
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    log.error("mongo stand-in cannot accept connections: %s", exc)
                    time.sleep(0.1)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(sock, address, next(self._conn_ids))
            with self._conn_lock:
                self._connections[conn.id] = conn
                self._total_connections += 1
            threading.Thread(
                target=self._serve_connection, args=(conn,), name=f"mongo-standin-conn-{conn.id}", daemon=True
            ).start()

    def _serve_connection(self, conn: _Connection) -> None:
        sock = conn.sock
        recv = sock.recv
        pending = b""
        try:
            while True:
                chunk = recv(RECV_SIZE)
                if not chunk:
                    return
                pending = pending + chunk if pending else chunk
                # every complete message in what has arrived (a client may pipeline moreToCome messages)
                while len(pending) >= 16:
                    length, request_id, _, opcode = _HEADER.unpack_from(pending, 0)
                    if length < 21 or length > MAX_MESSAGE_SIZE + MAX_BSON_SIZE:
                        log.warning("mongo stand-in: bad message length %d from %s", length, conn.address)
                        return
                    if len(pending) < length:
                        if length <= RECV_SIZE:
                            break
                        pending = self._receive_rest(sock, pending, length)
                    body = pending[16:length]
                    pending = pending[length:]
                    if opcode == OP_MSG:
                        reply = self._handle_op_msg(body, request_id, conn)
                    elif opcode == OP_QUERY:
                        reply = self._handle_op_query(body, request_id, conn)
                    else:
                        log.warning("mongo stand-in: unsupported opcode %d from %s", opcode, conn.address)
                        return
                    if reply is not None:
                        sock.sendall(reply)
        except (ConnectionError, OSError) as exc:
            if not self._stopping.is_set():
                log.debug("mongo stand-in: connection %s closed: %s", conn.address, exc)
        except Exception:
            log.exception("mongo stand-in: connection %s failed", conn.address)
        finally:
            with contextlib.suppress(OSError):
                sock.close()
            with self._conn_lock:
                self._connections.pop(conn.id, None)

    @staticmethod
    def _receive_rest(sock: socket.socket, pending: bytes, length: int) -> bytes:
        """Read a large message in one buffer instead of concatenating chunks."""
        buffer = bytearray(length)
        buffer[: len(pending)] = pending
        view = memoryview(buffer)
        got = len(pending)
        while got < length:
            n = sock.recv_into(view[got:])
            if not n:
                raise ConnectionError("connection closed in the middle of a message")
            got += n
        return bytes(buffer)

    def _handle_op_msg(self, data: bytes, request_id: int, conn: _Connection) -> bytes | None:
        (flags,) = _UINT32.unpack_from(data, 0)
        end = len(data) - 4 if flags & FLAG_CHECKSUM else len(data)
        pos = 4
        command: dict[str, Any] | None = None
        sequences: dict[str, list[Any]] | None = None
        try:
            while pos < end:
                kind = data[pos]
                pos += 1
                (size,) = _INT32.unpack_from(data, pos)
                if kind == 0:
                    command = _decode(data[pos : pos + size], CODEC)
                elif kind == 1:
                    nul = data.index(b"\x00", pos + 4)
                    identifier = data[pos + 4 : nul].decode()
                    if sequences is None:
                        sequences = {}
                    sequences.setdefault(identifier, []).extend(bson.decode_all(data[nul + 1 : pos + size], CODEC))
                else:
                    raise CommandError(f"unknown OP_MSG section kind {kind}", 9)
                pos += size
            if command is None:
                raise CommandError("OP_MSG without a body section", 9)
            if sequences:
                command.update(sequences)
            reply = self._run(command, conn)
        except Exception as exc:
            log.debug("mongo stand-in: bad OP_MSG: %s", exc)
            reply = _error_doc(_exception_message(exc), _exception_code(exc))
        if flags & FLAG_MORE_TO_COME:
            return None
        payload = _encode(reply)
        return _OP_MSG_PREFIX.pack(21 + len(payload), next(self._request_ids), request_id, OP_MSG, 0, 0) + payload

    def _handle_op_query(self, data: bytes, request_id: int, conn: _Connection) -> bytes:
        try:
            nul = data.index(b"\x00", 4)
            namespace = data[4:nul].decode()
            pos = nul + 1 + 8  # numberToSkip, numberToReturn
            (size,) = _INT32.unpack_from(data, pos)
            query = _decode(data[pos : pos + size], CODEC)
            if "$query" in query:
                query = query["$query"]
            db_name, _, collection = namespace.partition(".")
            if collection != "$cmd":
                raise CommandError("OP_QUERY is only supported for commands", 238)
            query.setdefault("$db", db_name)
            reply = self._run(query, conn)
        except Exception as exc:
            reply = _error_doc(_exception_message(exc), _exception_code(exc))
        payload = _encode(reply)
        return (
            _OP_REPLY_PREFIX.pack(36 + len(payload), next(self._request_ids), request_id, OP_REPLY, 0, 0, 0, 1)
            + payload
        )

    # command dispatch

    def _run(self, command: dict[str, Any], conn: _Connection) -> dict[str, Any]:
        if not command:
            return _error_doc("empty command", 9)
        name = next(iter(command))
        db_name = command.get("$db", "admin")
        handler = self._handlers.get(name)
        if handler is None:
            return _error_doc(f"no such command: '{name}'", 59)
        if "startTransaction" in command or "autocommit" in command:
            return self._cmd_no_transactions(command, db_name, conn)
        target = command[name]
        self._command_counts[f"{db_name}.{target}.{name}" if isinstance(target, str) else f"{db_name}.{name}"] += 1
        try:
            return handler(command, db_name, conn)
        except Exception as exc:
            code = _exception_code(exc)
            if code == 1:
                log.exception("mongo stand-in: %s failed", name)
            return _error_doc(_exception_message(exc), code, **_exception_extra(exc))

    def _collection(self, db_name: str, name: Any) -> FastCollection:
        collection = self._collections.get((db_name, name))
        if collection is not None:
            return collection
        if not isinstance(name, str) or not name:
            raise CommandError(f"collection name must be a non-empty string, not {name!r}", 73)
        try:
            collection = self._client.get_database(db_name).get_collection(name)
        except mongomock.InvalidName as exc:
            raise CommandError(str(exc), 73) from exc
        self._collections[(db_name, name)] = collection
        return collection

    def _writing(self) -> _Writing:
        """Hold the store lock for a write; with a journal, record what the write touched and append it."""
        return _Writing(self)

    def _flush(self, recorder: list[tuple[Any, ...]]) -> None:
        assert self._journal is not None
        out: list[bytes] = []
        seen: set[Any] = set()
        server_store = self._client._store
        for record in recorder:
            if record[0] == "t":
                _, db_name, name, object_id = record
                key = _store_key(object_id)
                try:
                    marker = (db_name, name, key)
                    if marker in seen:
                        continue
                    seen.add(marker)
                except TypeError:
                    pass
                doc = server_store[db_name][name]._documents.get(key)
                if doc is not None:
                    out.append(_encode({"o": "p", "d": db_name, "c": name, "doc": doc}))
                else:
                    out.append(_encode({"o": "x", "d": db_name, "c": name, "id": object_id}))
            else:
                seen.clear()
                out.append(_encode(record[1]))
        try:
            self._journal.write(b"".join(out))
            if self._journal.wants_compaction:
                self._journal.compact(self._client)
        except OSError:
            log.exception("mongo stand-in: cannot write the journal; data written from now on is not persisted")

    def _record(self, record: dict[str, Any]) -> None:
        recorder = self._client._recorder
        if recorder is not None:
            recorder.append(("s", record))

    # cursors

    def _cursor_reply(
        self,
        ns: str,
        docs: list[RawBSONDocument],
        batch_size: int | None,
        single_batch: bool = False,
    ) -> dict[str, Any]:
        if batch_size is None:
            batch_size = DEFAULT_FIRST_BATCH
        batch, pos = _take_batch(docs, 0, batch_size)
        cursor_id = 0
        if pos < len(docs) and not single_batch:
            cursor_id = self._open_cursor(ns, docs, pos)
        return {"cursor": {"firstBatch": batch, "id": Int64(cursor_id), "ns": ns}, "ok": 1.0}

    def _open_cursor(self, ns: str, docs: list[RawBSONDocument], pos: int) -> int:
        now = time.monotonic()
        with self._cursor_lock:
            if now - self._last_sweep > 60:
                self._last_sweep = now
                for stale in [k for k, c in self._cursors.items() if now - c.used > CURSOR_IDLE_SECONDS]:
                    del self._cursors[stale]
            cursor_id = random.getrandbits(62) + 1
            self._cursors[cursor_id] = _Cursor(ns, docs, pos)
        return cursor_id

    # commands: handshake and server information

    def _cmd_ok(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"ok": 1.0}

    def _cmd_hello(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        if command.get("loadBalanced"):
            raise CommandError("the mongo stand-in is not behind a load balancer", 72)
        reply: dict[str, Any] = {}
        if next(iter(command)) == "hello":
            reply["isWritablePrimary"] = True
        else:
            reply["ismaster"] = True
            if command.get("helloOk"):
                reply["helloOk"] = True
        reply.update(
            {
                "maxBsonObjectSize": MAX_BSON_SIZE,
                "maxMessageSizeBytes": MAX_MESSAGE_SIZE,
                "maxWriteBatchSize": MAX_WRITE_BATCH,
                "localTime": datetime.datetime.now(datetime.UTC),
                "logicalSessionTimeoutMinutes": SESSION_TIMEOUT_MINUTES,
                "connectionId": conn.id,
                "minWireVersion": 0,
                "maxWireVersion": MAX_WIRE_VERSION,
                "readOnly": False,
                "ok": 1.0,
            }
        )
        return self._marked(reply)

    def _marked(self, reply: dict[str, Any]) -> dict[str, Any]:
        if self.marked:
            reply[STANDIN_MARKER] = True
        return reply

    def _cmd_build_info(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return self._marked(
            {
                "version": SERVER_VERSION,
                "versionArray": [int(p) for p in SERVER_VERSION.split(".")] + [0],
                "gitVersion": f"mongomock-{mongomock.__version__}-standin",
                "modules": [],
                "sysInfo": "jaklapor mongo stand-in (mongomock over the wire)",
                "bits": 64,
                "debug": False,
                "maxBsonObjectSize": MAX_BSON_SIZE,
                "storageEngines": ["mongomock"],
                "ok": 1.0,
            }
        )

    def _cmd_get_parameter(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"featureCompatibilityVersion": {"version": SERVER_VERSION.rsplit(".", 1)[0]}, "ok": 1.0}

    def _cmd_server_status(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        with self._conn_lock:
            current = len(self._connections)
        return {
            "host": socket.gethostname(),
            "version": SERVER_VERSION,
            "process": "devtools.mongo_standin",
            "pid": Int64(os.getpid()),
            "uptime": time.monotonic() - self._started_at,
            "localTime": datetime.datetime.now(datetime.UTC),
            "connections": {"current": current, "available": 100000, "totalCreated": self._total_connections},
            "storageEngine": {"name": "mongomock", "persistent": self._journal is not None},
            "opcounters": _opcounters(self._command_counts),
            "jaklaporCommands": dict(self._command_counts),
            "ok": 1.0,
        }

    def _cmd_host_info(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"system": {"hostname": socket.gethostname(), "numCores": os.cpu_count() or 1}, "os": {}, "ok": 1.0}

    def _cmd_whatsmyuri(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        host, port = conn.address[0], conn.address[1]
        return {"you": f"{host}:{port}", "ok": 1.0}

    def _cmd_connection_status(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"authInfo": {"authenticatedUsers": [], "authenticatedUserRoles": []}, "ok": 1.0}

    def _cmd_cmdline(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"argv": sys.argv, "parsed": {}, "ok": 1.0}

    def _cmd_start_session(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return {"id": {"id": Binary(uuid.uuid4().bytes, 4)}, "timeoutMinutes": SESSION_TIMEOUT_MINUTES, "ok": 1.0}

    def _cmd_no_transactions(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        return _error_doc("Transaction numbers are only allowed on a replica set member or mongos", 20)

    # commands: writes

    def _cmd_insert(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        documents = command.get("documents") or []
        ordered = command.get("ordered", True)
        write_errors: list[dict[str, Any]] = []
        inserted = 0
        with self._writing():
            collection = self._collection(db_name, command["insert"])
            for index, doc in enumerate(documents):
                try:
                    collection._insert(doc)
                    inserted += 1
                except Exception as exc:
                    write_errors.append(self._write_error(index, exc))
                    if ordered:
                        break
        reply: dict[str, Any] = {"n": inserted, "ok": 1.0}
        if write_errors:
            reply["writeErrors"] = write_errors
        return reply

    def _write_error(self, index: int, exc: Exception) -> dict[str, Any]:
        code = _exception_code(exc)
        if code == 1:
            log.exception("mongo stand-in: write failed")
        return {"index": index, "code": code, "errmsg": _exception_message(exc), **_exception_extra(exc)}

    def _cmd_update(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        updates = command.get("updates") or []
        ordered = command.get("ordered", True)
        write_errors: list[dict[str, Any]] = []
        upserted: list[dict[str, Any]] = []
        matched = modified = 0
        with self._writing():
            collection = self._collection(db_name, command["update"])
            for index, statement in enumerate(updates):
                try:
                    result = collection._update(
                        statement["q"],
                        statement["u"],
                        upsert=bool(statement.get("upsert", False)),
                        multi=bool(statement.get("multi", False)),
                        collation=statement.get("collation"),
                        array_filters=statement.get("arrayFilters"),
                        decoded=True,
                    )
                except Exception as exc:
                    write_errors.append(self._write_error(index, exc))
                    if ordered:
                        break
                    continue
                if result["upserted"] is not None:
                    upserted.append({"index": index, "_id": result["upserted"]})
                    matched += 1
                else:
                    matched += result["n"]
                    modified += result["nModified"]
        reply: dict[str, Any] = {"n": matched, "nModified": modified, "ok": 1.0}
        if upserted:
            reply["upserted"] = upserted
        if write_errors:
            reply["writeErrors"] = write_errors
        return reply

    def _cmd_delete(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        deletes = command.get("deletes") or []
        ordered = command.get("ordered", True)
        write_errors: list[dict[str, Any]] = []
        removed = 0
        with self._writing():
            collection = self._collection(db_name, command["delete"])
            recorder = self._client._recorder
            for index, statement in enumerate(deletes):
                try:
                    if statement.get("collation"):
                        raise NotImplementedError("collation")
                    docs = collection._find_docs(statement.get("q") or {})
                    doomed = []
                    for doc in docs:
                        doomed.append(doc)
                        if statement.get("limit"):
                            break
                    store = collection._store
                    for doc in doomed:
                        object_id = doc["_id"]
                        key = _store_key(object_id)
                        del store[key]
                        collection._unindex_document(key, doc)
                        if recorder is not None:
                            recorder.append(("t", db_name, collection.name, object_id))
                    removed += len(doomed)
                except Exception as exc:
                    write_errors.append(self._write_error(index, exc))
                    if ordered:
                        break
        reply: dict[str, Any] = {"n": removed, "ok": 1.0}
        if write_errors:
            reply["writeErrors"] = write_errors
        return reply

    def _cmd_find_and_modify(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        query = command.get("query") or {}
        sort = command.get("sort")
        remove = bool(command.get("remove", False))
        update = command.get("update")
        return_new = bool(command.get("new", False))
        projection = command.get("fields")
        upsert = bool(command.get("upsert", False))
        if remove and (update is not None or return_new):
            raise CommandError("remove cannot be combined with update or new", 9)
        if not remove and update is None:
            raise CommandError("either an update or remove=true must be specified", 9)
        if command.get("arrayFilters"):
            raise NotImplementedError("arrayFilters")
        if command.get("collation"):
            raise NotImplementedError("collation")
        with self._writing():
            collection = self._collection(db_name, command[next(iter(command))])
            candidates = collection._find_docs(query)
            if sort:
                candidates = _sorted(candidates, sort)
            doc = next(iter(candidates), None)
            last_error: dict[str, Any] = {"n": 0}
            value: Any = None
            if doc is not None:
                object_id = doc["_id"]
                if remove:
                    value = _raw(_project(collection, doc, projection))
                    del collection._store[_store_key(object_id)]
                    recorder = self._client._recorder
                    if recorder is not None:
                        recorder.append(("t", db_name, collection.name, object_id))
                    last_error = {"n": 1}
                else:
                    if not return_new:
                        value = _raw(_project(collection, doc, projection))
                    collection._update(dict(query, _id=object_id), update, decoded=True)
                    last_error = {"n": 1, "updatedExisting": True}
                    if return_new:
                        current = collection._store._documents.get(_store_key(object_id))
                        value = None if current is None else _raw(_project(collection, current, projection))
            elif upsert and not remove:
                result = collection._update(query, update, upsert=True, decoded=True)
                upserted_id = result["upserted"]
                last_error = {"n": 1, "updatedExisting": False, "upserted": upserted_id}
                if return_new and upserted_id is not None:
                    current = collection._store._documents.get(_store_key(upserted_id))
                    value = None if current is None else _raw(_project(collection, current, projection))
        return {"lastErrorObject": last_error, "value": value, "ok": 1.0}

    # commands: reads

    def _cmd_find(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        name = command["find"]
        filter = command.get("filter") or {}
        sort = command.get("sort")
        projection = command.get("projection")
        skip = _int(command.get("skip"))
        limit = _int(command.get("limit"))
        batch_size = command.get("batchSize")
        single_batch = bool(command.get("singleBatch")) or limit < 0
        limit = abs(limit)
        if command.get("collation"):
            raise NotImplementedError("collation")
        if command.get("tailable"):
            raise NotImplementedError("tailable cursors")
        with self._lock:
            collection = self._collection(db_name, name)
            docs: Iterable[dict[str, Any]] = collection._find_docs(filter)
            if sort:
                docs = _sorted(docs, sort)
            if skip or limit:
                docs = itertools.islice(docs, skip, skip + limit if limit else None)
            if projection:
                results = [_raw(_project(collection, doc, projection)) for doc in docs]
            else:
                results = [RawBSONDocument(_encode(doc)) for doc in docs]
        return self._cursor_reply(f"{db_name}.{name}", results, _int(batch_size, DEFAULT_FIRST_BATCH), single_batch)

    def _cmd_get_more(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        cursor_id = int(command["getMore"])
        batch_size = command.get("batchSize")
        with self._cursor_lock:
            cursor = self._cursors.get(cursor_id)
            if cursor is None:
                raise CommandError(f"cursor id {cursor_id} not found", 43)
            batch, cursor.pos = _take_batch(cursor.docs, cursor.pos, _int(batch_size) if batch_size else None)
            cursor.used = time.monotonic()
            ns = cursor.ns
            if cursor.pos >= len(cursor.docs):
                del self._cursors[cursor_id]
                cursor_id = 0
        return {"cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": ns}, "ok": 1.0}

    def _cmd_kill_cursors(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        killed, not_found = [], []
        with self._cursor_lock:
            for cursor_id in command.get("cursors") or []:
                if self._cursors.pop(int(cursor_id), None) is not None:
                    killed.append(Int64(cursor_id))
                else:
                    not_found.append(Int64(cursor_id))
        return {
            "cursorsKilled": killed,
            "cursorsNotFound": not_found,
            "cursorsAlive": [],
            "cursorsUnknown": [],
            "ok": 1.0,
        }

    def _cmd_aggregate(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        name = command["aggregate"]
        pipeline = list(command.get("pipeline") or [])
        if not isinstance(name, str):
            raise CommandError("database-level aggregation is not supported", 238)
        if command.get("explain"):
            raise NotImplementedError("explain")
        if command.get("collation"):
            raise NotImplementedError("collation")
        cursor_options = command.get("cursor") or {}
        writes = any(("$out" in stage or "$merge" in stage) for stage in pipeline)
        with self._writing() if writes else self._lock:
            collection = self._collection(db_name, name)
            query: dict[str, Any] = {}
            if pipeline and len(pipeline[0]) == 1 and "$match" in pipeline[0]:
                query = pipeline.pop(0)["$match"]
            results = self._count_shortcut(collection, query, pipeline)
            if results is None:
                docs = [_copy_doc(doc) for doc in collection._find_docs(query)]
                results = mm_aggregate.process_pipeline(docs, collection.database, pipeline, None)
            raws = [_raw(doc) for doc in results]
        return self._cursor_reply(f"{db_name}.{name}", raws, _int(cursor_options.get("batchSize"), DEFAULT_FIRST_BATCH))

    @staticmethod
    def _count_shortcut(
        collection: FastCollection, query: dict[str, Any], pipeline: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """`[$match, $group {_id: <constant>, n: {$sum: 1}}]` (pymongo's count_documents) without copies."""
        if len(pipeline) != 1 or list(pipeline[0]) != ["$group"]:
            return None
        group = pipeline[0]["$group"]
        group_id = group.get("_id", _MISSING)
        if (
            group_id is _MISSING
            or isinstance(group_id, (dict, list))
            or (isinstance(group_id, str) and "$" in group_id)
        ):
            return None
        counters = [field for field in group if field != "_id"]
        if not all(group[field] == {"$sum": 1} for field in counters):
            return None
        count = 0
        for _ in collection._find_docs(query):
            count += 1
        if count == 0:
            return []
        return [{"_id": group_id, **dict.fromkeys(counters, count)}]

    def _cmd_count(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        skip = _int(command.get("skip"))
        limit = abs(_int(command.get("limit")))
        with self._lock:
            collection = self._collection(db_name, command["count"])
            n = 0
            for _ in collection._find_docs(command.get("query") or {}):
                n += 1
        n = max(n - skip, 0)
        if limit:
            n = min(n, limit)
        return {"n": n, "ok": 1.0}

    def _cmd_distinct(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        key = command.get("key")
        if not isinstance(key, str):
            raise CommandError("distinct needs a string key", 14)
        with self._lock:
            collection = self._collection(db_name, command["distinct"])
            values = _copy_doc({"values": collection.distinct(key, command.get("query") or None)})["values"]
        return {"values": values, "ok": 1.0}

    # commands: indexes and namespaces

    def _cmd_create_indexes(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        indexes = command.get("indexes") or []
        with self._writing():
            collection = self._collection(db_name, command["createIndexes"])
            store = collection._store
            created_collection = not store.is_created
            before = len(store.indexes) + (0 if created_collection else 1)
            for spec in indexes:
                key = spec.get("key")
                if not isinstance(key, Mapping) or not key:
                    raise CommandError("index specification needs a non-empty 'key'", 9)
                if spec.get("collation"):
                    raise NotImplementedError("index collation")
                options = {
                    option: spec[option]
                    for option in ("name", "unique", "sparse", "expireAfterSeconds", "partialFilterExpression")
                    if spec.get(option) is not None
                }
                if list(key) == ["_id"]:
                    store.create()
                    continue
                try:
                    name = collection.create_index(list(key.items()), **options)
                except OperationFailure as exc:
                    if "already exists" in str(exc):
                        raise CommandError(str(exc), 85) from exc
                    raise
                self._record({"o": "i", "d": db_name, "c": collection.name, "n": name, "spec": store.indexes[name]})
                _forget_indexes(store)
            store.create()
            self._record({"o": "cc", "d": db_name, "c": collection.name})
            after = len(store.indexes) + 1
        return {
            "createdCollectionAutomatically": created_collection,
            "numIndexesBefore": before,
            "numIndexesAfter": after,
            "ok": 1.0,
        }

    def _cmd_list_indexes(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        name = command["listIndexes"]
        with self._lock:
            collection = self._collection(db_name, name)
            if not collection._store.is_created:
                raise CommandError(f"ns does not exist: {db_name}.{name}", 26)
            indexes = [_raw(doc) for doc in collection.list_indexes()]
        batch_size = (command.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db_name}.{name}", indexes, _int(batch_size, DEFAULT_FIRST_BATCH))

    def _cmd_drop_indexes(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        target = command.get("index")
        name = command[next(iter(command))]
        with self._writing():
            collection = self._collection(db_name, name)
            store = collection._store
            if not store.is_created:
                raise CommandError(f"ns not found {db_name}.{name}", 26)
            count_before = len(store.indexes) + 1
            if target == "*":
                names = list(store.indexes)
            elif isinstance(target, str):
                names = [target]
            elif isinstance(target, list):
                names = list(target)
            elif isinstance(target, Mapping):
                key = list(target.items())
                names = [n for n, spec in store.indexes.items() if list(spec["key"]) == key]
                if not names and key != [("_id", 1)]:
                    raise CommandError(f"can't find index with key: {dict(target)}", 27)
                names = names or ["_id_"]
            else:
                raise CommandError("dropIndexes needs 'index'", 9)
            for index_name in names:
                if index_name == "_id_":
                    raise CommandError("cannot drop _id index", 72)
                if index_name not in store.indexes:
                    raise CommandError(f"index not found with name [{index_name}]", 27)
            for index_name in names:
                collection.drop_index(index_name)
                self._record({"o": "di", "d": db_name, "c": collection.name, "n": index_name})
            _forget_indexes(store)
        return {"nIndexesWas": count_before, "ok": 1.0}

    def _cmd_list_collections(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        filter = command.get("filter") or {}
        name_only = bool(command.get("nameOnly"))
        with self._lock:
            names = self._client._store[db_name].list_created_collection_names()
        infos = []
        for name in names:
            info: dict[str, Any] = {"name": name, "type": "collection"}
            if not name_only:
                info.update(
                    {
                        "options": {},
                        "info": {"readOnly": False},
                        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
                    }
                )
            if not filter or mm_filtering.filter_applies(filter, info):
                infos.append(_raw(info))
        batch_size = (command.get("cursor") or {}).get("batchSize")
        return self._cursor_reply(f"{db_name}.$cmd.listCollections", infos, _int(batch_size, DEFAULT_FIRST_BATCH))

    def _cmd_list_databases(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        filter = command.get("filter") or {}
        with self._lock:
            names = self._client._store.list_created_database_names()
            sizes = {
                name: sum(len(store._documents) for store in self._client._store[name]._collections.values())
                for name in names
            }
        databases = []
        for name in sorted(names):
            info: dict[str, Any] = {"name": name}
            if not command.get("nameOnly"):
                info.update({"sizeOnDisk": Int64(sizes[name] * 1024), "empty": sizes[name] == 0})
            if not filter or mm_filtering.filter_applies(filter, info):
                databases.append(info)
        reply: dict[str, Any] = {"databases": databases, "ok": 1.0}
        if not command.get("nameOnly"):
            reply["totalSize"] = Int64(sum(sizes.values()) * 1024)
        return reply

    def _cmd_create(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        name = command["create"]
        with self._writing():
            collection = self._collection(db_name, name)
            if collection._store.is_created:
                raise CommandError(f"Collection {db_name}.{name} already exists.", 48)
            try:
                collection.database.create_collection(name)
            except CollectionInvalid as exc:
                raise CommandError(str(exc), 48) from exc
            self._record({"o": "cc", "d": db_name, "c": name})
        return {"ok": 1.0}

    def _cmd_drop(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        name = command["drop"]
        with self._writing():
            collection = self._collection(db_name, name)
            store = collection._store
            if not store.is_created:
                raise CommandError("ns not found", 26)
            indexes = len(store.indexes) + 1
            collection.drop()
            with self._cursor_lock:
                ns = f"{db_name}.{name}"
                for cursor_id in [k for k, c in self._cursors.items() if c.ns == ns]:
                    del self._cursors[cursor_id]
        return {"nIndexesWas": indexes, "ns": f"{db_name}.{name}", "ok": 1.0}

    def _cmd_drop_database(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        with self._writing():
            database = self._client.get_database(db_name)
            for name in list(database._store._collections):
                database.drop_collection(name)
        return {"dropped": db_name, "ok": 1.0}

    def _cmd_rename(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        source, target = command["renameCollection"], command.get("to")
        if not isinstance(source, str) or not isinstance(target, str):
            raise CommandError("renameCollection needs 'db.collection' names", 73)
        source_db, _, source_name = source.partition(".")
        target_db, _, target_name = target.partition(".")
        if source_db != target_db:
            raise NotImplementedError("renaming a collection across databases")
        with self._writing():
            database = self._client.get_database(source_db)
            self._collection(source_db, target_name)  # validates the name
            try:
                database.rename_collection(source_name, target_name, dropTarget=bool(command.get("dropTarget")))
            except OperationFailure as exc:
                raise CommandError(str(exc), 26 if exc.code == 10026 else 48) from exc
            # collection objects find their store by name, so the cached ones stay valid
            self._record({"o": "rn", "d": source_db, "c": source_name, "to": target_name})
        return {"ok": 1.0}

    def _cmd_db_stats(self, command: dict[str, Any], db_name: str, conn: _Connection) -> dict[str, Any]:
        with self._lock:
            db_store = self._client._store[db_name]
            stores = [db_store[name] for name in db_store.list_created_collection_names()]
            objects = sum(len(store._documents) for store in stores)
            indexes = sum(len(store.indexes) + 1 for store in stores)
        return {"db": db_name, "collections": len(stores), "objects": objects, "indexes": indexes, "ok": 1.0}


#: how long a stop (SIGTERM / SIGINT) may take before the process exits anyway
STOP_GRACE_SECONDS = 15


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.mongo_standin",
        description="A MongoDB wire-protocol stand-in backed by mongomock (development and tests only).",
    )
    parser.add_argument("--host", default=os.environ.get("MONGO_STANDIN_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MONGO_STANDIN_PORT", "27017")))
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("MONGO_STANDIN_DATA_DIR") or None,
        help="keep a journal here so the data survives a restart of the stand-in (default: memory only)",
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "never"),
        default="never",
        help="always: a write is answered once its journal record is on disk (concurrent writes share one fsync), "
        "so it survives a crash of the machine; never: the OS writes the journal when it likes, which survives a "
        "crash of this process only (default)",
    )
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--unmarked",
        action="store_true",
        help=f"leave the {STANDIN_MARKER} marker out of hello/buildInfo, so services take it for MongoDB: only for "
        "tests of the deployment mode (which refuses the stand-in) on machines where no MongoDB can run",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    server = MongoStandIn(
        args.host, args.port, data_dir=args.data_dir, marked=not args.unmarked, fsync=args.fsync == "always"
    )
    # a plain list, not a threading.Event: the handler runs in the main thread, and Event.set() there deadlocks when
    # the signal lands while that thread holds the Event's lock inside wait() (seen as a stand-in that never stopped)
    stop_signals: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        stop_signals.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # `kill -USR1 <pid>` writes every thread's stack into the log: how to see where a stop hangs
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        log.error("mongo stand-in cannot start on %s:%d: %s", args.host, args.port, exc)
        return 1
    print(f"mongo stand-in listening on {server.host}:{server.port}", flush=True)
    try:
        while not stop_signals:
            time.sleep(0.1)
    finally:
        # a stop that hangs must not keep the port and the data directory from the next run: after
        # STOP_GRACE_SECONDS every thread's stack goes to the log and the process exits. Nothing is lost by that:
        # each answered write is in the journal already; the stop only compacts it (into a new file, renamed).
        faulthandler.dump_traceback_later(STOP_GRACE_SECONDS, exit=True)
        server.stop()
        faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
