"""`negtemp scan MODEL`: the under-trained tokens of a model's vocabulary, found and verified, as JSON and HTML."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..model import Model
from ..results import json_value


def parser() -> argparse.ArgumentParser:
    from ..experiment.repetition import VERIFIED_BELOW
    from ..experiment.scan import ScanSettings

    d = ScanSettings()
    ap = argparse.ArgumentParser(
        prog="negtemp scan",
        description="Find a model's under-trained tokens: every token's indicator score, whether T -> 0- reaches "
        "it over a corpus, cone reachability of the strongest candidates, and the repetition probe as "
        f"verification (a candidate the model copies with probability below {VERIFIED_BELOW:g} is verified). "
        "Writes scan.json and scan.html; a few minutes for a small model on 2 cores.",
    )
    ap.add_argument("model", help="GGUF path or model name")
    ap.add_argument("--out", type=Path, default=None,
                    help="directory for scan.json and scan.html (default negtemp-scan, none with --json)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    ap.add_argument("--corpus", type=Path, default=None,
                    help="a UTF-8 text file to teacher-force (default: the help topics of CPython's language "
                    "reference, which every Python ships)")
    ap.add_argument("--windows", type=int, default=d.windows,
                    help=f"windows of the corpus; the odd ones check the cone's predictions (default {d.windows})")
    ap.add_argument("--window", type=int, default=d.window, help=f"tokens per window (default {d.window})")
    ap.add_argument("--top", type=int, default=d.top,
                    help=f"strongest candidates whose cone reachability is decided (default {d.top})")
    ap.add_argument("--verify", type=int, default=d.verify,
                    help=f"strongest candidates the repetition probe verifies (default {d.verify})")
    ap.add_argument("--cone-states", type=int, default=d.cone_states,
                    help=f"observed states spanning the cone; memory is states x vocabulary x 4 bytes "
                    f"(default {d.cone_states})")
    ap.add_argument("--cone-seconds", type=float, default=d.cone_seconds,
                    help=f"time budget of the cone; candidates left are undecided (default {d.cone_seconds:g})")
    return ap


def run(argv: Sequence[str]) -> int:
    args = parser().parse_args(argv)
    from ..experiment.scan import ScanSettings, scan
    from ..experiment.scan_page import render_scan_html

    settings = ScanSettings(windows=args.windows, window=args.window, top=args.top, verify=args.verify,
                            cone_states=args.cone_states, cone_seconds=args.cone_seconds)
    corpus = args.corpus.read_text(encoding="utf-8") if args.corpus is not None else None
    out = args.out if args.out is not None or args.json else Path("negtemp-scan")
    start = time.perf_counter()

    def progress(line: str) -> None:
        print(f"negtemp scan: {time.perf_counter() - start:6.1f} s {line}", file=sys.stderr, flush=True)

    with Model(args.model, n_ctx=max(1024, args.window + 64)) as model:
        report = scan(model, settings, corpus=corpus, progress=progress)
    text = json.dumps(json_value(report), ensure_ascii=False, allow_nan=False)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "scan.json").write_text(text, encoding="utf-8")
        (out / "scan.html").write_text(render_scan_html(report), encoding="utf-8")
    if args.json:
        print(text)
        return 0
    s = report["summary"]
    print(f"{report['model']}: {s['candidates']} candidates, {s['verified under-trained']} of {s['probed']} probed "
          f"verified under-trained")
    for r in report["verified"][:20]:
        print(f"  {r['id']:>7} {r['text']!r:<24} copy probability {r['copy_probability']:.2g}")
    assert out is not None
    print(f"report: {out / 'scan.html'} and {out / 'scan.json'}")
    return 0
