"""The package's shape: the stub is the extension's own, and the patch series is documented."""

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import negtemp

ROOT = Path(__file__).resolve().parent.parent


def test_type_stub_is_exactly_what_the_module_generates():
    """_native.pyi is pybind11-stubgen's output for the built module, compared whole (scripts/stubgen.py)."""
    r = subprocess.run([sys.executable, "-m", "scripts.stubgen", "--check"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, (
        "src/negtemp/_native.pyi is not what the extension generates; run `python -m scripts.stubgen` after "
        f"rebuilding:\n{r.stdout[-3000:]}{r.stderr[-2000:]}")


def test_the_stub_check_catches_a_stub_that_drifted(tmp_path, monkeypatch):
    from scripts import stubgen

    drifted = tmp_path / "_native.pyi"
    drifted.write_text(stubgen.STUB.read_text().replace("-> bytes", "-> str", 1))
    monkeypatch.setattr(stubgen, "STUB", drifted)
    monkeypatch.setattr(sys, "argv", ["stubgen.py", "--check"])
    assert stubgen.main() == 1, "a stub with one return type changed passed the check"


def test_package_ships_py_typed_and_exports_its_api():
    assert (Path(negtemp.__file__).parent / "py.typed").exists()
    for name in negtemp.__all__:
        assert hasattr(negtemp, name)
    # the sampling keywords are typed once, in SamplingOptions, for complete, sweep and generate
    assert "beta" in typing.get_type_hints(negtemp.config.SamplingOptions)
    for method in (negtemp.Model.complete, negtemp.Model.sweep):
        assert inspect.signature(method).parameters["options"].annotation == "Unpack[SamplingOptions]"


def test_the_install_carries_llama_server_outside_the_source_tree():
    """`negtemp serve` needs nothing but the installed package: its llama-server is in negtemp/bin and runs."""
    from negtemp.serve import server_binary

    binary = server_binary()
    assert binary.parent == Path(negtemp.__file__).resolve().parent / "bin"
    r = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "version" in (r.stdout + r.stderr)


def test_every_patch_has_a_header_saying_what_why_and_how_tested():
    patches = sorted((ROOT / "patches").glob("*.patch"))
    assert patches, "patches/ is empty"
    for p in patches:
        header = p.read_text().split("\n---\n", 1)[0]
        for word in ("What:", "Why:", "Tested:"):
            assert word in header, f"{p.name} header lacks {word!r}"


def test_a_default_build_leaves_out_ggmls_amx_kernels():
    # cmake/amx.cmake: a VM can report AMX and trap it, and the first matrix product killed the process
    assert "AMX" not in negtemp.system_info(), (
        "negtemp was built with ggml's AMX kernels, which crash where a VM reports AMX but traps it; "
        f"rebuild without NEGTEMP_AMX=ON: {negtemp.system_info()}")


def test_the_docs_settings_table_is_the_schemas():
    """docs/semantics.md shows the native table as negtemp.schema.markdown_table() renders it."""
    from negtemp.schema import markdown_table

    page = (ROOT / "docs" / "semantics.md").read_text()
    assert markdown_table() in page, ("docs/semantics.md's settings table differs from the schema; paste "
                                      "`python -c 'from negtemp.schema import markdown_table as t; print(t())'`")
