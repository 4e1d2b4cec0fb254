"""Facts about the machine this process runs on, and the thread counts they imply.

Model, `negtemp serve` and `negtemp rpc-server` all take a thread count; the
default and the cap are written here once.
"""

from __future__ import annotations

import os
import warnings

from .convert import int_in

__all__ = ["MAX_THREADS", "available_memory", "default_threads", "thread_count", "usable_cpus"]

# More threads than this are refused: ggml gains nothing past the cores, and
# libgomp segfaults or exits the process when it cannot start that many.
MAX_THREADS = 256
# past 8 threads a small model's decode gains nothing on most machines
_DEFAULT_MAX_THREADS = 8


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads() -> int:
    """The thread count when none is given: the CPUs this process may use, at most 8."""
    return min(usable_cpus(), _DEFAULT_MAX_THREADS)


def thread_count(name: str, value: int | None) -> int:
    """value (None: the default) checked against [1, MAX_THREADS], warned about past the usable CPUs."""
    n = default_threads() if value is None else int_in(name, value, 1, MAX_THREADS)
    cpus = usable_cpus()
    if n > cpus:
        # ggml's workers meet at a barrier after every operation: a worker
        # waiting for a CPU holds up all of them (README, "Threads and fork")
        warnings.warn(
            f"{name}={n} is more than the {cpus} CPUs this process may use; generation slows down sharply "
            "(two tokens of a tiny model on 2 CPUs: 3.7 s with 16 threads, 2 ms with 2)",
            RuntimeWarning, stacklevel=3,
        )
    return n


def available_memory() -> int | None:
    """Bytes of memory the system can still hand out (Linux MemAvailable), or None if unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
