"""Photo storage on MinIO through the minio client (any S3 API: SeaweedFS serves the local mode and the tests)."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any

import urllib3
from minio import Minio
from minio.error import S3Error
from nameko.extensions import DependencyProvider

from jaklapor.config import as_bool, setting

log = logging.getLogger(__name__)


class StorageUnavailable(RuntimeError):
    """The object store did not answer or refused the operation."""


class PhotoNotFound(KeyError):
    pass


@dataclass(frozen=True)
class StoredObject:
    content: bytes
    content_type: str


class PhotoStore:
    """The narrow interface workers get: put, get and delete whole photos by key."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self._bucket_ready = False

    def ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        try:
            if not self._client.bucket_exists(self._bucket):
                self._client.make_bucket(self._bucket)
        except S3Error as exc:
            if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise StorageUnavailable(f"object store refused bucket {self._bucket}: {exc.code}") from exc
        except Exception as exc:
            raise StorageUnavailable(f"object store unreachable: {type(exc).__name__}") from exc
        self._bucket_ready = True

    def put(self, key: str, content: bytes, content_type: str) -> None:
        for attempt in (1, 2):
            self.ensure_bucket()
            try:
                self._client.put_object(self._bucket, key, io.BytesIO(content), len(content), content_type=content_type)
                return
            except S3Error as exc:
                if exc.code == "NoSuchBucket" and attempt == 1:
                    # the store was reset (a fresh MinIO volume): create the bucket again
                    self._bucket_ready = False
                    continue
                raise StorageUnavailable(f"could not store photo: {exc.code}") from exc
            except Exception as exc:
                raise StorageUnavailable(f"could not store photo: {type(exc).__name__}") from exc

    def get(self, key: str) -> StoredObject:
        self.ensure_bucket()
        try:
            response = self._client.get_object(self._bucket, key)
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject"):
                raise PhotoNotFound(key) from exc
            raise StorageUnavailable(f"could not read photo: {exc.code}") from exc
        except Exception as exc:
            raise StorageUnavailable(f"could not read photo: {type(exc).__name__}") from exc
        try:
            return StoredObject(response.read(), response.headers.get("Content-Type", "application/octet-stream"))
        finally:
            response.close()
            response.release_conn()

    def delete(self, key: str) -> None:
        try:
            self._client.remove_object(self._bucket, key)
        except Exception:  # best effort: an orphan photo is harmless, a missing one is not
            log.warning("could not delete photo object", extra={"photo_key": key})

    def healthy(self) -> bool:
        try:
            self._client.bucket_exists(self._bucket)
        except Exception:
            return False
        return True


def make_client(config: dict[str, Any]) -> Minio:
    # short timeouts and few retries: a dead store must give the citizen a quick 503, not a hung request
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=2.0, read=10.0),
        retries=urllib3.Retry(total=1, backoff_factor=0.1, status_forcelist=[502, 503, 504]),
        maxsize=20,
    )
    return Minio(
        setting(config, "S3_ENDPOINT", "127.0.0.1:9000"),
        access_key=setting(config, "S3_ACCESS_KEY", "jaklapor"),
        secret_key=setting(config, "S3_SECRET_KEY", "jaklapor-dev-secret"),
        secure=as_bool(setting(config, "S3_SECURE", False)),
        region=setting(config, "S3_REGION", "us-east-1"),
        http_client=http,
    )


class PhotoStorage(DependencyProvider):
    """nameko dependency: the MinIO client is created in `setup` and its pool cleared in `stop`."""

    def setup(self) -> None:
        config = self.container.config
        self.client = make_client(config)
        self.store = PhotoStore(self.client, setting(config, "S3_BUCKET", "jaklapor-photos"))
        try:
            self.store.ensure_bucket()
        except StorageUnavailable as exc:
            # keep starting: reports are refused with 503 until the store answers
            log.error("object store not ready at start: %s", exc)

    def stop(self) -> None:
        self.client._http.clear()

    def get_dependency(self, worker_ctx: Any) -> PhotoStore:
        return self.store
