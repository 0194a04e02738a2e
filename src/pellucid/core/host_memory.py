"""Reuse of freed host memory between model calls: fewer page faults on CPU.

glibc's ``malloc`` serves blocks above its *mmap threshold* with fresh ``mmap`` pages and returns free memory at
the top of its heap to the OS once it exceeds its *trim threshold*. Both start at 128 KiB and grow only as large
blocks are freed (at most to 32 MiB and 64 MiB). A forward+backward of a small model allocates and frees the
same few MB on every call, so with the starting thresholds every call touches fresh pages: measured on this
project's benchmark CNN (batch 16), about 750 minor page faults per Saliency call, 25-30% of its time; with the
thresholds below, none after the first call, and the call is that much faster.

On the first attribution call (the outermost ``attribute`` of any method) pellucid sets the two thresholds to the
values glibc's own adaptation converges to in a long-running PyTorch process (mmap 32 MiB, trim 64 MiB), so a
process keeps at most 64 MiB of freed heap memory for reuse. Nothing is done when

* the platform is not Linux with glibc, or another allocator is preloaded (``LD_PRELOAD`` names jemalloc,
  tcmalloc or mimalloc),
* the user set glibc's own settings (``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, or ``malloc``
  tunables in ``GLIBC_TUNABLES``),
* ``PELLUCID_HOST_MALLOC`` is ``default`` (or ``0``/``off``/``false``).

This is the only process-wide setting pellucid changes; it does not affect any result.
"""
from __future__ import annotations

import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 * 1024**2  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc sets beside a raised mmap threshold
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
OPT_OUT = "PELLUCID_HOST_MALLOC"

_state: dict[str, object] = {"done": False, "reason": "not attempted yet"}


def _skip_reason() -> str | None:
    if os.environ.get(OPT_OUT, "").strip().lower() in ("default", "0", "off", "false", "no"):
        return f"{OPT_OUT}={os.environ[OPT_OUT]}"
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        return "not Linux with glibc"
    preload = os.environ.get("LD_PRELOAD", "").lower()
    if any(name in preload for name in ("jemalloc", "tcmalloc", "mimalloc")):
        return "another allocator is preloaded (LD_PRELOAD)"
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return "the user set glibc's MALLOC_*_THRESHOLD_"
    if "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return "the user set glibc.malloc tunables"
    return None


def tune_host_malloc() -> bool:
    """Set glibc's mmap and trim thresholds once per process (see the module docstring); ``True`` if they were
    set (now or earlier). Called by every method's outermost ``attribute``; cheap after the first call."""
    if _state["done"]:
        return _state["reason"] == "applied"
    _state["done"] = True
    reason = _skip_reason()
    if reason is None:
        try:
            mallopt = ctypes.CDLL(None).mallopt
            mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
            ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            reason = None if ok else "mallopt refused the values"
        except (OSError, AttributeError):
            reason = "mallopt is not available"
    _state["reason"] = reason or "applied"
    return reason is None


def host_malloc_status() -> str:
    """``"applied"`` or why the thresholds were left as they were (``"not attempted yet"`` before any call)."""
    return str(_state["reason"])
