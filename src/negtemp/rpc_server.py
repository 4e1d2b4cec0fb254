"""`negtemp rpc-server`: this machine's devices, served to llama.cpp RPC clients.

A client is a negtemp.Model made with ``rpc=["host:port", ...]`` (or
llama.cpp's own ``--rpc``): the model's offloaded layers live in the servers'
memory and run on their devices. The server is ggml's own
(ggml_backend_rpc_start_server), run in this process: no extra binary. It
speaks llama.cpp's RPC protocol, which has no authentication or encryption,
so it binds loopback unless told otherwise and warns when it is not.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from . import _native
from .host import is_loopback, port, thread_count

__all__ = ["DEFAULT_PORT", "RpcServerOptions", "exposure_warning", "serve_rpc"]

DEFAULT_PORT = 50052  # llama.cpp's rpc-server default


@dataclass(frozen=True)
class RpcServerOptions:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    threads: int | None = None
    cache: str | None = None

    def checked(self) -> RpcServerOptions:
        """These options with the default thread count filled in; ValueError for one ggml would refuse."""
        try:
            ipaddress.IPv4Address(self.host)
        except ValueError:
            raise ValueError(f"--host must be an IPv4 address such as 127.0.0.1 or 0.0.0.0 (ggml's RPC server "
                             f"listens on IPv4 only), got {self.host!r}") from None
        return RpcServerOptions(self.host, port("port", self.port), thread_count("threads", self.threads), self.cache)


def exposure_warning(host: str) -> str | None:
    """The warning for listening on host, or None when only this machine can reach it (loopback)."""
    if is_loopback(host):
        return None
    return (f"negtemp rpc-server: WARNING: listening on {host}, which other machines can reach. llama.cpp's RPC "
            "protocol has no authentication and no encryption: anyone who can reach this port can run "
            "computations on this machine and read or overwrite the memory it serves. Run it only on a network "
            "you trust, and firewall the port from everything else.")


def serve_rpc(options: RpcServerOptions) -> int:
    """Serve until SIGINT or SIGTERM, then end the process (status 0); returns 1 if the server cannot start.

    ggml's server blocks in accept() and recv() on a thread of its own and has
    no stop call, so a signal ends the process with os._exit once stdout and
    stderr are flushed: the kernel closes the sockets, and a connected client
    gets negtemp.RemoteError on its next request. Nothing is left to save.
    """
    opts = options.checked()
    warning = exposure_warning(opts.host)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    cache = ""
    if opts.cache is not None:
        Path(opts.cache).mkdir(parents=True, exist_ok=True)
        cache = os.fsdecode(Path(opts.cache).resolve())
    endpoint = f"{opts.host}:{opts.port}"
    threads = opts.threads
    assert threads is not None  # checked() fills it in
    failure: list[BaseException] = []
    ended = threading.Event()

    def run() -> None:
        try:
            _native.rpc_server(endpoint, cache, threads)
        except BaseException as e:  # reported by the main thread, which is waiting on `ended`
            failure.append(e)
        ended.set()

    def stop(signum: int, frame: FrameType | None) -> None:
        print(f"negtemp rpc-server: stopped ({signal.Signals(signum).name})", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"negtemp rpc-server: starting at {endpoint} with {threads} threads; Ctrl-C stops it",
              file=sys.stderr, flush=True)
        threading.Thread(target=run, name="negtemp-rpc-server", daemon=True).start()
        while not ended.wait(0.2):  # a timed wait, so that signal handlers run
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"negtemp rpc-server: error: {failure[0] if failure else 'the server stopped'}", file=sys.stderr)
    return 1
