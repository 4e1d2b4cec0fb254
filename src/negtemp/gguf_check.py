"""Check a GGUF file's structure before llama.cpp sees it.

A model file is untrusted input, and llama.cpp aborts the whole process on
some malformed files. This walks the header, the metadata and the tensor
table, checking every count, length, type, dimension and offset against the
file size, and raises ModelLoadError with the reason for anything out of
bounds. Tensor types and sizes come from ggml itself (negtemp._native).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from . import _native
from .errors import ModelLoadError

__all__ = ["check_gguf"]

_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
_MAX_STRING = 1 << 24  # 16 MiB: far above any real key, value or token
_MAX_DIMS = 4
_MAX_ELEMENTS = 1 << 50


class _Reader:
    def __init__(self, buf: mmap.mmap | bytes, size: int) -> None:
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, n: int, what: str) -> bytes:
        if n < 0 or self.pos + n > self.size:
            raise ModelLoadError(f"truncated GGUF: {what} at byte {self.pos} needs {n} bytes, file has {self.size}")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return bytes(out)

    def scalar(self, fmt: str, what: str) -> object:
        """One little-endian value: an int, a float (even inf or NaN) or a bool, as fmt says."""
        value: object = struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]
        return value

    def unpack(self, fmt: str, what: str) -> int:
        """One unsigned count, id or type code."""
        value = self.scalar(fmt, what)
        assert isinstance(value, int), f"{fmt} is not an integer format"
        return value

    def string(self, what: str) -> str:
        n = self.unpack("Q", f"{what} length")
        if n > _MAX_STRING:
            raise ModelLoadError(f"GGUF {what} claims a length of {n} bytes")
        return self.take(n, what).decode("utf-8", errors="replace")

    def value(self, vtype: int, what: str, depth: int = 0) -> object:
        if vtype in _SCALAR:
            return self.scalar(_SCALAR[vtype], what)
        if vtype == _STRING:
            return self.string(what)
        if vtype == _ARRAY and depth == 0:
            etype = self.unpack("I", f"{what} element type")
            count = self.unpack("Q", f"{what} element count")
            if etype in _SCALAR:
                nbytes = count * struct.calcsize(_SCALAR[etype])
                self.take(nbytes, f"{what} ({count} elements)")
                return count
            if etype != _STRING:
                raise ModelLoadError(f"GGUF {what}: unsupported array element type {etype}")
            if count * 8 > self.size - self.pos:
                raise ModelLoadError(f"GGUF {what} claims {count} strings, more than the file can hold")
            return [self.string(f"{what}[{i}]") for i in range(count)]
        raise ModelLoadError(f"GGUF {what}: unknown value type {vtype}")


def check_gguf(path: str | Path) -> dict[str, object]:
    """The GGUF's metadata; ModelLoadError if the file at path is not a structurally sound GGUF."""
    p = Path(path)
    size = p.stat().st_size
    if size == 0:
        raise ModelLoadError(f"{p} is empty, not a GGUF model")
    with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        try:
            return _check(_Reader(buf, size), size)
        except ModelLoadError as e:
            raise ModelLoadError(f"{p}: {e}") from None


def _check(r: _Reader, size: int) -> dict[str, object]:
    if r.take(4, "magic") != b"GGUF":
        raise ModelLoadError("not a GGUF file (bad magic)")
    version = r.unpack("I", "version")
    if version not in (2, 3):
        raise ModelLoadError(f"unsupported GGUF version {version}")
    n_tensors = r.unpack("Q", "tensor count")
    n_kv = r.unpack("Q", "metadata count")
    # every entry takes at least 8 bytes of length prefix
    if n_kv * 12 > size or n_tensors * 24 > size:
        raise ModelLoadError(f"GGUF claims {n_kv} metadata entries and {n_tensors} tensors, more than the file holds")

    alignment = 32
    meta: dict[str, object] = {}
    for i in range(n_kv):
        key = r.string(f"metadata key #{i}")
        vtype = r.unpack("I", f"type of {key!r}")
        meta[key] = value = r.value(vtype, repr(key))
        if key == "general.alignment":
            if not isinstance(value, int) or value <= 0 or value & (value - 1) or vtype != 4:
                raise ModelLoadError(f"general.alignment must be a power of two (u32), got {value!r}")
            alignment = value
    _check_vocab(meta)

    tensors: list[tuple[str, int, int]] = []
    for i in range(n_tensors):
        name = r.string(f"tensor name #{i}")
        n_dims = r.unpack("I", f"dimension count of {name!r}")
        if not 1 <= n_dims <= _MAX_DIMS:
            raise ModelLoadError(f"tensor {name!r} has {n_dims} dimensions (1 to {_MAX_DIMS} allowed)")
        dims = [r.unpack("Q", f"dimension of {name!r}") for _ in range(n_dims)]
        n_elem = 1
        for d in dims:
            if d == 0 or d > _MAX_ELEMENTS:
                raise ModelLoadError(f"tensor {name!r} has dimension {d}")
            n_elem *= d
            if n_elem > _MAX_ELEMENTS:
                raise ModelLoadError(f"tensor {name!r} has {dims} elements, too many")
        ttype = r.unpack("I", f"type of {name!r}")
        info = _native.ggml_type_info(ttype)
        if info is None:
            raise ModelLoadError(f"tensor {name!r} has unknown ggml type {ttype}")
        block, type_size = info
        if dims[0] % block:
            raise ModelLoadError(f"tensor {name!r}: first dimension {dims[0]} is not a multiple of block size {block}")
        offset = r.unpack("Q", f"offset of {name!r}")
        if offset % alignment:
            raise ModelLoadError(f"tensor {name!r}: offset {offset} is not aligned to {alignment}")
        tensors.append((name, offset, n_elem // block * type_size))

    data_start = (r.pos + alignment - 1) // alignment * alignment
    for name, offset, nbytes in tensors:
        if data_start + offset + nbytes > size:
            raise ModelLoadError(
                f"tensor {name!r} ({nbytes} bytes at offset {offset}) runs past the end of the file ({size} bytes)"
            )
    return meta


def _check_vocab(meta: dict[str, object]) -> None:
    """Vocabulary invariants that llama.cpp asserts (aborting) rather than reports."""
    tokens = meta.get("tokenizer.ggml.tokens")
    if tokens is None:
        return
    if not isinstance(tokens, list):
        raise ModelLoadError("tokenizer.ggml.tokens must be an array of strings")
    seen: set[str] = set()
    for t in tokens:
        if t in seen:
            raise ModelLoadError(f"the vocabulary lists token {t!r} twice")
        seen.add(t)
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        n = meta.get(key)
        if n is not None and n != len(tokens):
            raise ModelLoadError(f"{key} has {n} entries for {len(tokens)} tokens")
