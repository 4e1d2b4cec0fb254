"""`negtemp experiment`: the negative-temperature experiment and its report."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from ..model import Model
from .options import (
    rpc_option,
)


def run(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp experiment",
        description="Run the negative-temperature experiment and write a report (report.md, plots, raw numbers): "
        "about 5 minutes for SmolLM2 and 12 for gemma-3-270m on 2 cores. docs/experiment.md explains each part.",
    )
    ap.add_argument("-m", "--model", help="GGUF path or model name (default: the default model)")
    ap.add_argument("--out", default="negtemp-report", help="output directory (default negtemp-report)")
    ap.add_argument("--prompts", type=int, default=300,
                    help="prompts sampled at T = -0.001, -0.1, -1 and +0.001 (default 300)")
    ap.add_argument("--windows", type=int, default=32,
                    help="windows of 128 tokens of the corpus for the teacher-forced measure (default 32)")
    ap.add_argument("--probe", type=int, default=30,
                    help="tokens per group in the repetition probe, each with a matched control (default 30)")
    ap.add_argument("--cone", type=int, default=200,
                    help="candidates and reference tokens (each) whose cone reachability is decided (default 200)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples behind each interval (1000)")
    ap.add_argument("--seed", type=int, default=1)
    rpc_option(ap)
    args = ap.parse_args(argv)
    for name in ("probe", "cone", "bootstrap"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    from ..experiment import run_experiment

    with Model(args.model, n_ctx=1024, rpc=args.rpc or ()) as model:
        print(run_experiment(model, args.out, n_prompts=args.prompts, n_windows=args.windows, n_probe=args.probe,
                             n_cone=args.cone, n_boot=args.bootstrap, seed=args.seed))
    return 0
