"""`negtemp serve`: the OpenAI-compatible server's options."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .. import registry
from ..host import DEFAULT_CTX


def run(argv: Sequence[str]) -> int:
    from ..serve import ServeOptions, serve

    args, extra = list(argv), []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    ap = argparse.ArgumentParser(
        prog="negtemp serve",
        description="Serve a model over the OpenAI-compatible API with llama.cpp's own server, built from negtemp's "
        "patched tree: a request's temperature may be negative. Prints the base URL on stdout once the model "
        "has loaded; Ctrl-C or SIGTERM stops it.",
        epilog="Other llama-server flags go after --, e.g. negtemp serve -- --metrics. No authentication: "
        "it binds loopback unless --host says otherwise.",
    )
    ap.add_argument("-m", "--model", help=f"GGUF path or model name ({', '.join(registry.MODELS)}); "
                    "default $NEGTEMP_MODEL, else smollm2-135m")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    ap.add_argument("-c", "--ctx-size", type=int, help="the whole context in tokens, shared by the slots, as "
                    f"llama-server's -c (default {DEFAULT_CTX} a slot)")
    ap.add_argument("-np", "--parallel", type=int, default=4, help="requests decoded together (slots; default 4)")
    ap.add_argument("-t", "--threads", type=int, help="CPU threads (default: the CPUs this process may use, at most 8)")
    ap.add_argument("-ngl", "--n-gpu-layers", type=int, default=-1, dest="n_gpu_layers",
                    help="layers on the GPU devices of a GPU build (default -1: all)")
    ap.add_argument("--rpc", help="comma-separated llama.cpp RPC servers (host:port) to offload to")
    ap.add_argument("--cache-ram", type=int, metavar="MIB",
                    help="MiB of host memory for llama-server's cache of recent prompts (default: an eighth of the "
                    "memory available at start, at most 8192, llama-server's own default; 0 turns it off, -1 "
                    "lifts the limit)")
    args_ns = ap.parse_args(args)
    return serve(ServeOptions(
        model=args_ns.model, host=args_ns.host, port=args_ns.port, n_ctx=args_ns.ctx_size,
        parallel=args_ns.parallel, threads=args_ns.threads, n_gpu_layers=args_ns.n_gpu_layers, rpc=args_ns.rpc,
        cache_ram=args_ns.cache_ram, extra=tuple(extra),
    ))
