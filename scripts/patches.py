"""Edit the patch series as git commits, the way ollama's Makefile.sync does.

  python -m scripts.patches checkout DIR   # pinned tree + series as commits, to edit
  python -m scripts.patches format DIR     # patches/ regenerated from DIR's commits

`checkout` writes a git repository at DIR: one commit holding the pristine
pinned tree (tagged `negtemp-base`), then one commit per patch, applied with
`git am` so each patch's header becomes its commit message. Edit with the
usual tools (`git commit --fixup`, `git rebase -i negtemp-base`, new commits
for new patches), then `format` rewrites patches/ from negtemp-base..HEAD with
`git format-patch --zero-commit --no-numbered --no-signature`, so the files
carry no hashes, numbering or version lines that would churn on every round
trip. A round trip without edits reproduces patches/ byte for byte.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts import llama_tree

BASE_TAG = "negtemp-base"
# Fixed identity and dates for the base commit: the series' own commits keep
# their authors and dates from the patch files.
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "negtemp", "GIT_AUTHOR_EMAIL": "dev@negtemp",
    "GIT_COMMITTER_NAME": "negtemp", "GIT_COMMITTER_EMAIL": "dev@negtemp",
    "GIT_AUTHOR_DATE": "2000-01-01T00:00:00Z", "GIT_COMMITTER_DATE": "2000-01-01T00:00:00Z",
}


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    full_env = dict(os.environ, GIT_CEILING_DIRECTORIES=str(repo.parent), **(env or {}))
    res = subprocess.run(["git", "-C", str(repo), *args], env=full_env, capture_output=True, text=True)
    if res.returncode != 0:
        raise llama_tree.TreeError(f"git {' '.join(args)} failed in {repo}:\n{res.stdout}{res.stderr}")
    return res.stdout


def checkout(dest: Path, version: str = llama_tree.SDIST_VERSION) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise llama_tree.TreeError(f"{dest} exists and is not empty; pick a new directory")
    src = llama_tree.pristine_tree(version)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(".git"), symlinks=True, dirs_exist_ok=True)
    git(dest, "init", "-q")
    git(dest, "add", "-A", "-f")
    git(dest, "commit", "-q", "--no-verify", "-m", f"llama.cpp from llama-cpp-python {version} (pristine)", env=_GIT_ENV)
    git(dest, "tag", BASE_TAG)
    patches = llama_tree.patch_series()
    if patches:
        committer = {k: v for k, v in _GIT_ENV.items() if k.startswith("GIT_COMMITTER")}
        try:
            git(dest, "am", "-q", "--keep-cr", *map(str, patches), env=committer)
        except llama_tree.TreeError as e:
            raise llama_tree.TreeError(
                f"{e}\nA patch does not apply to this tree. In {dest}: `git am --show-current-patch=diff`, "
                "apply it by hand, `git add` the files, `git am --continue`; then run format."
            ) from None
    print(f"{dest}: {BASE_TAG} + {len(patches)} patch commits; edit, commit, then "
          f"`python -m scripts.patches format {dest}`")


def format_series(repo: Path) -> None:
    count = int(git(repo, "rev-list", "--count", f"{BASE_TAG}..HEAD").strip())
    if count == 0:
        raise llama_tree.TreeError(f"{repo} has no commits after {BASE_TAG}: nothing to write")
    for old in llama_tree.patch_series():
        old.unlink()
    git(repo, "format-patch", "-q", "--zero-commit", "--no-numbered", "--no-signature",
        "-o", str(llama_tree.PATCHES), f"{BASE_TAG}..HEAD")
    for p in llama_tree.patch_series():
        print(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    co = sub.add_parser("checkout", help="write the pinned tree and the series as git commits to DIR")
    co.add_argument("dir", type=Path)
    co.add_argument("--version", default=llama_tree.SDIST_VERSION,
                    help="take llama.cpp from this llama-cpp-python sdist (default: the pin), to move the pin")
    sub.add_parser("format", help="regenerate patches/ from DIR's commits after negtemp-base").add_argument(
        "dir", type=Path)
    args = ap.parse_args(argv)
    try:
        if args.cmd == "checkout":
            checkout(args.dir.resolve(), args.version)
        else:
            format_series(args.dir.resolve())
    except llama_tree.TreeError as e:
        print(f"negtemp: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
