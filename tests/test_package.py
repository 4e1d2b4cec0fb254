"""The package's shape: the stub matches the extension, and the patch series is documented."""

import ast
import inspect
import typing
from pathlib import Path

import negtemp
from negtemp import _native

ROOT = Path(__file__).resolve().parent.parent


def stub_names() -> tuple[set[str], dict[str, set[str]]]:
    """(module-level functions, {class: members}) declared in _native.pyi."""
    tree = ast.parse((ROOT / "src" / "negtemp" / "_native.pyi").read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    classes = {
        node.name: {
            n.target.id if isinstance(n, ast.AnnAssign) else n.name
            for n in node.body
            if isinstance(n, (ast.FunctionDef, ast.AnnAssign))
        } - {"__init__"}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }
    return functions, classes


def test_type_stub_lists_exactly_what_the_extension_defines():
    functions, classes = stub_names()
    public = {n for n in dir(_native) if not n.startswith("_")}
    assert functions | classes.keys() == public, f"stub and module disagree: {(functions | classes.keys()) ^ public}"
    for cls, declared in classes.items():
        obj = getattr(_native, cls)
        inherited = set(dir(BaseException)) if issubclass(obj, BaseException) else set()
        members = {n for n in dir(obj) if not n.startswith("_")} - inherited
        assert declared == members, f"{cls}: stub and module disagree on {declared ^ members}"


def test_package_ships_py_typed_and_exports_its_api():
    assert (Path(negtemp.__file__).parent / "py.typed").exists()
    for name in negtemp.__all__:
        assert hasattr(negtemp, name)
    # the sampling keywords are typed once, in SamplingOptions, for complete, sweep and generate
    assert "beta" in typing.get_type_hints(negtemp.config.SamplingOptions)
    for method in (negtemp.Model.complete, negtemp.Model.sweep):
        assert inspect.signature(method).parameters["options"].annotation == "Unpack[SamplingOptions]"


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
