"""CPU allocator hygiene for benchmarks.

glibc's malloc returns large freed blocks to the OS and maps fresh pages for the next
allocation, so a variant that allocates large intermediates pays page faults on some runs
and not others (its own mmap threshold adapts as it goes): timings of the same code
differ by 2x. Benchmarks keep freed memory for reuse instead, as jemalloc and tcmalloc
do, so that what is timed is the kernels. ``recperf bench --cold-allocator`` keeps
glibc's default behaviour.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_INT_MAX = 2**31 - 1


def keep_freed_memory() -> bool:
    """Asks glibc to serve every allocation from its heap and never trim it. Returns
    False where the C library is not glibc (nothing changes there)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    # int mallopt(int, int): declared, so that a value out of int's range raises instead
    # of being masked (1 << 62 once became a trim threshold of 0: every free trimmed).
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    libc.mallopt.restype = ctypes.c_int
    ok = libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30) == 1  # glibc's largest allowed value
    return ok and libc.mallopt(_M_TRIM_THRESHOLD, _INT_MAX) == 1
