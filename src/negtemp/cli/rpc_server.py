"""`negtemp rpc-server`: this machine's devices for llama.cpp RPC clients."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


def run(argv: Sequence[str]) -> int:
    from ..rpc_server import DEFAULT_PORT, RpcServerOptions, serve_rpc

    ap = argparse.ArgumentParser(
        prog="negtemp rpc-server",
        description="Serve this machine's GPUs (else its CPU) to llama.cpp RPC clients, such as negtemp -m MODEL "
        "--rpc HOST:PORT on another machine, which then keep part of the model's layers here. Ctrl-C or "
        "SIGTERM stops it.",
        epilog="The RPC protocol has no authentication or encryption: it binds 127.0.0.1 unless --host says "
        "otherwise, and warns when it does. docs/rpc.md.",
    )
    ap.add_argument("--host", default="127.0.0.1",
                    help="IPv4 address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    ap.add_argument("-p", "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("-t", "--threads", type=int,
                    help="CPU threads for the layers served (default: the CPUs this process may use, at most 8)")
    ap.add_argument("-c", "--cache", metavar="DIR",
                    help="keep the weights clients send in DIR, so that loading the same model again skips "
                    "sending them (llama.cpp's tensor cache)")
    args = ap.parse_args(argv)
    return serve_rpc(RpcServerOptions(host=args.host, port=args.port, threads=args.threads, cache=args.cache))
