"""A model split over llama.cpp RPC servers (Model(rpc=...), negtemp rpc-server): same samples, and faults that
raise negtemp.RemoteError instead of ending the process (patch 0009). Loopback only; every server is started and
stopped here."""

from __future__ import annotations

import logging
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import numpy as np
import pytest
from ports import free_port, wait_for_listener

import negtemp

pytestmark = pytest.mark.real_model
log = logging.getLogger(__name__)

PROMPT = "Temperature is a concept"
DETECT_S = 30  # a fault must surface within this many seconds
HELLO, DEVICE_COUNT, GET_ALIGNMENT, GET_MAX_SIZE, GET_DEVICE_MEMORY = 14, 15, 1, 2, 11


class RpcServer:
    """`negtemp rpc-server` in a child process on a loopback port."""

    def __init__(self, log: Path, port: int | None = None, *extra: str) -> None:
        self.port = port or free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "negtemp", "rpc-server", "--port", str(self.port), "-t", "1", *extra],
                stdout=subprocess.PIPE, stderr=err,
            )
        if not wait_for_listener(self.port, 60, lambda: self.proc.poll() is None):
            self.kill()
            pytest.fail(f"negtemp rpc-server did not listen on {self.endpoint} within 60 s; see {log}")

    def wait_for_client(self, timeout: float) -> bool:
        """Whether ggml's server reported accepting a client within timeout seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if ready and b"Accepted client connection" in self.proc.stdout.readline():
                return True
        return False

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def stop(self) -> int:
        """SIGTERM; the exit status."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            self.kill()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RpcServer]]:
    log = tmp_path_factory.mktemp("rpc") / "servers.log"
    two = [RpcServer(log), RpcServer(log)]
    yield two
    for s in two:
        s.kill()


@pytest.fixture(scope="module")
def local(smollm2_path: Path) -> Iterator[negtemp.Model]:
    with negtemp.Model(smollm2_path, n_ctx=256, n_threads=2) as m:
        yield m


@pytest.fixture(scope="module")
def split(smollm2_path: Path, servers: list[RpcServer]) -> Iterator[negtemp.Model]:
    """SmolLM2 over two servers and this machine: each keeps a third of its layers."""
    with negtemp.Model(smollm2_path, n_ctx=256, n_threads=2, rpc=[s.endpoint for s in servers]) as m:
        yield m


def same_samples(a: negtemp.Completion, b: negtemp.Completion) -> str | None:
    """None if a and b drew the same tokens with log-probabilities within 1e-4, else how they differ."""
    if not np.array_equal(a.tokens, b.tokens):
        return f"tokens differ: {a.tokens.tolist()} vs {b.tokens.tolist()}"
    gap = float(np.max(np.abs(a.logprobs - b.logprobs)))
    return None if gap <= 1e-4 else f"log-probabilities differ by up to {gap:.2g}"


@pytest.mark.parametrize("path", ["fused", "chain", "backend"])
@pytest.mark.parametrize("temp", [-0.001, 0.001])
def test_a_model_split_over_two_servers_samples_what_the_local_model_samples(local, split, temp, path):
    here = local.complete(PROMPT, temp, n_predict=16, seed=1, path=path)
    there = split.complete(PROMPT, temp, n_predict=16, seed=1, path=path)
    assert same_samples(here, there) is None, f"T={temp}, path {path}: {same_samples(here, there)}"


def test_the_comparison_of_samples_rejects_another_draw(local):
    one = local.complete(PROMPT, 1.0, n_predict=16, seed=1)
    other = local.complete(PROMPT, 1.0, n_predict=16, seed=2)
    assert same_samples(one, other) is not None, "two seeds at T = 1 gave the same 16 tokens: the check is blind"


def test_the_layers_run_on_both_servers_and_on_this_machine(split, servers):
    buffers = {buft for _, _, _, buft in split.op_backends(PROMPT)}
    for s in servers:
        assert any(s.endpoint in b for b in buffers), f"no node of the graph ran on {s.endpoint}: {sorted(buffers)}"
    assert "CPU" in buffers, f"no layer stayed on this machine: {sorted(buffers)}"


def test_a_split_completion_records_its_servers_and_layer_count(split, servers):
    settings = split.complete(PROMPT, -0.001, n_predict=2, seed=1).settings
    assert settings["rpc"] == [s.endpoint for s in servers]
    assert settings["n_gpu_layers"] == 21, "of SmolLM2's 30 layers and its output, 2/3 (21 of 31) go to the servers"


def test_a_sweep_over_a_split_model_samples_what_the_local_sweep_samples(local, split):
    here = local.sweep(PROMPT, [-0.001, 0.001], n_predict=8, seed=1)
    there = split.sweep(PROMPT, [-0.001, 0.001], n_predict=8, seed=1)
    for a, b in zip(here, there, strict=True):
        assert same_samples(a, b) is None, f"T={a.config.temp}: {same_samples(a, b)}"


# --- faults -------------------------------------------------------------------


def load_fault(smollm2_path: Path, endpoint: str, **kwargs) -> tuple[negtemp.RemoteError, float]:
    t0 = time.monotonic()
    with pytest.raises(negtemp.RemoteLoadError) as info:
        negtemp.Model(smollm2_path, n_ctx=64, n_threads=1, rpc=[endpoint], **kwargs)
    return info.value, time.monotonic() - t0


def check_fault(err: negtemp.RemoteError, seconds: float, endpoint: str, what: str) -> None:
    assert isinstance(err, negtemp.ModelLoadError), "a fault while loading must also be a ModelLoadError"
    assert err.endpoint == endpoint
    assert f"RPC server {endpoint}" in str(err) and what in str(err), f"unexpected message: {err}"
    assert seconds < DETECT_S, f"the fault took {seconds:.1f} s to surface"
    log.info("%s after %.3f s: %s", type(err).__name__, seconds, err)


def test_a_port_nobody_listens_on_raises_remote_error(smollm2_path):
    endpoint = f"127.0.0.1:{free_port()}"
    check_fault(*load_fault(smollm2_path, endpoint), endpoint, "Connection refused")


def test_a_host_name_that_does_not_resolve_raises_remote_error(smollm2_path):
    endpoint = "no-such-host.invalid:50052"
    check_fault(*load_fault(smollm2_path, endpoint), endpoint, "cannot resolve")


@contextmanager
def fake_server(script: Callable[[socket.socket], None]) -> Iterator[str]:
    """A scripted stand-in for an RPC server, run for each connection (ggml's client makes several): its
    endpoint. A client hanging up ends a script quietly, as it ends a real server's session."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.1)
    done = threading.Event()

    def run() -> None:
        while not done.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(DETECT_S)
                with suppress(OSError):
                    script(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{srv.getsockname()[1]}"
    finally:
        done.set()
        thread.join(DETECT_S + 1)
        srv.close()


def read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionResetError("the client hung up")
        data += chunk
    return data


def read_command(conn: socket.socket) -> int:
    """One request (command byte, 8-byte size, body): its command."""
    cmd, size = struct.unpack("<BQ", read_exact(conn, 9))
    read_exact(conn, size)
    return int(cmd)


def reply(conn: socket.socket, body: bytes) -> None:
    conn.sendall(struct.pack("<Q", len(body)) + body)


def hello(major: int) -> bytes:
    return struct.pack("<4B", major, 0, 0, 0) + bytes(24)


def wait_for_hangup(conn: socket.socket) -> None:
    with suppress(OSError):
        while conn.recv(4096):
            pass


def answering_the_handshake_with(body: bytes) -> Callable[[socket.socket], None]:
    def script(conn: socket.socket) -> None:
        read_command(conn)
        reply(conn, body)
        wait_for_hangup(conn)

    return script


def test_a_server_of_another_protocol_version_raises_remote_error(smollm2_path):
    with fake_server(answering_the_handshake_with(hello(6))) as endpoint:
        check_fault(*load_fault(smollm2_path, endpoint), endpoint, "speaks RPC protocol 6.0.0")


def test_a_malformed_reply_raises_remote_error(smollm2_path):
    with fake_server(answering_the_handshake_with(b"hello")) as endpoint:
        check_fault(*load_fault(smollm2_path, endpoint), endpoint, "malformed reply: 5 bytes where 28 were expected")


def test_a_server_that_stops_answering_raises_remote_error_after_the_timeout(smollm2_path):
    def silent_server(conn):
        read_command(conn)
        wait_for_hangup(conn)

    with fake_server(silent_server) as endpoint:
        err, seconds = load_fault(smollm2_path, endpoint, rpc_timeout=1.0)
    check_fault(err, seconds, endpoint, "nothing sent or received for 1 s")
    assert seconds < 10, f"a 1 s timeout took {seconds:.1f} s"


def test_a_server_that_hangs_up_while_the_model_loads_raises_remote_error(smollm2_path):
    answers = {HELLO: hello(7), DEVICE_COUNT: struct.pack("<I", 1), GET_ALIGNMENT: struct.pack("<Q", 32),
               GET_MAX_SIZE: struct.pack("<Q", 1 << 40), GET_DEVICE_MEMORY: struct.pack("<QQ", 8 << 30, 8 << 30)}

    def server_that_dies_at_the_first_upload(conn):
        while (cmd := read_command(conn)) in answers:
            reply(conn, answers[cmd])

    with fake_server(server_that_dies_at_the_first_upload) as endpoint:
        check_fault(*load_fault(smollm2_path, endpoint), endpoint, "closed by the other end")


def test_a_server_killed_while_the_model_loads_raises_remote_error(smollm2_path, tmp_path):
    server = RpcServer(tmp_path / "server.log")
    outcome: list[BaseException] = []

    def load() -> None:
        try:
            negtemp.Model(smollm2_path, n_ctx=64, n_threads=1, rpc=[server.endpoint], n_gpu_layers=-1).close()
        except BaseException as e:
            outcome.append(e)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        assert server.wait_for_client(DETECT_S), "the model never connected to the server"
    finally:
        server.kill()
        killed = time.monotonic()
    loader.join(DETECT_S)
    assert not loader.is_alive(), f"the load did not end within {DETECT_S} s of the server's death"
    assert outcome and isinstance(outcome[0], negtemp.RemoteLoadError), f"the load ended with {outcome}"
    assert server.endpoint in str(outcome[0])
    log.info("killed while loading: %s, %.3f s after the kill", outcome[0], time.monotonic() - killed)


def test_a_server_killed_mid_generation_raises_remote_error_and_a_restarted_one_serves_a_new_model(
        smollm2_path, local, tmp_path):
    server = RpcServer(tmp_path / "server.log")
    try:
        model = negtemp.Model(smollm2_path, n_ctx=256, n_threads=2, rpc=[server.endpoint])
        stream = model.stream(PROMPT, -0.001, n_predict=200, seed=1)
        next(stream)
        server.kill()
        t0 = time.monotonic()
        with pytest.raises(negtemp.RemoteError) as info:
            for _ in stream:
                pass
        assert time.monotonic() - t0 < DETECT_S
        log.info("killed mid-generation: %s after %.3f s", info.value, time.monotonic() - t0)
        assert info.value.endpoint == server.endpoint and "closed by the other end" in str(info.value), info.value
        assert not isinstance(info.value, negtemp.ModelLoadError), "a fault mid-generation is not a load error"
        with pytest.raises(negtemp.RemoteError, match="cannot be used any more"):
            model.complete(PROMPT, -0.001, n_predict=2, seed=1)
        model.close()

        server = RpcServer(tmp_path / "server.log", server.port)
        with negtemp.Model(smollm2_path, n_ctx=256, n_threads=2, rpc=[server.endpoint]) as again:
            there = again.complete(PROMPT, -0.001, n_predict=16, seed=1)
        here = local.complete(PROMPT, -0.001, n_predict=16, seed=1)
        assert same_samples(here, there) is None, f"after the restart: {same_samples(here, there)}"
    finally:
        server.kill()


@pytest.mark.parametrize("argv", [
    ["-p", PROMPT, "-n", "2"],
    ["sweep", PROMPT, "--temps", "-1,1", "-n", "2"],
    ["experiment", "--prompts", "2"],
], ids=["generate", "sweep", "experiment"])
def test_the_command_line_passes_rpc_servers_on_and_reports_their_faults(smollm2_path, tmp_path, argv):
    endpoint = f"127.0.0.1:{free_port()}"
    res = subprocess.run([sys.executable, "-m", "negtemp", *argv, "-m", str(smollm2_path), "--rpc", endpoint],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert f"RPC server {endpoint}: cannot connect: Connection refused" in res.stderr, res.stderr


# --- the server -----------------------------------------------------------------


def server_log(server: RpcServer) -> str:
    """What the server wrote to stderr."""
    return server.log.read_text()


def test_rpc_server_on_loopback_does_not_warn(tmp_path):
    server = RpcServer(tmp_path / "server.log")
    server.stop()
    assert "WARNING" not in server_log(server)


def test_rpc_server_on_an_address_other_machines_can_reach_warns_that_it_has_no_authentication(tmp_path):
    port = free_port()
    with open(tmp_path / "server.log", "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "negtemp", "rpc-server", "--host", "0.0.0.0",
                                 "--port", str(port), "-t", "1"], stdout=subprocess.DEVNULL, stderr=err)
    try:
        assert wait_for_listener(port, 60, lambda: proc.poll() is None)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    text = (tmp_path / "server.log").read_text()
    assert "WARNING: listening on 0.0.0.0" in text and "no authentication" in text, text


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_rpc_server_cleanly_and_frees_its_port(tmp_path, sig):
    server = RpcServer(tmp_path / "server.log")
    server.proc.send_signal(sig)
    assert server.proc.wait(timeout=30) == 0
    server.kill()
    assert f"stopped ({sig.name})" in server_log(server)
    assert "Traceback" not in server_log(server)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))


def test_rpc_server_on_a_port_in_use_says_so_and_exits_1():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "negtemp", "rpc-server", "--port", str(port), "-t", "1"],
                             capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert f"could not start at 127.0.0.1:{port}: is the address this machine's, and the port free?" in res.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "localhost"], "IPv4 address"),
    (["--port", "0"], "port must be in [1, 65535]"),
    (["--threads", "0"], "threads must be in [1, 256]"),
])
def test_bad_rpc_server_options_are_refused_before_it_starts(args, message):
    res = subprocess.run([sys.executable, "-m", "negtemp", "rpc-server", *args], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 2 and message in res.stderr, res.stderr


@pytest.mark.parametrize(("rpc", "message"), [
    (["127.0.0.1"], "not of the form host:port"),
    (["127.0.0.1:0"], "not of the form host:port"),
    (["[::1]:50052"], "not of the form host:port"),
    (["127.0.0.1:50052", "127.0.0.1:50052"], "listed twice"),
])
def test_a_malformed_rpc_endpoint_is_a_value_error(smollm2_path, rpc, message):
    with pytest.raises(ValueError, match=message):
        negtemp.Model(smollm2_path, rpc=rpc)


def test_main_gpu_and_rpc_together_are_refused(smollm2_path):
    with pytest.raises(ValueError, match="cannot be combined with rpc"):
        negtemp.Model(smollm2_path, rpc=["127.0.0.1:50052"], main_gpu=0)
