"""`negtemp serve` for tests: started on a free loopback port, stopped as a service manager stops it."""

from __future__ import annotations

import contextlib
import select
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from ports import free_port


def start_server(*args: str, log) -> tuple[subprocess.Popen, str]:
    """`negtemp serve` on a free loopback port; its base URL once it answers (at most 120 s)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "negtemp", "serve", "--port", str(port), *args],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    line = proc.stdout.readline().strip() if ready else ""
    if not line.startswith("http://127.0.0.1:"):
        proc.kill()
        proc.wait()
        pytest.fail(f"negtemp serve did not print its URL within 120 s (exit {proc.returncode}); see {log.name}")
    return proc, line


def stop_server(proc: subprocess.Popen) -> int:
    """SIGTERM, as a service manager stops it; its exit status (-9 if it had to be killed)."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return -9
    finally:
        proc.stdout.close()


def post(base_url: str, path: str, body: bytes) -> tuple[int, str]:
    req = urllib.request.Request(f"{base_url}{path}", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


@contextlib.contextmanager
def running_server(log_dir: Path, *args: str) -> Iterator[str]:
    """`negtemp serve ARGS` for the block, its log in log_dir; its base URL."""
    with open(log_dir / "server.log", "w") as log:
        proc, url = start_server(*args, log=log)
        try:
            yield url
        finally:
            stop_server(proc)
