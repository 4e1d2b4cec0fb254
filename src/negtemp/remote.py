"""The client side of a model split over llama.cpp RPC servers (Model(rpc=...)): endpoints and layer shares."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["remote_share", "rpc_endpoints", "rpc_timeout"]


def rpc_endpoints(rpc: str | Sequence[str]) -> tuple[str, ...]:
    """The "host:port" endpoints of rpc (a sequence, or one comma-separated str), checked for form."""
    items = rpc.split(",") if isinstance(rpc, str) else list(rpc)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"an RPC server is a 'host:port' str, not {type(item).__name__}")
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or ":" in host or not port.isdecimal() or not 0 < int(port) < 65536:
            raise ValueError(f"RPC server {item!r} is not of the form host:port (an IPv4 address or a host "
                             "name, and a port from 1 to 65535)")
        endpoint = f"{host}:{int(port)}"
        if endpoint in out:
            raise ValueError(f"RPC server {endpoint} is listed twice")
        out.append(endpoint)
    return tuple(out)


def rpc_timeout(seconds: float) -> float:
    """seconds a server may take to accept, take or answer one request, checked."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0.001 <= seconds <= 86400:
        raise ValueError(f"rpc_timeout must be a number of seconds from 0.001 to 86400, got {seconds!r}")
    return float(seconds)


def remote_share(meta: dict[str, object], n_servers: int) -> int:
    """Layers to offload so that this machine and each of n_servers RPC servers hold an equal share.

    llama.cpp counts the output layer as one more layer, and offloads the last ones.
    """
    arch = meta.get("general.architecture")
    n_layer = meta.get(f"{arch}.block_count")
    if not isinstance(n_layer, int) or n_layer < 1:
        return -1
    return round((n_layer + 1) * n_servers / (n_servers + 1))
