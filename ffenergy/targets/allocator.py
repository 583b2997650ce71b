"""Keep the memory torch frees inside the process, so timed batches do not page-fault.

torch's CPU tensors come from ``malloc``. glibc serves blocks above its mmap threshold (128 KiB,
rising to at most 32 MiB) with fresh ``mmap`` pages and unmaps them when freed, and gives the heap
top back to the kernel when more than 128 KiB of it is free. A batch's activations are megabytes,
so every batch then writes into fresh pages and every 4 KiB page costs a page fault on first
touch. On this project's CI machine (a VM) that was most of MP's depth-1 time at batch 1024, and
it charges deep modes and compaction for the allocator rather than for their arithmetic
(docs/reproduction.md, "Host overhead of light inference"). With direct mmap and heap trimming
off, freed blocks are reused; the process keeps its peak memory until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc malloc.h: free heap top kept up to this many bytes
M_MMAP_MAX = -4  # glibc malloc.h: at most this many direct mmap blocks (0: none)

_kept: bool | None = None


def keep_freed_memory() -> bool:
    """Turn off glibc's return of freed memory for this process (once); False where it cannot."""
    global _kept
    if _kept is None:
        _kept = _configure()
    return _kept


def _configure() -> bool:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it; musl and macOS have other allocators
    except (OSError, AttributeError, TypeError):
        log.info("allocator: not glibc (%s); freed memory is returned as that libc decides", name)
        return False
    if not (mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, 2**31 - 1)):
        log.warning("allocator: glibc refused mallopt; timed batches may include page faults")
        return False
    return True
