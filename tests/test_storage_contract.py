"""The photo store's contract, run against a real S3 server (SeaweedFS, the local and test one) through the product's
own code (jaklapor/storage.py) and credentials limited to the photo bucket, as the services use it. Production runs
MinIO behind the same `minio` SDK; these are the behaviours the product relies on from either."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from minio.error import S3Error

from devtools.seaweedfs import LocalS3Server
from jaklapor.storage import PhotoNotFound, PhotoStore, StorageUnavailable, make_client
from tests.system import wait_for

BUCKET = "contract-photos"
PHOTO_SIZE = 200_000


def photo(seed: int) -> bytes:
    """Incompressible bytes of a photo's size (SeaweedFS compresses what it can; photos it cannot)."""
    return seed.to_bytes(4, "big") + os.urandom(PHOTO_SIZE - 4)


def store_for(server: LocalS3Server) -> PhotoStore:
    """The store as a service builds it from its settings: endpoint and the limited identity."""
    config = {
        "S3_ENDPOINT": server.endpoint,
        "S3_ACCESS_KEY": server.credentials.access_key,
        "S3_SECRET_KEY": server.credentials.secret_key,
    }
    return PhotoStore(make_client(config), server.bucket)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalS3Server]:
    running = LocalS3Server(tmp_path_factory.mktemp("contract-s3"), BUCKET)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def store(server: LocalS3Server) -> PhotoStore:
    if not server.running:  # a test before this one stopped or killed it
        server.start()
    return store_for(server)


# ---- what the services do ------------------------------------------------------------------------------------------


def test_a_stored_photo_reads_back_with_its_bytes_and_type(server: LocalS3Server, store: PhotoStore) -> None:
    content = photo(1)
    store.put("photos/one.jpg", content, "image/jpeg")
    stored = store.get("photos/one.jpg")
    assert stored.content == content and stored.content_type == "image/jpeg"
    stat = server.client().stat_object(server.bucket, "photos/one.jpg")
    assert stat.size == PHOTO_SIZE and stat.content_type == "image/jpeg"


def test_a_missing_photo_is_not_found_and_a_deleted_one_is_gone(server: LocalS3Server, store: PhotoStore) -> None:
    with pytest.raises(PhotoNotFound):
        store.get("photos/never-stored.jpg")
    with pytest.raises(S3Error) as missing:
        server.client().stat_object(server.bucket, "photos/never-stored.jpg")
    assert missing.value.code == "NoSuchKey"
    store.put("photos/deleted.jpg", photo(2), "image/jpeg")
    store.delete("photos/deleted.jpg")
    with pytest.raises(PhotoNotFound):
        store.get("photos/deleted.jpg")
    store.delete("photos/deleted.jpg")  # deleting twice is harmless (a retried clean-up)


def test_the_store_creates_its_missing_bucket_with_its_own_limited_credentials(server: LocalS3Server) -> None:
    admin = server.admin_client()
    for leftover in admin.list_objects(server.bucket, recursive=True):
        admin.remove_object(server.bucket, leftover.object_name)
    admin.remove_bucket(server.bucket)

    # a store whose bucket was never created (a service starting on an empty MinIO)
    fresh = store_for(server)
    fresh.put("photos/first.jpg", photo(3), "image/jpeg")
    assert admin.bucket_exists(server.bucket)

    # a running store whose bucket vanished under it (the MinIO volume was replaced): the next put recreates it
    admin.remove_object(server.bucket, "photos/first.jpg")
    admin.remove_bucket(server.bucket)
    with pytest.raises(S3Error) as gone:
        server.client().stat_object(server.bucket, "photos/first.jpg")
    assert gone.value.code in ("NoSuchBucket", "NoSuchKey")
    fresh.put("photos/second.jpg", photo(4), "image/jpeg")
    assert fresh.get("photos/second.jpg").content[:4] == (4).to_bytes(4, "big")


def test_health_follows_the_server(server: LocalS3Server, store: PhotoStore) -> None:
    assert store.healthy()
    server.stop()
    assert not store.healthy()
    with pytest.raises(StorageUnavailable):
        store.put("photos/while-down.jpg", photo(5), "image/jpeg")
    with pytest.raises(StorageUnavailable):
        store.get("photos/one.jpg")
    server.start()
    assert store.healthy()


# ---- the limits of the services' identity --------------------------------------------------------------------------


def test_the_services_identity_cannot_touch_another_bucket(server: LocalS3Server) -> None:
    admin = server.admin_client()
    if not admin.bucket_exists("someone-elses"):
        admin.make_bucket("someone-elses")
    admin.put_object("someone-elses", "secret.txt", io.BytesIO(b"not yours"), 9)
    limited = server.client()
    attempts = {
        "read": lambda: limited.get_object("someone-elses", "secret.txt"),
        "write": lambda: limited.put_object("someone-elses", "x.jpg", io.BytesIO(b"x"), 1),
        "list": lambda: list(limited.list_objects("someone-elses")),
        "delete": lambda: limited.remove_object("someone-elses", "secret.txt"),
        "create a bucket": lambda: limited.make_bucket("another-bucket"),
    }
    for what, attempt in attempts.items():
        with pytest.raises(S3Error) as refused:
            attempt()
        assert refused.value.code == "AccessDenied", what
    assert admin.get_object("someone-elses", "secret.txt").read() == b"not yours"
    assert not admin.bucket_exists("another-bucket")
    with pytest.raises(StorageUnavailable):
        PhotoStore(limited, "someone-elses").put("photos/x.jpg", photo(6), "image/jpeg")
    assert [b.name for b in limited.list_buckets()] == [server.bucket]


# ---- durability ----------------------------------------------------------------------------------------------------


def test_photos_survive_a_stop_and_start_and_a_new_server_on_the_same_data(
    server: LocalS3Server, store: PhotoStore
) -> None:
    kept = {f"photos/kept-{i}.jpg": photo(100 + i) for i in range(10)}
    for key, content in kept.items():
        store.put(key, content, "image/jpeg")
    server.stop()
    server.start()
    assert {key: store.get(key).content for key in kept} == kept

    # the next day's run: a new server object on the same directory comes back on the same address
    server.stop()
    next_run = LocalS3Server(server.data_dir, server.bucket)
    next_run.start()
    try:
        assert next_run.endpoint == server.endpoint
        assert {key: store_for(next_run).get(key).content for key in kept} == kept
    finally:
        next_run.stop()
    server.start()


def test_kill_9_mid_upload_loses_no_acknowledged_photo(server: LocalS3Server, store: PhotoStore) -> None:
    acknowledged: dict[str, bytes] = {}
    lock = threading.Lock()
    failed, done = threading.Event(), threading.Event()

    def upload(worker: int) -> None:
        for i in range(10_000):
            if done.is_set():
                return
            key, content = f"photos/crash-{worker}-{i}.jpg", photo(worker * 10_000 + i)
            try:
                store.put(key, content, "image/jpeg")
            except StorageUnavailable:
                failed.set()
                return
            with lock:
                acknowledged[key] = content

    with ThreadPoolExecutor(8) as pool:
        for worker in range(8):
            pool.submit(upload, worker)
        try:
            wait_for(lambda: len(acknowledged) >= 80, 60, message="80 acknowledged uploads")
            server.kill()  # SIGKILL while the 8 uploaders are still sending
            wait_for(failed.is_set, 30, message="the uploaders noticing the crash")
        finally:
            done.set()
    server.start()
    reader = store_for(server)
    lost = [key for key, content in acknowledged.items() if reader_get(reader, key) != content]
    assert lost == [], f"{len(lost)} of {len(acknowledged)} acknowledged photos lost or damaged"


def reader_get(store: PhotoStore, key: str) -> bytes | None:
    try:
        return store.get(key).content
    except PhotoNotFound:
        return None
