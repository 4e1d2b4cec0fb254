"""The `negtemp` command: sample a model from the shell, or fetch one."""

from __future__ import annotations

import argparse
import json
import sys

from . import models
from .config import DEFAULT_TEMP, SamplingConfig
from .errors import ModelFetchError, ModelLoadError, SamplingError
from .model import Model

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="negtemp",
        description="Sample a GGUF model at any temperature, negative included (T = -0.001 picks the least likely "
        "tokens). `negtemp pull NAME` fetches a named model; `negtemp sweep PROMPT --temps ...` "
        "samples several temperatures in one batch.",
    )
    ap.add_argument("prompt_pos", nargs="?", metavar="PROMPT", help="prompt text (or use -p)")
    ap.add_argument("-p", "--prompt", help="prompt text")
    ap.add_argument("-m", "--model", help=f"GGUF path or model name ({', '.join(models.MODELS)}); "
                    "default $NEGTEMP_MODEL, else smollm2-135m")
    temp = ap.add_mutually_exclusive_group()
    temp.add_argument("--temp", type=float, help=f"temperature T (default {DEFAULT_TEMP}); 0 is greedy")
    temp.add_argument("--beta", type=float, help="inverse temperature 1/T instead of --temp (-inf: anti-greedy)")
    ap.add_argument("-n", "--n-predict", type=int, default=128, help="tokens to generate (default 128)")
    _chain_options(ap)
    ap.add_argument("--backend-sampling", action="store_true",
                    help="sample in the ggml graph (the GPU path in a GPU build); same as --sampler-path backend")
    ap.add_argument("-t", "--threads", type=int, help="CPU threads (default: up to 8)")
    ap.add_argument("-c", "--ctx-size", type=int,
                    help="context size in tokens (default: the model's training context, at most 2048)")
    ap.add_argument("--json", action="store_true", help="print the completion as one JSON object instead of text")
    return ap


def _chain_options(ap: argparse.ArgumentParser) -> None:
    """The sampling options shared by generation and the sweep (SamplingConfig's fields)."""
    ap.add_argument("--seed", type=int, help="random seed (default: random, reported with --json)")
    ap.add_argument("--top-k", type=int, default=0, help="top-k (default 0: off)")
    ap.add_argument("--top-p", type=float, default=1.0, help="top-p (default 1.0: off)")
    ap.add_argument("--min-p", type=float, default=0.0, help="min-p (default 0.0: off)")
    ap.add_argument("--repeat-penalty", type=float, default=1.0,
                    help="repeat penalty (default 1.0: off); discourages repeats at T < 0 too")
    ap.add_argument("--repeat-last-n", type=int, default=64, help="tokens the repeat penalty looks back on (64)")
    ap.add_argument("--ignore-eos", action="store_true", help="never stop at an end-of-generation token")
    ap.add_argument("--sampler-path", choices=["auto", "fused", "chain", "backend"], default="auto",
                    help="where the chain runs (default auto: the fused sampler for the plain chain, else "
                    "llama.cpp's chain)")


def _config(args: argparse.Namespace, **temperature: float | None) -> SamplingConfig:
    path = "backend" if getattr(args, "backend_sampling", False) else args.sampler_path
    return SamplingConfig(
        **temperature, seed=args.seed, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
        repeat_penalty=args.repeat_penalty, penalty_last_n=args.repeat_last_n, ignore_eos=args.ignore_eos,
        path=path,
    )


def _pull(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp pull", description="Fetch and verify a named model.")
    ap.add_argument("name", choices=sorted(models.MODELS))
    args = ap.parse_args(argv)
    print(models.pull(args.name))
    return 0


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _sweep(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp sweep", description="One continuation per temperature, decoded together in one batch."
    )
    ap.add_argument("prompt")
    ap.add_argument("-m", "--model", help="GGUF path or model name")
    values = ap.add_mutually_exclusive_group(required=True)
    values.add_argument("--temps", type=_floats, help="comma-separated temperatures, e.g. -1,-0.001,0.001,1")
    values.add_argument("--betas", type=_floats, help="comma-separated inverse temperatures")
    ap.add_argument("-n", "--n-predict", type=int, default=64, help="tokens per temperature (default 64)")
    _chain_options(ap)
    ap.add_argument("-t", "--threads", type=int)
    ap.add_argument("-c", "--ctx-size", type=int, help="context size (default: as for generation)")
    ap.add_argument("--json", action="store_true", help="print one JSON object per line")
    # argparse would take "-1,-0.001" for an option; bind it to its flag first
    joined: list[str] = []
    for arg in argv:
        if joined and joined[-1] in ("--temps", "--betas"):
            joined[-1] += "=" + arg
        else:
            joined.append(arg)
    args = ap.parse_args(joined)
    with Model(args.model, n_ctx=args.ctx_size, n_threads=args.threads) as model:
        runs = model.sweep(args.prompt, args.temps, betas=args.betas, n_predict=args.n_predict,
                           config=_config(args))  # each temperature replaces the default
    for c in runs:
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
        else:
            label = f"T={c.config.temp:g}" if c.config.temp is not None else f"beta={c.config.beta:g}"
            print(f"{label}\t{c.text!r}")
    return 0


def _experiment(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp experiment",
        description="Run the negative-temperature experiment and write a report (report.md, plots, raw numbers).",
    )
    ap.add_argument("-m", "--model", help="GGUF path or model name (default: the default model)")
    ap.add_argument("--out", default="negtemp-report", help="output directory (default negtemp-report)")
    ap.add_argument("--prompts", type=int, default=300, help="prompts sampled at T = -0.001 (default 300)")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    from .experiment import run_experiment

    print(run_experiment(args.model, args.out, n_prompts=args.prompts, seed=args.seed))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["experiment"]:
            return _experiment(argv[1:])
        if argv[:1] == ["pull"]:
            return _pull(argv[1:])
        if argv[:1] == ["sweep"]:
            return _sweep(argv[1:])
        ap = _parser()
        args = ap.parse_args(argv)
        prompt = args.prompt if args.prompt is not None else args.prompt_pos
        if prompt is None:
            ap.error("give a prompt, as the first argument or with -p")
        with Model(args.model, n_ctx=args.ctx_size, n_threads=args.threads) as model:
            def stream(s: str) -> None:
                sys.stdout.write(s)
                sys.stdout.flush()

            temperature = {"temp": args.temp} if args.beta is None else {"beta": args.beta}
            c = model.complete(
                prompt, config=_config(args, **temperature), n_predict=args.n_predict,
                on_text=None if args.json else stream,
            )
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
        else:
            print()
        return 0
    except KeyboardInterrupt:
        print("\nnegtemp: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ModelLoadError, ModelFetchError, SamplingError) as e:
        print(f"negtemp: error: {e}", file=sys.stderr)
        return 2
