"""Process-wide settings of :func:`tune_process` (the command line calls it; a Python
user may): none is made by importing axrun, opening an engine or running it.

- OpenCV's own multithreading is turned off: the host threads already work on several
  frames at once, and OpenCV's threads on top of them only add thread switches
  (measured 2–3 % more frames/s without them).
- With glibc, memory that frame-sized buffers (decoded images, resized copies) free is
  kept for the next frame instead of being handed back to the system and faulted in
  again, page by page: allocations up to :data:`KEEP_BYTES` come from the heap, and up
  to :data:`KEEP_BYTES` freed at its top stay there. glibc does this by itself for
  threads other than the main one, mostly; the main thread, which decodes too while
  it waits for results, took about 30 page faults per frame without it. Nothing is
  changed when ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` or a
  ``glibc.malloc`` tunable (``GLIBC_TUNABLES``) is set.
- Pillow's own decompression-bomb limit (178 megapixels, a warning from 89) is lifted:
  axrun checks every image against one cap, ``OPENCV_IO_MAX_IMAGE_PIXELS``.
"""

from __future__ import annotations

import ctypes
import os
import sys

import cv2

KEEP_BYTES = 32 * 1024 * 1024  # glibc's largest mmap threshold on 64-bit systems
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")


def tune_process() -> None:
    """Apply the settings above (idempotent)."""
    cv2.setNumThreads(0)
    keep_freed_memory()
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # axrun's cap (OPENCV_IO_MAX_IMAGE_PIXELS) alone applies


def keep_freed_memory() -> bool:
    """With glibc, keep freed frame-sized memory for reuse; False where nothing was
    changed (another C library, or the user's own allocator settings)."""
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _ENV) \
            or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success (ctypes calls are untyped: bool() for the checker)
    return bool(mallopt(_M_MMAP_THRESHOLD, KEEP_BYTES) == 1
                and mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES) == 1)
