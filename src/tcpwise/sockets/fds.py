"""The process's file-descriptor budget: the soft RLIMIT_NOFILE and how many descriptors are open now.

Why it matters: every accepted connection is a descriptor, and ``accept()`` fails with ``EMFILE`` once the
lowest free descriptor number reaches the soft limit (getrlimit(2), accept(2)). A server that only reacts to
EMFILE has already lost: the connection stays in the kernel's accept queue, the listening socket stays readable,
and a naive loop spins on it. Keeping *headroom* (stop accepting a little before the limit) needs both numbers.
"""

from __future__ import annotations

import os
import resource

__all__ = ["nofile_limit", "open_fd_count", "default_headroom"]


def nofile_limit() -> int:
    """The soft limit on open descriptors (``RLIMIT_NOFILE``); an unlimited soft limit is reported as 2**20."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_fd_count() -> int:
    """Descriptors this process holds now (Linux ``/proc/self/fd``; the listing's own descriptor excluded).

    Costs one directory read (about 0.1 ms per thousand descriptors): call it when deciding to resume, not
    per accepted connection.
    """
    try:
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:  # no /proc (not Linux): unknown, callers then rely on EMFILE and the fd numbers
        return 0


def default_headroom(limit: int) -> int:
    """Descriptors kept free for the application's own files, upstream connections and logging: 1/16 of the
    limit, at least 16 (64 of 1,024; 256 of 4,096)."""
    return max(16, limit // 16)
