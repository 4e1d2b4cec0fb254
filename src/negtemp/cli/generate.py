"""`negtemp PROMPT`: sample a continuation, its draws, their views."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from ..config import SamplingConfig
from ..model import Model
from ..results import Completion
from ..schema import checked
from ..view import ansi_completion, legend, render_html, use_color
from .options import (
    PrintVersion,
    chunk_writer,
    color_option,
    grammar_arguments,
    grammar_options,
    model_options,
    open_model,
    parse,
    sampling_config,
    sampling_options,
    setting_option,
    temperature,
    temperature_options,
)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="negtemp",
        description="Sample a GGUF model at any temperature, negative included (T = -0.001 picks the least likely "
        "tokens). The prompt is an argument, -p TEXT, -f FILE, or standard input (- or a pipe).",
        epilog="subcommands: negtemp chat (a conversation), negtemp sweep (several temperatures in one batch), "
        "negtemp serve (the OpenAI-compatible API), negtemp rpc-server (lend this machine to a split model), "
        "negtemp pull NAME, negtemp list, negtemp rm NAME, negtemp experiment; `negtemp help COMMAND` for each. "
        "A prompt that is one of these words needs -p.",
    )
    ap.add_argument("prompt_pos", nargs="?", metavar="PROMPT", help="prompt text; - reads standard input")
    source = ap.add_mutually_exclusive_group()
    source.add_argument("-p", "--prompt", help="prompt text")
    source.add_argument("-f", "--file", help="read the prompt from FILE (- for standard input)")
    model_options(ap)
    temperature_options(ap)
    sampling_options(ap)
    grammar_options(ap)
    setting_option(ap, "n_probs", help="also report each step's N most likely tokens, with their log-probabilities "
                    "in the sampled distribution and under the model at T = 1 (in --json; as a table on stderr "
                    "otherwise)")
    setting_option(ap, "n", help="K independent draws of the prompt, decoded together; draw i uses seed SEED + i. "
                    "The text output puts a '--- draw i: seed S, STOP_TYPE ---' line before each; --json prints a list",
                    metavar="K")
    ap.add_argument("--json", action="store_true", help="print the completion as one JSON object instead of text")
    color_option(ap)
    ap.add_argument("--html", metavar="FILE",
                    help="also write a self-contained HTML page of the draws: each token's probability when drawn "
                    "and under the model, its rank, and its top alternatives on hover (5 unless --n-probs)")
    ap.add_argument("--mark-undertrained", action="store_true",
                    help="with --html, mark the tokens the experiment's under-trained indicator flags (computes it "
                    "from the model's output matrix first: seconds for a small model)")
    ap.add_argument("--version", action=PrintVersion, help="show the version, the llama.cpp it patches and the CPU "
                    "code that runs, and exit")
    return ap


def _read_prompt(ap: argparse.ArgumentParser, args: argparse.Namespace, stdin: TextIO) -> str:
    given = [x for x in (args.prompt_pos, args.prompt, args.file) if x is not None]
    if len(given) > 1:
        ap.error("give the prompt once: as an argument, with -p, or with -f")
    if args.file is not None and args.file != "-":
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as e:
            ap.error(f"cannot read the prompt file: {e}")
    if given and not (args.file == "-" or args.prompt_pos == "-"):
        return str(given[0])
    if not given and stdin.isatty():
        ap.error("give a prompt: as the first argument, with -p TEXT or -f FILE, or on standard input")
    text = stdin.read()
    if not text:
        ap.error("the prompt from standard input is empty")
    return text


def _print_top(c: Completion, out: TextIO) -> None:
    """Each step's token and the most likely tokens of the distribution it was drawn from."""
    print("step  token  logprob | most likely when sampled: text logprob (model logprob at T = 1)", file=out)
    for i, (tok, lp, top) in enumerate(zip(c.tokens, c.logprobs, c.top_logprobs, strict=True)):
        alts = "  ".join(f"{t.text!r} {t.logprob:.3g} ({t.model_logprob:.3g})" for t in top)
        print(f"{i:4d} {int(tok):6d} {lp:8.3g} | {alts}", file=out)


def run(argv: Sequence[str]) -> int:
    ap = parser()
    args = parse(ap, argv)
    prompt = _read_prompt(ap, args, sys.stdin)
    if args.mark_undertrained and not args.html:
        ap.error("--mark-undertrained marks tokens in the --html page: give --html FILE too")
    color = not args.json and use_color(args.color, sys.stdout)
    # the views need each token's probability under the model, which comes with the top-N
    n_probs = max(checked("n_probs", args.n_probs), 5 if args.html else 0, 1 if color else 0)
    config = sampling_config(args, **temperature(args))
    constraint = grammar_arguments(args)
    if color:
        print(legend(), file=sys.stderr)
    with open_model(args) as model:
        if args.n == 1:
            completions = [_stream_one(model, prompt, config, args, n_probs, color, constraint)]
        else:
            completions = model.draws(prompt, config=config, n=args.n, n_predict=args.n_predict, stop=args.stop,
                                      n_probs=n_probs, **constraint)
            if not args.json:
                for i, c in enumerate(completions):
                    print(f"--- draw {i}: seed {c.config.seed}, {c.stop_type} ---")
                    print(ansi_completion(c) if color else c.text)
        undertrained = _undertrained(model) if args.mark_undertrained else ()
    if args.json:
        dicts = [c.to_dict() for c in completions]
        if not args.n_probs:  # asked for by a view only: not part of the JSON the user asked for
            for d in dicts:
                for key in ("top_logprobs", "model_logprobs", "ranks"):
                    d.pop(key, None)
        print(json.dumps(dicts[0] if args.n == 1 else dicts, ensure_ascii=False))
    elif args.n_probs:
        for c in completions:
            _print_top(c, sys.stderr)
    if args.html:
        page = render_html(completions, prompt=prompt, model=model.path.name, undertrained=undertrained)
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(page)
        print(f"negtemp: wrote {args.html}", file=sys.stderr)
    return 0


def _stream_one(model: Model, prompt: str, config: SamplingConfig, args: argparse.Namespace, n_probs: int,
                color: bool, constraint: dict[str, Any]) -> Completion:
    """One draw, its text written as it is sampled (coloured with color) unless --json; the Completion."""
    c = model.complete(prompt, config=config, n_predict=args.n_predict, stop=args.stop, n_probs=n_probs,
                       on_chunk=None if args.json else chunk_writer(color), **constraint)
    if not args.json:
        print()
    return c


def _undertrained(model: Model) -> Sequence[int]:
    from ..experiment import undertrained_candidates

    print("negtemp: finding the under-trained candidates (the experiment's indicator)...", file=sys.stderr)
    return [int(t) for t in undertrained_candidates(model)]
