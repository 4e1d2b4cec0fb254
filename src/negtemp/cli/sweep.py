"""`negtemp sweep`: one continuation per temperature, decoded together."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from .options import (
    floats,
    model_options,
    open_model,
    parse,
    sampling_config,
    sampling_options,
)


def run(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp sweep", description="One continuation per temperature, decoded together in one batch."
    )
    ap.add_argument("prompt")
    model_options(ap)
    values = ap.add_mutually_exclusive_group(required=True)
    values.add_argument("--temps", type=floats, help="comma-separated temperatures, e.g. -1,-0.001,0.001,1")
    values.add_argument("--betas", type=floats, help="comma-separated inverse temperatures")
    sampling_options(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = parse(ap, argv)
    with open_model(args) as model:
        runs = model.sweep(args.prompt, args.temps, betas=args.betas, n_predict=args.n_predict,
                           config=sampling_config(args), stop=args.stop)  # each temperature replaces the default
    for c in runs:
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
        else:
            label = f"T={c.config.temp:g}" if c.config.temp is not None else f"beta={c.config.beta:g}"
            print(f"{label}\t{c.stop_type}\t{c.text!r}")
    return 0
