"""A source install builds llama-server on the first `negtemp serve` (negtemp.serve.server_binary).

It configures the CMake project the install recorded (cmake/server) and builds its llama-server
target with ninja; here that project is a small one whose target stands in for llama-server, so
each case takes seconds, not minutes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from negtemp import serve


def configured(tmp_path: Path, source: str) -> Path:
    """What a source install leaves: a record in negtemp/bin naming the CMake project that builds
    llama-server, the patched tree and a build directory. Here the project's llama-server compiles
    `source`, and it has a second target that must not be built. Returns that bin directory."""
    project = tmp_path / "cmake" / "server"
    project.mkdir(parents=True)
    (project / "main.c").write_text(source)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.21)\nproject(stand_in C)\n"
        "if(NOT IS_DIRECTORY \"${LLAMA_DIR}\")\n  message(FATAL_ERROR \"no tree\")\nendif()\n"
        "set(CMAKE_RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)\n"
        "add_executable(llama-server main.c)\nadd_executable(other main.c)\n")
    (tmp_path / "tree").mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server.build").write_text(
        f"project={project}\ntree={tmp_path / 'tree'}\nbuild={tmp_path / 'build'}\noptions= -DGGML_NATIVE=ON\n")
    return bin_dir


def test_the_first_serve_builds_llama_server_showing_its_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    binary = serve.server_binary()
    assert binary == tmp_path / "build" / "bin" / "llama-server" and binary.exists()
    assert not (tmp_path / "build" / "bin" / "other").exists(), "built more than the server's target"
    err = capsys.readouterr().err
    assert "negtemp: building llama-server" in err and "negtemp: llama-server 1/" in err and "built in" in err


def test_a_server_built_since_negtemp_was_installed_is_reused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    serve.server_binary()
    capsys.readouterr()
    serve.server_binary()
    assert "building" not in capsys.readouterr().err


def test_a_server_older_than_the_extension_is_brought_up_to_date(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    binary = serve.server_binary()
    capsys.readouterr()
    extension = Path(serve.__file__).resolve().parent.glob("_native*")
    stamp = min(p.stat().st_mtime for p in extension) - 60
    os.utime(binary, (stamp, stamp))
    serve.server_binary()
    assert "negtemp: building llama-server" in capsys.readouterr().err


def test_a_server_that_needed_no_relink_counts_as_up_to_date(tmp_path, monkeypatch, capsys):
    # negtemp rebuilt, the server's sources not: ninja has nothing to do, and the next serve must not ask it again
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    serve.server_binary()
    extension = Path(serve.__file__).resolve().parent.glob("_native*")
    stamp = min(p.stat().st_mtime for p in extension) - 60
    for path in (tmp_path / "cmake", tmp_path / "build"):
        for f in [path, *path.rglob("*")]:
            os.utime(f, (stamp, stamp), follow_symlinks=False)
    capsys.readouterr()
    serve.server_binary()
    assert "negtemp: building llama-server" in capsys.readouterr().err
    serve.server_binary()
    assert "building" not in capsys.readouterr().err, "checked again although nothing changed since"


def test_a_failed_build_shows_the_compilers_message(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return undeclared_name; }\n"))
    with pytest.raises(RuntimeError, match=r"(?s)building llama-server failed:.*undeclared_name.*Fix what it says, "
                       r"or install negtemp with its server"):
        serve.server_binary()


def test_a_source_tree_that_is_gone_is_reported_with_the_way_to_reinstall(tmp_path, monkeypatch):
    bin_dir = configured(tmp_path, "int main(void) { return 0; }\n")
    shutil.rmtree(tmp_path / "cmake")
    monkeypatch.setattr(serve, "_BIN", bin_dir)
    with pytest.raises(FileNotFoundError,
                       match=r"which is gone; install negtemp with its server instead: NEGTEMP_SERVER=ON pip install"):
        serve.server_binary()


def test_without_cmake_and_ninja_the_first_serve_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    with pytest.raises(RuntimeError, match=r"cmake and ninja not on PATH: `pip install cmake ninja`"):
        serve.server_binary()
