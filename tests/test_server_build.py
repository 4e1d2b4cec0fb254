"""A source install builds llama-server on the first `negtemp serve` (negtemp.serve.server_binary).

The build it runs is CMake's, in the directory the install recorded; here that is a small CMake
project whose target stands in for llama-server, so each case takes seconds, not minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from negtemp import serve

def configured(tmp_path: Path, source: str) -> Path:
    """A CMake build directory of a project whose target llama-server compiles `source`; the record an
    install leaves in negtemp/bin pointing to it. Returns that bin directory."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "main.c").write_text(source)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.21)\nproject(stand_in C)\n"
        "add_executable(llama-server main.c)\nadd_executable(other main.c)\n")
    build = tmp_path / "build"
    subprocess.run(["cmake", "-S", str(project), "-B", str(build), "-G", "Ninja"], check=True, capture_output=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "llama-server.build").write_text(
        f"cmake={shutil.which('cmake')}\nbuild={build}\ntarget=llama-server\nbinary={build / 'llama-server'}\n")
    return bin_dir


def test_the_first_serve_builds_llama_server_showing_its_progress(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return 0; }\n"))
    binary = serve.server_binary()
    assert binary == tmp_path / "build" / "llama-server" and binary.exists()
    assert not (tmp_path / "build" / "other").exists(), "built more than the server's target"
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


def test_a_failed_build_shows_the_compilers_message(tmp_path, monkeypatch):
    monkeypatch.setattr(serve, "_BIN", configured(tmp_path, "int main(void) { return undeclared_name; }\n"))
    with pytest.raises(RuntimeError, match=r"(?s)building llama-server failed:.*undeclared_name.*Fix what it says, or install negtemp with its server"):
        serve.server_binary()


def test_a_build_directory_that_is_gone_is_reported_with_the_way_to_reinstall(tmp_path, monkeypatch):
    bin_dir = configured(tmp_path, "int main(void) { return 0; }\n")
    shutil.rmtree(tmp_path / "build")
    monkeypatch.setattr(serve, "_BIN", bin_dir)
    with pytest.raises(FileNotFoundError, match=r"which is gone; install negtemp with its server instead: NEGTEMP_SERVER=ON pip install"):
        serve.server_binary()
