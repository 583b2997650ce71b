"""keep_freed_memory: after it, memory torch frees stays in the process instead of going back to the OS."""

import logging
import subprocess
import sys
import textwrap

import pytest

from ffenergy.targets import allocator

# A child process, so this test's allocator settings do not leak into the rest of the suite.
# It makes and frees a 64 MiB tensor and reports how much of it was mapped directly and how much
# free memory malloc holds afterwards (mallinfo2).
CHILD = textwrap.dedent(
    """
    import ctypes, sys, torch
    from ffenergy.targets.allocator import keep_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(f, ctypes.c_size_t) for f in
                    "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]

    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = MallInfo2
    kept = keep_freed_memory() if sys.argv[1] == "keep" else False
    before = libc.mallinfo2().hblkhd
    t = torch.ones(16 * 2**20)
    mapped = libc.mallinfo2().hblkhd - before
    del t
    print(int(kept), mapped, libc.mallinfo2().fordblks)
    """
)


def run_child(mode: str) -> tuple[int, int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    kept, mapped, free = (int(v) for v in out.stdout.split())
    return kept, mapped, free


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc is Linux's")
def test_freed_tensor_memory_stays_in_the_heap_only_when_kept():
    kept, mapped, free = run_child("keep")
    assert kept == 1
    assert mapped == 0  # no direct mmap: the 64 MiB came from the heap
    assert free >= 64 * 2**20  # and is still there, free for the next batch, after the tensor died
    kept, mapped, free = run_child("default")
    assert kept == 0
    assert mapped >= 64 * 2**20  # glibc's default: a big block is its own mapping...
    assert free < 64 * 2**20  # ...handed back to the OS when freed


def test_an_allocator_without_mallopt_is_reported_not_fatal(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger=allocator.__name__)
    monkeypatch.setattr(allocator, "_kept", None)
    monkeypatch.setattr(allocator.ctypes, "CDLL", lambda name: object())  # a libc with no mallopt
    assert allocator.keep_freed_memory() is False
    assert "not glibc" in caplog.text
    monkeypatch.setattr(allocator, "_kept", None)  # the next caller configures for real
