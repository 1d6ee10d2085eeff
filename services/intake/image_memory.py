"""Keep image memory for reuse in the intake process: the photo re-encode is dominated by page faults otherwise.

Every photo is decoded into a fresh 5-8 MB image, copied and encoded with a buffer the size of the image. By
default Pillow returns each image's memory to the allocator and glibc returns allocations this large straight to
the kernel (`mmap`/`munmap`), so every photo faults its pages in again; on the virtual machines we measured that
costs more than the JPEG codec itself (`python bench/bench_photos.py`). Both are process-wide settings, so they are
made once, when the intake starts, never inside `sanitize_photo`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

from PIL import Image

log = logging.getLogger(__name__)

#: Pillow keeps up to this many freed blocks of this size for the next image: up to 64 MiB held when idle,
#: enough for the few photos decoded at a time (dependencies.PhotoCleaner) at phone resolutions.
PILLOW_BLOCKS = 16
PILLOW_BLOCK_BYTES = 4 * 1024 * 1024

# glibc mallopt parameters (malloc.h) and our values: allocations up to 32 MiB come from the heap instead of a
# fresh mapping each, and up to 128 MiB of free heap is kept instead of being trimmed after every photo.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024
TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024


def keep_image_memory() -> dict[str, bool]:
    """Apply both settings unless the operator set them through the environment; what was applied, by name."""
    applied = {"pillow_blocks": False, "glibc_malloc": False}
    if "PILLOW_BLOCKS_MAX" not in os.environ and "PILLOW_BLOCK_SIZE" not in os.environ:
        Image.core.set_block_size(PILLOW_BLOCK_BYTES)
        Image.core.set_blocks_max(PILLOW_BLOCKS)
        applied["pillow_blocks"] = True
    if not any(name.startswith("MALLOC_") for name in os.environ):
        applied["glibc_malloc"] = _tune_glibc_malloc()
    log.info("image memory reuse: %s", applied)
    return applied


def _tune_glibc_malloc() -> bool:
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # mallopt answers 1 on success; order matters: setting the mmap threshold fixes it (no dynamic adjustment)
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
