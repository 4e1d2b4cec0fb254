"""`negtemp serve`: llama.cpp's own OpenAI-compatible server, built from negtemp's patched tree.

Every install carries llama-server in negtemp/bin, built by the same build
as the extension (CMakeLists.txt). Patch 0008 lets a request's temperature be
negative. This module
resolves the model as negtemp does, starts the server with the experiment's
sampler chain as its default, waits for it to load, and stops it cleanly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from .admission import admit
from .convert import int_in
from .host import DEFAULT_CTX, MIN_CTX, available_memory, context_size, is_loopback, port, thread_count
from .registry import DEFAULT_MODEL, MODELS, resolve
from .schema import SCHEMA

__all__ = ["DEFAULT_SAMPLERS", "ServeOptions", "default_cache_ram", "sampling_defaults", "serve", "server_binary",
           "server_command"]

# temperature then the draw, as the experiment; the repeat penalty and top-k/top-p/min-p
# sit in the chain at neutral values so a request that sets them gets them, in negtemp's
# order. At T < 0 the patched server mirrors the repeat penalty as the library does.
DEFAULT_SAMPLERS = "penalties;top_k;top_p;min_p;temperature"

# llama-server keeps recent prompts' KV in host memory, up to 8 GiB by default; a
# server sized for this machine takes an eighth of the memory free when it starts
_UPSTREAM_CACHE_RAM_MIB = 8192
_CACHE_RAM_SHARE = 8

LOAD_TIMEOUT_S = 300


@dataclass(frozen=True)
class ServeOptions:
    """What `negtemp serve` was asked for; the defaults are the CLI's. ``n_ctx`` is the whole context,
    shared by the ``parallel`` slots, as llama-server's ``-c`` (default: DEFAULT_CTX tokens per slot).
    ``threads`` None: host.default_threads(). Each option is checked when the options are made."""

    model: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    n_ctx: int | None = None
    parallel: int = 4
    threads: int | None = None
    n_gpu_layers: int = -1
    rpc: str | None = None
    cache_ram: int | None = None  # MiB of prompt cache; None: default_cache_ram()
    extra: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        port("port", self.port)
        # llama.cpp decodes at most this many sequences together, as Model.draws
        int_in("parallel", self.parallel, 1, int(SCHEMA["n"].hi))
        n_ctx = context_size("n_ctx", self.n_ctx)
        if n_ctx is not None and n_ctx < MIN_CTX * self.parallel:
            raise ValueError(f"n_ctx ({n_ctx}) is the whole context, shared by the {self.parallel} slots: give at "
                             f"least {MIN_CTX} tokens a slot ({MIN_CTX * self.parallel})")
        object.__setattr__(self, "threads", thread_count("threads", self.threads))
        int_in("n_gpu_layers", self.n_gpu_layers, -1, 2**31 - 1)
        if self.cache_ram is not None:
            int_in("cache_ram", self.cache_ram, -1, 2**31 - 1)


_BIN = Path(__file__).resolve().parent / "bin"


def server_binary() -> Path:
    """The llama-server built with this negtemp (negtemp/bin/llama-server)."""
    binary = _BIN / "llama-server"
    if not binary.exists():
        raise FileNotFoundError(f"this negtemp install has no llama-server ({binary} is missing); "
                                "reinstall negtemp (from a clone: `pip install .`)")
    return binary


def default_cache_ram() -> int:
    """MiB of llama-server's prompt cache when --cache-ram is not given: an eighth of the memory available
    now, at most upstream's 8192 MiB (its default), at least 0."""
    free = available_memory()
    if free is None:
        return _UPSTREAM_CACHE_RAM_MIB
    return max(0, min(_UPSTREAM_CACHE_RAM_MIB, free // _CACHE_RAM_SHARE // 2**20))


def _model_name(opts: ServeOptions, path: Path) -> str:
    """What the API calls the model: its negtemp name (the default's included), else the file's stem."""
    name = opts.model or os.environ.get("NEGTEMP_MODEL") or DEFAULT_MODEL
    return name if name in MODELS else path.stem


def sampling_defaults() -> list[str]:
    """llama-server's flags that set its request defaults to the library's (the schema's)."""
    out: list[str] = []
    for s in SCHEMA.values():
        if s.server_flag:
            out += [s.server_flag, f"{s.default:g}"]
    return out


def server_command(opts: ServeOptions, model_path: Path) -> list[str]:
    """llama-server's argv for these options (the flags after `--` last, so they win)."""
    cmd = [
        str(server_binary()), "-m", str(model_path), "--alias", _model_name(opts, model_path),
        "--host", opts.host, "--port", str(opts.port),
        "-c", str(opts.n_ctx or DEFAULT_CTX * opts.parallel), "-np", str(opts.parallel), "-t", str(opts.threads),
        "-ngl", str(opts.n_gpu_layers),
        "--cache-ram", str(default_cache_ram() if opts.cache_ram is None else opts.cache_ram),
        "--samplers", DEFAULT_SAMPLERS, *sampling_defaults(),
        "--no-webui",  # the web UI's assets are not built (docs/serve.md)
    ]
    if opts.rpc:
        cmd += ["--rpc", opts.rpc]
    return cmd + list(opts.extra)


def _base_url(opts: ServeOptions) -> str:
    """Where a client on this machine reaches the server."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(opts.host, opts.host)
    return f"http://[{host}]:{opts.port}" if ":" in host else f"http://{host}:{opts.port}"


def _wait_until_ready(proc: subprocess.Popen[bytes], base: str) -> bool:
    """Whether the server answered /health before it exited or LOAD_TIMEOUT_S passed (saying why not)."""
    deadline = time.monotonic() + LOAD_TIMEOUT_S
    while not _healthy(base):
        if proc.poll() is not None:
            print(f"negtemp: error: llama-server exited with status {proc.returncode} while starting "
                  "(its messages are above)", file=sys.stderr)
            return False
        if time.monotonic() > deadline:
            print(f"negtemp: error: llama-server did not answer {base}/health within {LOAD_TIMEOUT_S} s",
                  file=sys.stderr)
            return False
        time.sleep(0.2)
    return True


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return bool(r.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class _Stop(Exception):
    """SIGTERM arrived: stop the server and exit cleanly."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


def serve(opts: ServeOptions) -> int:
    """Run llama-server until Ctrl-C or SIGTERM; print its base URL on stdout once it answers."""
    path = resolve(opts.model)
    admit(path)
    cmd = server_command(opts, path)
    if not is_loopback(opts.host):
        print(f"negtemp: warning: serving on {opts.host}: the server has no authentication; anyone who can "
              f"reach port {opts.port} can use it", file=sys.stderr)
    base = _base_url(opts)
    print(f"negtemp: starting llama-server for {path.name} ({' '.join(cmd[1:])})", file=sys.stderr)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    # the server's own log goes to stderr; stdout is the URL only
    proc = subprocess.Popen(cmd, stdout=sys.stderr.fileno(), stderr=sys.stderr.fileno())
    interrupted = False
    try:
        if not _wait_until_ready(proc, base):
            return 2
        print(f"{base}/v1", flush=True)
        print(f"negtemp: serving {_model_name(opts, path)} at {base}/v1 (OpenAI-compatible); Ctrl-C stops it",
              file=sys.stderr)
        proc.wait()
        print(f"negtemp: error: llama-server exited with status {proc.returncode}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        return 0
    except _Stop:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        _stop(proc, interrupted)


def _stop(proc: subprocess.Popen[bytes], interrupted: bool) -> None:
    """Stop the server gracefully. Ctrl-C in a terminal reaches the server too (its process group), and
    a second signal makes it quit at once, so after Ctrl-C it is given time to stop on its own first."""
    if interrupted:
        _wait(proc, 10.0)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        _wait(proc, 10.0)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    print("negtemp: server stopped", file=sys.stderr)


def _wait(proc: subprocess.Popen[bytes], seconds: float) -> None:
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=seconds)
