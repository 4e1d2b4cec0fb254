"""`negtemp batch IN.jsonl --out OUT.jsonl`: a request per input line, decoded together, a result per output
line; a run that is stopped resumes where it stopped (the format: negtemp.jsonl_batch)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from ..jsonl_batch import BadLine, Line, ResultsFile, read_requests
from ..model import Model
from .options import (
    grammar_arguments,
    grammar_options,
    model_options,
    open_model,
    parse,
    sampling_options,
    setting_option,
    temperature,
    temperature_options,
)

# seconds between progress lines when standard error is not a terminal
PLAIN_PROGRESS_EVERY = 10.0


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="negtemp batch",
        description="Sample a request per line of a JSONL file, decoded together, into a JSONL file of results. "
        "A line is a JSON object: prompt (text) or tokens (ids), an optional id (else its line number), and any "
        "sampling setting by its library name (temp, seed, top_k, n_predict, stop, n, n_probs, grammar, "
        "json_schema, ...); the flags below are the defaults a line overrides. Each result is written and "
        "flushed as its request ends; run the same command again after a stop (Ctrl-C, a kill, a power cut) and "
        "it skips the requests already written. At the end the file is in input order.",
    )
    ap.add_argument("input", type=Path, help="the requests, one JSON object a line")
    ap.add_argument("-o", "--out", type=Path, required=True, help="the results, one JSON object a line")
    model_options(ap)
    temperature_options(ap)
    sampling_options(ap)
    grammar_options(ap)
    setting_option(ap, "n", help="K draws of each line (draw i seeded seed + i)")
    setting_option(ap, "n_probs")
    ap.add_argument("--parallel", type=int, metavar="K",
                    help="sequences decoded together (1 to 256; default 32, or fewer when there are fewer draws); "
                    "memory grows with it: a KV cache of K x (the longest prompt + n_predict) tokens")
    ap.add_argument("--strict", action="store_true",
                    help="refuse the whole file, listing every bad line, if any line is not a request that can "
                    "run (by default a bad line gets an error record and the others run)")
    ap.add_argument("--overwrite", action="store_true", help="start over instead of resuming an existing --out")
    seed = next(a for a in ap._actions if a.dest == "seed")
    seed.help = ("seed each line without a seed of its own from a hash of this and the line's id, so that a "
                 "resumed run draws what an uninterrupted one draws (default: a seed drawn for each line)")
    return ap


def _defaults(args: argparse.Namespace) -> dict[str, Any]:
    """The settings a line takes from the command line unless it gives its own. --seed is not one: it seeds
    each line from its id (negtemp.jsonl_batch.line_seed)."""
    out: dict[str, Any] = {**temperature(args), **grammar_arguments(args)}
    for name in ("top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "ignore_eos", "n_predict", "n",
                 "n_probs"):
        out[name] = getattr(args, name)
    out["path"] = "backend" if args.backend_sampling else args.path
    if args.logit_bias:
        out["logit_bias"] = dict(args.logit_bias)
    if args.stop:
        out["stop"] = args.stop
    return out


class Progress:
    """Requests done, their rate and the time left: a bar on a terminal, else a line every so often."""

    def __init__(self, total: int, out: TextIO) -> None:
        self.total, self.done, self.out = total, 0, out
        self.start = self.last = time.monotonic()
        self.bar = None
        if out.isatty():
            from tqdm import tqdm  # type: ignore[import-untyped]

            self.bar = tqdm(total=total, unit="req", file=out, dynamic_ncols=True)

    def advance(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= PLAIN_PROGRESS_EVERY or self.done == self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            print(f"negtemp: {self.done}/{self.total} requests, {rate:.2f}/s, {left:.0f} s left", file=self.out,
                  flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run(argv: Sequence[str]) -> int:
    args = parse(parser(), argv)
    lines = list(read_requests(args.input, _defaults(args), args.seed))
    bad = [x for x in lines if isinstance(x, BadLine)]
    good = [x for x in lines if isinstance(x, Line)]
    with open_model(args) as model:
        if args.strict:
            bad += [BadLine(x.number, x.id, str(e)) for x in good if (e := _check(model, x)) is not None]
            if bad:
                for b in sorted(bad, key=lambda b: b.number):
                    print(f"negtemp: error: {args.input}:{b.number}: {b.error}", file=sys.stderr)
                print(f"negtemp: error: {len(bad)} bad line(s); nothing was run (--strict)", file=sys.stderr)
                return 2
        results = ResultsFile(args.out, overwrite=args.overwrite)
        try:
            errors = _run(model, args, results, good, bad)
        finally:
            results.close()
        results.finish()
    print(f"negtemp: {len(lines)} results in {args.out}" + (f", {errors} of them errors" if errors else ""),
          file=sys.stderr)
    return 1 if errors else 0


def _check(model: Model, line: Line) -> Exception | None:
    try:
        model.check_request(line.request)
    except (ValueError, TypeError) as e:
        return e
    return None


def _run(model: Model, args: argparse.Namespace, results: ResultsFile, good: list[Line], bad: list[BadLine]) -> int:
    """Write every line's result not in the file yet; how many lines are errors."""
    if results.done:
        print(f"negtemp: resuming: {len(results.done)} of {len(good) + len(bad)} results already in {args.out}",
              file=sys.stderr)
    errors = len(bad)
    for b in bad:
        print(f"negtemp: {args.input}:{b.number}: skipped: {b.error}", file=sys.stderr)
        if not results.holds(b.number):
            results.write({"id": b.id, "line": b.number, "error": b.error})
    todo = [x for x in good if not results.holds(x.number)]
    progress = Progress(len(todo), sys.stderr)
    try:
        for i, outcome in model.batch_requests([x.request for x in todo], parallel=args.parallel):
            line = todo[i]
            if isinstance(outcome, BaseException):
                errors += 1
                print(f"negtemp: {args.input}:{line.number}: {outcome}", file=sys.stderr)
                results.write({"id": line.id, "line": line.number, "error": str(outcome)})
            else:
                results.write({"id": line.id, "line": line.number, "completions": [c.to_dict() for c in outcome]})
            progress.advance()
    finally:
        progress.close()
    return errors
