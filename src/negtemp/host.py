"""Facts about the machine this process runs on, and the process options they imply.

Model, `negtemp serve` and `negtemp rpc-server` take a thread count, a context
size, a port or an address to listen on; each option's default, range and
converter is written here once and shared by all three.
"""

from __future__ import annotations

import ipaddress
import os
import warnings

from . import _native
from .convert import int_in

__all__ = ["DEFAULT_CTX", "MAX_THREADS", "MIN_CTX", "available_memory", "context_size", "default_threads",
           "is_loopback", "port", "thread_count", "usable_cpus"]

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
        # waiting for a CPU holds up all of them (docs/robustness.md, "Threads and fork")
        warnings.warn(
            f"{name}={n} is more than the {cpus} CPUs this process may use; generation slows down sharply "
            "(two tokens of a tiny model on 2 CPUs: 3.7 s with 16 threads, 2 ms with 2)",
            RuntimeWarning, stacklevel=3,
        )
    return n


# a sequence's context when none is given: the model's training context, at most this (Model's n_ctx; a
# `negtemp serve` slot's share)
DEFAULT_CTX: int = _native.default_n_ctx
MIN_CTX = 16  # llama.cpp pads a context to 256 cells; fewer than 16 tokens is no prompt and reply
_MAX_CTX = 2**31 - 1


def context_size(name: str, value: int | None) -> int | None:
    """value (None: the default) checked against [16, 2**31 - 1] tokens."""
    return None if value is None else int_in(name, value, MIN_CTX, _MAX_CTX)


def port(name: str, value: int) -> int:
    """A TCP port to listen on or connect to, from 1 to 65535."""
    return int_in(name, value, 1, 65535)


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach an address (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
