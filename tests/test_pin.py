"""The llama.cpp pin is one commit everywhere, and the patch series round-trips through git."""

import filecmp
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
from scripts import llama_tree, patches


def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def test_vendor_gitlink_names_the_pinned_commit():
    entry = git("ls-files", "--stage", "--", "vendor/llama.cpp").split()
    assert entry, "vendor/llama.cpp is not in the git index: restore the submodule gitlink"
    mode, commit = entry[0], entry[1]
    assert mode == "160000", f"vendor/llama.cpp is tracked as mode {mode}, not as a submodule gitlink"
    assert commit == llama_tree.PIN_COMMIT, f"gitlink {commit} != PIN_COMMIT {llama_tree.PIN_COMMIT}"
    assert "path = vendor/llama.cpp" in (ROOT / ".gitmodules").read_text()


def test_sdist_tree_vendors_the_pinned_commit():
    tree = llama_tree.pristine_tree()
    stamp = tree / ".negtemp-commit"
    if tree == llama_tree.SUBMODULE:
        commit = git("rev-parse", "HEAD", cwd=tree).strip()
    else:
        commit = stamp.read_text().strip()
    assert commit == llama_tree.PIN_COMMIT, f"the build's llama.cpp tree is {commit}, the pin {llama_tree.PIN_COMMIT}"


def test_patch_series_round_trips_through_a_git_checkout(tmp_path, monkeypatch):
    checkout = tmp_path / "llama.cpp"
    patches.checkout(checkout)
    out = tmp_path / "patches"
    out.mkdir()
    monkeypatch.setattr(llama_tree, "PATCHES", out)
    patches.format_series(checkout)
    originals = sorted(p.name for p in (ROOT / "patches").glob("*.patch"))
    assert sorted(p.name for p in out.glob("*.patch")) == originals, "format renamed or lost patches"
    for name in originals:
        assert filecmp.cmp(out / name, ROOT / "patches" / name, shallow=False), (
            f"{name} changed on a round trip without edits: regenerate patches/ with scripts/patches.py format"
        )


def test_round_trip_refuses_a_checkout_without_patch_commits(tmp_path):
    repo = tmp_path / "empty"
    repo.mkdir()
    git("init", "-q", cwd=repo)
    with pytest.raises(llama_tree.TreeError):
        patches.format_series(repo)
