"""`negtemp chat`: a conversation in the model's own template, a line a turn."""

from __future__ import annotations

import argparse
import itertools
import sys
from collections.abc import Sequence
from dataclasses import replace

from ..view import legend, use_color
from .options import (
    chunk_writer,
    color_option,
    model_options,
    open_model,
    parse,
    sampling_config,
    sampling_options,
    temperature,
    temperature_options,
)


def run(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp chat",
        description="Talk with a chat model in its own template, a line a turn, as llama-cli's conversation mode. "
        "/exit or end of input (Ctrl-D) ends the chat. Each reply streams as it is sampled.",
    )
    ap.add_argument("-sys", "--system-prompt", help="the system message that opens the conversation")
    model_options(ap)
    temperature_options(ap)
    sampling_options(ap)
    color_option(ap)
    args = parse(ap, argv)
    color = use_color(args.color, sys.stdout)
    if color:
        print(legend(), file=sys.stderr)
    config = sampling_config(args, **temperature(args))
    messages: list[dict[str, str]] = []
    if args.system_prompt:
        messages.append({"role": "system", "content": args.system_prompt})
    interactive = sys.stdin.isatty()
    with open_model(args) as model:
        if model.chat_prompt("hi") is None:
            raise ValueError(f"{model.path.name} has no chat template (a base model): it cannot chat; "
                             "sample it with `negtemp PROMPT` instead")
        for turn in itertools.count():
            if interactive:
                print("> ", end="", file=sys.stderr, flush=True)
            line = sys.stdin.readline()
            if not line or line.strip() == "/exit":
                break
            if not line.strip():
                continue
            messages.append({"role": "user", "content": line.rstrip("\n")})
            # each turn its own draws (the same seed every turn would repeat its random numbers): turn i takes
            # seed + i, as draw i does, or a fresh seed when none was given
            turn_config = config.resolved() if config.seed is None else replace(config, seed=config.seed + turn)
            # the model keeps the conversation's KV cache (--prefix-cache): each turn evaluates only its new tokens
            c = model.chat(messages, config=turn_config, n_predict=args.n_predict, stop=args.stop,
                           n_probs=1 if color else 0, on_chunk=chunk_writer(color))
            print()
            messages.append({"role": "assistant", "content": c.text})
    return 0
