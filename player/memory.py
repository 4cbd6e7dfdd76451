"""Process-wide tuning of the C allocator, for panels with little RAM.

The player holds a few full-frame buffers (8 MB each at 1920x1080: the scene, decoded
pictures, a fade) and allocates and frees others at every slide change (Pillow's
working images). With glibc's defaults this makes the resident size creep up by tens
of megabytes:

* a freed block that came from ``mmap`` *raises* the threshold above which ``malloc``
  uses ``mmap`` (up to 32 MB), so the next full-frame buffers come from the heap, where
  the holes they leave once freed are rarely given back to the system;
* each thread that allocates may get an arena of its own (up to 8 per core), each
  keeping its free space.

:func:`tune_allocator`, called once at start before any picture is decoded, fixes the
threshold (large buffers are always mapped, and unmapped when freed) and caps the
number of arenas. It does what ``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_ARENA_MAX`` in
the environment would; a value set there by the operator is left alone. Elsewhere than
glibc (musl, macOS) it does nothing::

    from player.memory import tune_allocator
    tune_allocator()

:func:`release_free_memory` hands back to the system the free pages in the middle of
the heap, which glibc otherwise keeps; it is worth calling after a burst of small
allocations that are all freed (building the alert screen's caches at start), before
the next full-frame buffers are allocated.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

# mallopt() parameters, from glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 256 * 1024  # bytes: a 1920-pixel row strip is below, any picture above
ARENA_MAX = 2  # the main loop's and one shared by the worker threads


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl's mallopt is a stub
    except (OSError, AttributeError):
        return None
    return libc


def release_free_memory() -> bool:
    """Return the allocator's free pages to the system (glibc ``malloc_trim``).

    Returns True when some memory was released. Costs a walk over the free lists (a
    millisecond or so): call it after start-up work, not per frame.
    """
    libc = _glibc()
    if libc is None:
        return False
    trim = libc.malloc_trim
    trim.argtypes = (ctypes.c_size_t,)
    trim.restype = ctypes.c_int
    return bool(trim(0))


def tune_allocator(mmap_threshold: int = MMAP_THRESHOLD, arena_max: int = ARENA_MAX) -> dict[str, int]:
    """Fix glibc's mmap threshold and cap its arenas; returns the settings applied.

    Safe to call more than once; an empty result means nothing was changed (not
    glibc, or both already set in the environment).
    """
    wanted = {"MALLOC_MMAP_THRESHOLD_": (M_MMAP_THRESHOLD, mmap_threshold),
              "MALLOC_ARENA_MAX": (M_ARENA_MAX, arena_max)}
    wanted = {name: v for name, v in wanted.items() if not os.environ.get(name)}
    libc = _glibc() if wanted else None
    if libc is None:
        return {}
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied: dict[str, int] = {}
    for name, (param, value) in wanted.items():
        if mallopt(param, value) == 1:
            applied[name] = value
        else:
            log.warning("mallopt refused %s=%d", name, value)
    return applied
