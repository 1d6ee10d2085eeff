"""The intake keeps image memory for reuse: the same photos out, fewer fresh allocations, the environment wins."""

from __future__ import annotations

import os
import platform
from collections.abc import Iterator

import pytest
from PIL import Image

from services.intake import image_memory
from services.intake.photos import sanitize_photo
from tests import photo_fixtures as fx


@pytest.fixture
def pillow_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Pillow's arena as a fresh process has it, with no operator settings; put back afterwards."""
    before = Image.core.get_block_size(), Image.core.get_blocks_max()
    for name in [name for name in os.environ if name.startswith(("PILLOW_", "MALLOC_"))]:
        monkeypatch.delenv(name)
    Image.core.set_blocks_max(0)
    yield
    Image.core.set_block_size(before[0])
    Image.core.set_blocks_max(before[1])


def _photo() -> bytes:
    return fx.jpeg_with_gps(-6.2, 106.8, (1600, 1200), orientation=6)


def test_pillow_keeps_freed_image_blocks_for_the_next_photo(pillow_defaults: None) -> None:
    applied = image_memory.keep_image_memory()

    assert applied["pillow_blocks"] is True
    assert Image.core.get_blocks_max() == image_memory.PILLOW_BLOCKS
    assert Image.core.get_block_size() == image_memory.PILLOW_BLOCK_BYTES
    photo = _photo()
    sanitize_photo(photo)
    reused_before = Image.core.get_stats()["reused_blocks"]
    sanitize_photo(photo)
    assert Image.core.get_stats()["reused_blocks"] > reused_before


def test_the_cleaned_photo_is_byte_for_byte_the_same_with_memory_reuse(pillow_defaults: None) -> None:
    photo = _photo()
    without = sanitize_photo(photo).content

    image_memory.keep_image_memory()

    assert sanitize_photo(photo).content == without
    assert sanitize_photo(photo).content == without  # also from reused blocks


def test_the_operators_environment_wins(pillow_defaults: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "2")
    monkeypatch.setenv("MALLOC_ARENA_MAX", "2")

    applied = image_memory.keep_image_memory()

    assert applied == {"pillow_blocks": False, "glibc_malloc": False}
    assert Image.core.get_blocks_max() == 0


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_glibc_keeps_large_allocations_on_the_heap(pillow_defaults: None) -> None:
    assert image_memory.keep_image_memory()["glibc_malloc"] is True
