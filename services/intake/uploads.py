"""Uploaded photos on their way into the object store: cleaned one at a time, stored all or nothing."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import IO, Any

from jaklapor.storage import StorageUnavailable
from jaklapor.web import ApiError
from services.intake import metrics
from services.intake.domain import new_photo_id
from services.intake.evidence import Capture
from services.intake.photos import SanitizedPhoto

log = logging.getLogger(__name__)


def photo_key(photo_id: str) -> str:
    """Where a photo lives in the object store."""
    return f"photos/{photo_id}.jpg"


def sha256_of(part: IO[bytes]) -> bytes:
    """The SHA-256 of an uploaded file, read in blocks; the file is left at its start."""
    part.seek(0)
    digest = hashlib.sha256()
    while block := part.read(1 << 16):
        digest.update(block)
    part.seek(0)
    return digest.digest()


def store_new_photos(
    parts: list[IO[bytes]],
    clean: Callable[[bytes], SanitizedPhoto],
    storage: Any,
    captures: list[Capture | None] | None = None,
) -> list[dict[str, Any]]:
    """Check and clean (`clean`, or PhotoRejected) the uploaded photos and store them one at a time; the records for
    the report document (with each photo's perceptual hash); `captures`, when given, receives where and when each
    photo says it was taken (for the evidence check, never stored).

    All or nothing: when one photo is refused or cannot be stored, those already stored are deleted.
    """
    stored: list[dict[str, Any]] = []
    try:
        for part in parts:
            part.seek(0)  # a retried transition reads its evidence again
            started = time.perf_counter()
            photo = clean(part.read())
            metrics.PHOTO_SECONDS.observe(time.perf_counter() - started)
            photo_id = new_photo_id()
            try:
                storage.put(photo_key(photo_id), photo.content, photo.content_type)
            except StorageUnavailable as exc:
                log.error("photo store unavailable: %s", exc)
                raise ApiError(
                    503, "storage_unavailable", "photos cannot be stored right now; try again shortly"
                ) from None
            stored.append(
                dict(
                    photo_id=photo_id,
                    width=photo.width,
                    height=photo.height,
                    content_type=photo.content_type,
                    phash=photo.phash,
                )
            )
            if captures is not None:
                captures.append(photo.capture)
    except BaseException:
        delete_photos(storage, stored)
        raise
    return stored


def delete_photos(storage: Any, photos: list[dict[str, Any]]) -> None:
    for photo in photos:
        storage.delete(photo_key(photo["photo_id"]))
