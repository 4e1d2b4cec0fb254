"""A local stand-in for the Hugging Face Hub's download API, for huggingface_hub pointed at it by HF_ENDPOINT.

It serves what huggingface_hub's list_repo_files and hf_hub_download ask
for, in the Hub's layout: a repository's tree as JSON
(/api/models/OWNER/REPO/tree/REV) and its files (/OWNER/REPO/resolve/REV/PATH,
HEAD for the metadata, GET for the bytes), with the commit and ETag headers
the client caches by. These machines cannot reach the Hub; what this leaves
unexercised (redirects to a CDN, Xet storage, authentication) is said in
docs/models.md.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlparse

from negtemp.cache import sha256_file

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@contextmanager
def hub_server(repos: dict[str, dict[str, Path]]) -> Iterator[tuple[str, list[str]]]:
    """Serve repos ({"owner/repo": {path in repo: local file}}) on a free loopback port for the block;
    yields the endpoint URL and the log of requests ("METHOD path")."""
    etags = {(repo, name): sha256_file(f) for repo, files in repos.items() for name, f in files.items()}
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"", head: bool = False) -> None:
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _route(self, head: bool) -> None:
            path = unquote(urlparse(self.path).path)
            requests.append(f"{self.command} {path}")
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
                repo = f"{parts[2]}/{parts[3]}"
                if repo not in repos:
                    return self._send(404, {"X-Error-Code": "RepoNotFound", "Content-Type": "application/json"},
                                      b'{"error": "Repository not found"}', head)
                tree = [{"type": "file", "path": name, "size": f.stat().st_size, "oid": etags[repo, name][:40]}
                        for name, f in sorted(repos[repo].items())]
                return self._send(200, {"Content-Type": "application/json"}, json.dumps(tree).encode(), head)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, name = f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
                if repo not in repos:
                    return self._send(404, {"X-Error-Code": "RepoNotFound"}, b"", head)
                if name not in repos[repo]:
                    return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}, b"", head)
                f = repos[repo][name]
                headers = {"X-Repo-Commit": COMMIT, "ETag": f'"{etags[repo, name]}"',
                           "Content-Length": str(f.stat().st_size), "Content-Type": "application/octet-stream"}
                self.send_response(200)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                if not head:
                    with open(f, "rb") as src:
                        for block in iter(lambda: src.read(1 << 20), b""):
                            self.wfile.write(block)
                return None
            return self._send(404, {}, b"", head)

        def do_GET(self) -> None:
            self._route(head=False)

        def do_HEAD(self) -> None:
            self._route(head=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
