"""Process-wide runtime settings for the command line and the benchmarks.

:func:`steady_allocator` stops glibc's malloc from handing every freed tensor
of a few hundred kB or more back to the kernel. By default glibc serves such
blocks with ``mmap`` (or trims them off the heap top) and returns them on
free, so the next batch's tensors of the same size start as fresh pages and
every page faults on first touch. Measured here (2 cores, batch 64, 200 bp):
about 900 minor faults per ARGMINN forward pass and 600 per standard-CNN pass,
which cost about as much as the arithmetic; with the thresholds fixed there
are none. Freed memory then stays in the process for reuse, so resident memory
stays near its peak instead of falling back between batches.

The command line applies it at start-up (set ``ARGMINN_MALLOC_TUNING=0`` to
keep the C library's defaults); the library itself never does, since a
process's allocator belongs to whoever runs the process (Kipoi, a notebook).
"""

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def steady_allocator(mmap_threshold=32 << 20, trim_threshold=256 << 20):
    """Fix glibc malloc's mmap and trim thresholds; True if applied.

    Blocks below ``mmap_threshold`` bytes come from the heap and freed heap
    memory below ``trim_threshold`` bytes is kept. Does nothing (returns
    False) off glibc, or when the environment sets ``ARGMINN_MALLOC_TUNING=0``.
    """
    if os.environ.get("ARGMINN_MALLOC_TUNING", "1").strip() == "0":
        return False
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(
        mallopt(_M_TRIM_THRESHOLD, int(trim_threshold)))


def minor_page_faults():
    """Minor page faults of this process so far (Unix; what :func:`steady_allocator` removes)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
