"""Models by Hugging Face name: ``hf:owner/repo``, ``hf:owner/repo:QUANT`` or ``hf:owner/repo/path/file.gguf``.

huggingface_hub does the download, into the cache every Hugging Face tool
shares (``HF_HOME``, ``HF_HUB_CACHE``), with its progress bar, its token
(``HF_TOKEN``, ``hf auth login``), its mirror setting (``HF_ENDPOINT``) and its
offline mode (``HF_HUB_OFFLINE=1``: the cached snapshot only). The file it
returns is a path like any other, checked and trial-loaded before it is used
(admission).

Which file of a repository: the one named, else the GGUF whose name carries
the quantization asked for (``:Q4_K_M``, any case), else Q4_K_M if the
repository has one, else the only GGUF; a model split into
``-00001-of-0000N.gguf`` parts is fetched whole and loaded from its first
part. Projector files (``mmproj``) are never picked.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

from .errors import ModelFetchError

__all__ = ["PREFIX", "HubName", "is_hub_name", "parse", "pull"]

PREFIX = "hf:"
# what llama.cpp's -hf takes when no quantization is named
DEFAULT_QUANT = "Q4_K_M"

_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})\.gguf$", re.IGNORECASE)
_FORM = "hf:owner/repo, hf:owner/repo:QUANT (e.g. hf:owner/repo:Q4_K_M) or hf:owner/repo/file.gguf"


@dataclass(frozen=True)
class HubName:
    """A parsed ``hf:`` name: the repository and either a file in it or a quantization (or neither)."""

    repo: str
    filename: str | None = None
    quant: str | None = None

    def __str__(self) -> str:
        tail = f"/{self.filename}" if self.filename else f":{self.quant}" if self.quant else ""
        return f"{PREFIX}{self.repo}{tail}"


def is_hub_name(model: object) -> bool:
    return isinstance(model, str) and model.startswith(PREFIX)


def parse(name: str) -> HubName:
    """The parts of an ``hf:`` name; ValueError saying the accepted forms if it is none of them."""
    if not name.startswith(PREFIX):
        raise ValueError(f"{name!r} is not a Hugging Face name ({_FORM})")
    rest = name[len(PREFIX):]
    quant = None
    if ":" in rest:
        rest, quant = rest.split(":", 1)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", quant):
            raise ValueError(f"{name!r}: the quantization after ':' must be a tag like Q4_K_M, got {quant!r}")
    owner_repo, _, filename = rest.partition("/")
    repo_name, _, filename = filename.partition("/")
    repo = f"{owner_repo}/{repo_name}"
    if not _REPO.fullmatch(repo):
        raise ValueError(f"{name!r} names no repository: expected {_FORM}")
    if filename:
        if quant is not None:
            raise ValueError(f"{name!r}: give a file or a quantization, not both")
        if not filename.lower().endswith(".gguf") or ".." in PurePosixPath(filename).parts:
            raise ValueError(f"{name!r}: the file in the repository must be a .gguf path, got {filename!r}")
    return HubName(repo, filename or None, quant)


def _part(filename: str) -> tuple[str, int, int] | None:
    """A split GGUF part's (stem, index, count), or None for a whole file."""
    m = _SPLIT.search(filename)
    return (filename[: m.start()], int(m.group(1)), int(m.group(2))) if m else None


def _split_parts(filename: str, files: list[str]) -> list[str]:
    """Every part of a split GGUF (its first part first), or just the file."""
    part = _part(filename)
    if part is None:
        return [filename]
    stem, _, count = part
    parts = sorted(f for f in files if (p := _part(f)) is not None and p[0] == stem and p[2] == count)
    if len(parts) != count:
        raise ModelFetchError(f"{filename}: the repository has {len(parts)} of its {count} parts")
    return parts


def choose(name: HubName, files: list[str]) -> list[str]:
    """The files to fetch for name among a repository's files (the model's first part first)."""
    ggufs = sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in PurePosixPath(f).name.lower())
    if name.filename:
        if name.filename not in files:
            raise ModelFetchError(f"{name.repo} has no file {name.filename}; its GGUFs: {_listing(ggufs)}")
        return _split_parts(name.filename, files)
    if not ggufs:
        raise ModelFetchError(f"{name.repo} has no GGUF file (negtemp loads GGUF models); its files: "
                              f"{_listing(files)}")
    # a split model counts once, by its first part
    firsts = [f for f in ggufs if (p := _part(f)) is None or p[1] == 1]
    quant = name.quant or DEFAULT_QUANT
    tag = re.compile(rf"(?<![A-Za-z0-9]){re.escape(quant)}(?![A-Za-z0-9])", re.IGNORECASE)
    matching = [f for f in firsts if tag.search(PurePosixPath(f).name)]
    if not matching and name.quant is None and len(firsts) == 1:
        matching = firsts
    if not matching:
        asked = f"no {quant} GGUF" if name.quant else f"several GGUFs and none is {DEFAULT_QUANT}"
        options = [f"{PREFIX}{name.repo}:{q}" for q in _quants(firsts)] or [f"{PREFIX}{name.repo}/{f}" for f in firsts]
        raise ModelFetchError(f"{name.repo} has {asked}; name one: {_listing(options)}")
    if len(matching) > 1:
        raise ModelFetchError(f"{name.repo} has several {quant} GGUFs; name the file: "
                              f"{_listing([f'{PREFIX}{name.repo}/{f}' for f in matching])}")
    return _split_parts(matching[0], files)


def _quants(files: list[str]) -> list[str]:
    tags = {m.group(0).upper() for f in files
            for m in [re.search(r"(?<![A-Za-z0-9])(I?Q\d[A-Z0-9_]*|F16|BF16|F32)(?![A-Za-z0-9])",
                                _SPLIT.sub(".gguf", PurePosixPath(f).name), re.IGNORECASE)] if m}
    return sorted(tags)


def _listing(items: list[str], limit: int = 12) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "") if items else "none"


def _hub() -> ModuleType:
    try:
        import huggingface_hub
    except ImportError:
        raise ModelFetchError("models by Hugging Face name need huggingface_hub: pip install huggingface_hub") from None
    return huggingface_hub


def _no_repository(name: HubName) -> ModelFetchError:
    return ModelFetchError(f"{name}: no repository {name.repo} on the Hub (or it is private or gated: "
                           "log in with `hf auth login` or set HF_TOKEN)")


def _repo_files(name: HubName) -> list[str]:
    """The repository's files: listed by the Hub, or, offline, those of its cached snapshot."""
    hub = _hub()
    try:
        return list(hub.list_repo_files(name.repo))
    except hub.errors.RepositoryNotFoundError:
        raise _no_repository(name) from None
    except (hub.errors.OfflineModeIsEnabled, hub.errors.HfHubHTTPError, OSError) as e:
        try:
            snapshot = Path(hub.snapshot_download(name.repo, local_files_only=True))
        except (hub.errors.LocalEntryNotFoundError, OSError):
            raise ModelFetchError(f"{name}: could not list {name.repo} on the Hub ({type(e).__name__}: {e}), "
                                  "and it is not in the Hugging Face cache") from None
        return [p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()]


def pull(model: str) -> Path:
    """Download (or find in the Hugging Face cache) the GGUF an ``hf:`` name picks; its local path."""
    name = parse(model)
    hub = _hub()
    files = [name.filename] if name.filename and _part(name.filename) is None else _repo_files(name)
    paths = []
    for filename in choose(name, files):
        # huggingface_hub draws its progress bar on a terminal only; a log gets this line
        print(f"negtemp: {name}: {filename} from the Hugging Face Hub (or its cache)", file=sys.stderr, flush=True)
        try:
            paths.append(Path(hub.hf_hub_download(name.repo, filename)))
        except hub.errors.RemoteEntryNotFoundError:
            raise ModelFetchError(f"{name}: {name.repo} has no file {filename}") from None
        except hub.errors.RepositoryNotFoundError:
            raise _no_repository(name) from None
        except (hub.errors.HfHubHTTPError, hub.errors.LocalEntryNotFoundError, OSError) as e:
            raise ModelFetchError(f"{name}: downloading {filename} failed ({type(e).__name__}: {e}); check the "
                                  "connection, or HF_ENDPOINT for a mirror, or pass a local GGUF path") from None
    return paths[0]
