"""The `negtemp` command: sample a model from the shell, chat with it, or manage the model cache.

Standard output carries only what was asked for (the text, or the JSON);
every diagnostic, warning and progress line goes to standard error.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TextIO

from . import _native, registry
from .config import SamplerPath, SamplingConfig
from .errors import ContextOverflowError, ModelFetchError, ModelLoadError, RemoteError, SamplingError
from .host import DEFAULT_CTX
from .model import DEFAULT_PREFIX_CACHE, Model
from .results import Chunk, Completion
from .schema import SCHEMA, checked, default
from .view import ansi, ansi_completion, legend, render_html, use_color

__all__ = ["main"]

class _PrintVersion(argparse.Action):
    """--version as its own lines (argparse's version action rewraps them into one paragraph)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(_version())
        parser.exit()


def _version() -> str:
    from . import __version__

    patched = f"llama.cpp {_native.llama_commit[:12]} with {_native.patch_count} negtemp patches"
    return (f"negtemp {__version__} ({patched})\n"
            f"CPU backend: {_native.cpu_backend()}; fused sampler: {_native.fused_target()}")


def _bind_negative_values(ap: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """argv with each option that takes a value joined to a value that starts with "-" and is a number
    ("--temp=-1e-30", "--beta=-inf", "--temps=-1,-0.5"): argparse would read those values as options."""
    takes_value = {s for a in ap._actions if a.nargs is None for s in a.option_strings}
    out: list[str] = []
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            out.extend(args[i:])
            break
        if arg in takes_value and i + 1 < len(args) and args[i + 1].startswith("-") and _is_numbers(args[i + 1]):
            out.append(f"{arg}={args[i + 1]}")
            i += 2
            continue
        out.append(arg)
        i += 1
    return out


def _is_numbers(text: str) -> bool:
    """Whether text is a number or comma-separated numbers, inf and nan included."""
    try:
        for part in text.split(","):
            float(part)
    except ValueError:
        return False
    return True


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


_BIAS = re.compile(r"^\s*(\d+)\s*([+-].*)$")


def _logit_bias(text: str) -> tuple[int, float]:
    """TOKEN(+|-)BIAS, as llama-cli's --logit-bias: 15043+1, 15043-1, 15043-inf."""
    m = _BIAS.match(text)
    try:
        if m:
            return int(m.group(1)), float(m.group(2))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(
        f"expected TOKEN_ID(+|-)BIAS, such as 15043+1 or 15043-inf, got {text!r}"
    ) from None


def _model_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("-m", "--model", help=f"GGUF path or model name ({', '.join(registry.MODELS)}); "
                    "default $NEGTEMP_MODEL, else smollm2-135m")
    ap.add_argument("-t", "--threads", type=int, help="CPU threads (default: the CPUs this process may use, at most 8)")
    ap.add_argument("-c", "--ctx-size", type=int,
                    help=f"context size in tokens (default: the model's training context, at most {DEFAULT_CTX}; "
                    "past the training context it warns)")
    ap.add_argument("-ngl", "--n-gpu-layers", "--gpu-layers", type=int, dest="n_gpu_layers",
                    help="layers on the GPU devices of a GPU build, or on the --rpc servers (default -1, all; with "
                    "--rpc, an equal share for this machine and each server; 0: none); a CPU build without "
                    "--rpc has no such device and ignores it")
    ap.add_argument("-mg", "--main-gpu", type=int, help="put the whole model on this GPU device alone (GPU builds)")
    ap.add_argument("--prefix-cache", type=int, default=DEFAULT_PREFIX_CACHE, metavar="N",
                    help="recent prompts whose KV cache the model keeps, so that a prompt sharing a prefix with "
                    f"one (a chat's next turn) evaluates only the rest (default {DEFAULT_PREFIX_CACHE}; 0: off)")
    _rpc_option(ap)


def _rpc_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rpc", default="", metavar="HOST:PORT[,HOST:PORT...]",
                    help="split the model over these llama.cpp RPC servers (see negtemp rpc-server)")


# short flags llama.cpp gives these settings too
_SHORT = {"n_predict": ("-n",), "logit_bias": ("-l",)}


def _value_of(name: str) -> Callable[[str], Any]:
    """argparse's type for a setting: the text as the setting's type, refused in the schema's words."""
    kind = SCHEMA[name].kind

    def parse(text: str) -> Any:
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {SCHEMA[name].expects}, got {text!r}") from None

    return parse


def _setting_option(ap: argparse.ArgumentParser | Any, name: str, **overrides: Any) -> None:
    """The setting's flag, its type, default and help from the schema (sampling_rules.hpp)."""
    s = SCHEMA[name]
    notes = [] if default(name) is None else [f"default {default(name)}"]
    if s.neutral is not None and s.kind != "bool":
        notes.append(f"{s.neutral:g}: off")
    kwargs: dict[str, Any] = {"dest": name, "default": default(name),
                              "help": s.meaning + (f" ({'; '.join(notes)})" if notes else "")}
    if s.kind == "bool":
        kwargs.update(action="store_true", help=s.meaning)
    elif s.kind == "str":
        kwargs.update(choices=_native.sampler_paths())
    elif s.kind == "bias":
        kwargs.update(type=_logit_bias, action="append", default=[], metavar="TOKEN(+|-)BIAS",
                      help=f"{s.meaning}, e.g. 15043+1 or 15043-inf (repeatable)")
    else:
        kwargs.update(type=_value_of(name), metavar=s.kind.upper() if s.kind == "int" else "X")
    kwargs.update(overrides)
    ap.add_argument(*_SHORT.get(name, ()), s.flag, **kwargs)


def _sampling_options(ap: argparse.ArgumentParser) -> None:
    """The options every generating subcommand takes: SamplingConfig's settings, length and stop strings."""
    for name in ("n_predict", "seed", "top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "logit_bias",
                 "ignore_eos", "path"):
        _setting_option(ap, name)
    ap.add_argument("-r", "--reverse-prompt", action="append", default=[], metavar="TEXT", dest="stop",
                    help="stop before TEXT when it is generated (repeatable; matched across tokens, left out)")
    ap.add_argument("--backend-sampling", action="store_true",
                    help="sample in the ggml graph (the GPU path in a GPU build); same as --sampler-path backend")


def _temperature_options(ap: argparse.ArgumentParser) -> None:
    temp = ap.add_mutually_exclusive_group()
    _setting_option(temp, "temp", default=None,
                    help=f"{SCHEMA['temp'].meaning} (default {default('temp')})")
    _setting_option(temp, "beta", help=SCHEMA["beta"].meaning)


_CONFIG_FIELDS = ("seed", "top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "ignore_eos")


def _config(args: argparse.Namespace, **temperature: float | None) -> SamplingConfig:
    path: SamplerPath = "backend" if args.backend_sampling else args.path
    settings: dict[str, Any] = {**temperature, **{name: getattr(args, name) for name in _CONFIG_FIELDS}}
    return SamplingConfig(**settings, logit_bias=dict(args.logit_bias), path=path)


def _temperature(args: argparse.Namespace) -> dict[str, float | None]:
    return {"temp": args.temp} if args.beta is None else {"beta": args.beta}


def _open_model(args: argparse.Namespace) -> Model:
    return Model(args.model, n_ctx=args.ctx_size, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                 main_gpu=args.main_gpu, rpc=args.rpc or (), prefix_cache=args.prefix_cache)


def _color_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--color", "--colour", nargs="?", const="auto", default="never",
                    choices=["auto", "always", "never"],
                    help="colour each generated token by its probability under the model (a fixed scale, "
                    "legend on stderr): --color alone colours a terminal unless NO_COLOR is set; "
                    "--color=always forces it")


def _parse(ap: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    if any(a == "--n" or a.startswith("--n=") for a in argv):
        ap.error("--n is not an option: --draws K makes K draws, -n N generates N tokens (as in llama.cpp)")
    return ap.parse_args(_bind_negative_values(ap, argv))


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


# --- negtemp PROMPT ---------------------------------------------------------


def _generate_parser() -> argparse.ArgumentParser:
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
    _model_options(ap)
    _temperature_options(ap)
    _sampling_options(ap)
    _setting_option(ap, "n_probs", help="also report each step's N most likely tokens, with their log-probabilities "
                    "in the sampled distribution and under the model at T = 1 (in --json; as a table on stderr "
                    "otherwise)")
    _setting_option(ap, "n", help="K independent draws of the prompt, decoded together; draw i uses seed SEED + i. "
                    "The text output puts a '--- draw i: seed S, finish ---' line before each; --json prints a list",
                    metavar="K")
    ap.add_argument("--json", action="store_true", help="print the completion as one JSON object instead of text")
    _color_option(ap)
    ap.add_argument("--html", metavar="FILE",
                    help="also write a self-contained HTML page of the draws: each token's probability when drawn "
                    "and under the model, its rank, and its top alternatives on hover (5 unless --n-probs)")
    ap.add_argument("--mark-undertrained", action="store_true",
                    help="with --html, mark the tokens the experiment's under-trained indicator flags (computes it "
                    "from the model's output matrix first: seconds for a small model)")
    ap.add_argument("--version", action=_PrintVersion, help="show the version, the llama.cpp it patches and the CPU "
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


def _generate(argv: Sequence[str]) -> int:
    ap = _generate_parser()
    args = _parse(ap, argv)
    prompt = _read_prompt(ap, args, sys.stdin)
    if args.mark_undertrained and not args.html:
        ap.error("--mark-undertrained marks tokens in the --html page: give --html FILE too")
    color = not args.json and use_color(args.color, sys.stdout)
    # the views need each token's probability under the model, which comes with the top-N
    n_probs = max(checked("n_probs", args.n_probs), 5 if args.html else 0, 1 if color else 0)
    config = _config(args, **_temperature(args))
    if color:
        print(legend(), file=sys.stderr)
    with _open_model(args) as model:
        if args.n == 1:
            completions = [_stream_one(model, prompt, config, args, n_probs, color)]
        else:
            completions = model.draws(prompt, config=config, n=args.n, n_predict=args.n_predict, stop=args.stop,
                                      n_probs=n_probs)
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
                color: bool) -> Completion:
    """One draw, its text written as it is sampled (coloured with color) unless --json; the Completion."""
    c = model.complete(prompt, config=config, n_predict=args.n_predict, stop=args.stop, n_probs=n_probs,
                       on_chunk=None if args.json else _chunk_writer(color))
    if not args.json:
        print()
    return c


def _chunk_writer(color: bool) -> Callable[[Chunk], None]:
    """Writes each chunk's text to stdout as it comes, in its token's colour with color."""
    def write(chunk: Chunk) -> None:
        _write(ansi(chunk.text, chunk.model_logprob) if color else chunk.text)

    return write


def _undertrained(model: Model) -> Sequence[int]:
    from .experiment import undertrained_candidates

    print("negtemp: finding the under-trained candidates (the experiment's indicator)...", file=sys.stderr)
    return [int(t) for t in undertrained_candidates(model)]


# --- negtemp chat -------------------------------------------------------------


def _chat(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp chat",
        description="Talk with a chat model in its own template, a line a turn, as llama-cli's conversation mode. "
        "/exit or end of input (Ctrl-D) ends the chat. Each reply streams as it is sampled.",
    )
    ap.add_argument("-sys", "--system-prompt", help="the system message that opens the conversation")
    _model_options(ap)
    _temperature_options(ap)
    _sampling_options(ap)
    _color_option(ap)
    args = _parse(ap, argv)
    color = use_color(args.color, sys.stdout)
    if color:
        print(legend(), file=sys.stderr)
    config = _config(args, **_temperature(args))
    messages: list[dict[str, str]] = []
    if args.system_prompt:
        messages.append({"role": "system", "content": args.system_prompt})
    interactive = sys.stdin.isatty()
    with _open_model(args) as model:
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
                           n_probs=1 if color else 0, on_chunk=_chunk_writer(color))
            print()
            messages.append({"role": "assistant", "content": c.text})
    return 0


# --- negtemp sweep ------------------------------------------------------------


def _sweep(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp sweep", description="One continuation per temperature, decoded together in one batch."
    )
    ap.add_argument("prompt")
    _model_options(ap)
    values = ap.add_mutually_exclusive_group(required=True)
    values.add_argument("--temps", type=_floats, help="comma-separated temperatures, e.g. -1,-0.001,0.001,1")
    values.add_argument("--betas", type=_floats, help="comma-separated inverse temperatures")
    _sampling_options(ap)
    ap.add_argument("--json", action="store_true", help="print one JSON object per line")
    args = _parse(ap, argv)
    with _open_model(args) as model:
        runs = model.sweep(args.prompt, args.temps, betas=args.betas, n_predict=args.n_predict,
                           config=_config(args), stop=args.stop)  # each temperature replaces the default
    for c in runs:
        if args.json:
            print(json.dumps(c.to_dict(), ensure_ascii=False))
        else:
            label = f"T={c.config.temp:g}" if c.config.temp is not None else f"beta={c.config.beta:g}"
            print(f"{label}\t{c.stop_type}\t{c.text!r}")
    return 0


# --- the model cache ----------------------------------------------------------


def _serve(argv: Sequence[str]) -> int:
    from .serve import ServeOptions, serve

    args, extra = list(argv), []
    if "--" in args:
        i = args.index("--")
        args, extra = args[:i], args[i + 1:]
    ap = argparse.ArgumentParser(
        prog="negtemp serve",
        description="Serve a model over the OpenAI-compatible API with llama.cpp's own server, built from negtemp's "
        "patched tree: a request's temperature may be negative. Prints the base URL on stdout once the model "
        "has loaded; Ctrl-C or SIGTERM stops it.",
        epilog="Other llama-server flags go after --, e.g. negtemp serve -- --metrics. No authentication: "
        "it binds loopback unless --host says otherwise.",
    )
    ap.add_argument("-m", "--model", help=f"GGUF path or model name ({', '.join(registry.MODELS)}); "
                    "default $NEGTEMP_MODEL, else smollm2-135m")
    ap.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    ap.add_argument("-c", "--ctx-size", type=int, help="the whole context in tokens, shared by the slots, as "
                    f"llama-server's -c (default {DEFAULT_CTX} a slot)")
    ap.add_argument("-np", "--parallel", type=int, default=4, help="requests decoded together (slots; default 4)")
    ap.add_argument("-t", "--threads", type=int, help="CPU threads (default: the CPUs this process may use, at most 8)")
    ap.add_argument("-ngl", "--n-gpu-layers", type=int, default=-1, dest="n_gpu_layers",
                    help="layers on the GPU devices of a GPU build (default -1: all)")
    ap.add_argument("--rpc", help="comma-separated llama.cpp RPC servers (host:port) to offload to")
    ap.add_argument("--cache-ram", type=int, metavar="MIB",
                    help="MiB of host memory for llama-server's cache of recent prompts (default: an eighth of the "
                    "memory available at start, at most 8192, llama-server's own default; 0 turns it off, -1 "
                    "lifts the limit)")
    args_ns = ap.parse_args(args)
    return serve(ServeOptions(
        model=args_ns.model, host=args_ns.host, port=args_ns.port, n_ctx=args_ns.ctx_size,
        parallel=args_ns.parallel, threads=args_ns.threads, n_gpu_layers=args_ns.n_gpu_layers, rpc=args_ns.rpc,
        cache_ram=args_ns.cache_ram, extra=tuple(extra),
    ))


def _pull(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp pull", description="Fetch and verify a named model; print its path.")
    ap.add_argument("name", choices=sorted(registry.MODELS))
    args = ap.parse_args(argv)
    print(registry.pull(args.name))
    return 0


def _list(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp list",
                                 description="The named models, whether each is cached, and where.")
    ap.parse_args(argv)
    print(f"{'NAME':<14} {'CACHED':>9}  {'LICENSE':<18} DESCRIPTION / PATH")
    for spec in registry.MODELS.values():
        path = registry.cache_dir() / spec.filename
        size = f"{path.stat().st_size / 1e6:.0f} MB" if path.exists() else "no"
        print(f"{spec.name:<14} {size:>9}  {spec.license:<18} {spec.description}")
        if path.exists():
            print(f"{'':<14} {'':>9}  {'':<18} {path}")
    return 0


def _rm(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="negtemp rm", description="Remove a named model from the cache.")
    ap.add_argument("name", choices=sorted(registry.MODELS))
    args = ap.parse_args(argv)
    path = registry.cache_dir() / registry.MODELS[args.name].filename
    if not path.exists():
        print(f"negtemp: {args.name} is not cached (looked for {path})", file=sys.stderr)
        return 1
    path.unlink()
    print(f"negtemp: removed {path}", file=sys.stderr)
    return 0


def _experiment(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(
        prog="negtemp experiment",
        description="Run the negative-temperature experiment and write a report (report.md, plots, raw numbers): "
        "about 9 minutes for SmolLM2 and 21 for gemma-3-270m on 2 cores. docs/experiment.md explains each part.",
    )
    ap.add_argument("-m", "--model", help="GGUF path or model name (default: the default model)")
    ap.add_argument("--out", default="negtemp-report", help="output directory (default negtemp-report)")
    ap.add_argument("--prompts", type=int, default=300,
                    help="prompts sampled at T = -0.001, -0.1, -1 and +0.001 (default 300)")
    ap.add_argument("--windows", type=int, default=32,
                    help="windows of 128 tokens of the corpus for the teacher-forced measure (default 32)")
    ap.add_argument("--probe", type=int, default=30,
                    help="tokens per group in the repetition probe, each with a matched control (default 30)")
    ap.add_argument("--hull", type=int, default=200,
                    help="candidates and reference tokens (each) whose convex-hull status is decided (default 200)")
    ap.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples behind each interval (1000)")
    ap.add_argument("--seed", type=int, default=1)
    _rpc_option(ap)
    args = ap.parse_args(argv)
    for name in ("prompts", "windows", "probe", "hull", "bootstrap"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1, got {getattr(args, name)}")
    from .experiment import run_experiment

    with Model(args.model, n_ctx=1024, rpc=args.rpc or ()) as model:
        print(run_experiment(model, args.out, n_prompts=args.prompts, n_windows=args.windows, n_probe=args.probe,
                             n_hull=args.hull, n_boot=args.bootstrap, seed=args.seed))
    return 0


def _rpc_server(argv: Sequence[str]) -> int:
    from .rpc_server import DEFAULT_PORT, RpcServerOptions, serve_rpc

    ap = argparse.ArgumentParser(
        prog="negtemp rpc-server",
        description="Serve this machine's GPUs (else its CPU) to llama.cpp RPC clients, such as negtemp -m MODEL "
        "--rpc HOST:PORT on another machine, which then keep part of the model's layers here. Ctrl-C or "
        "SIGTERM stops it.",
        epilog="The RPC protocol has no authentication or encryption: it binds 127.0.0.1 unless --host says "
        "otherwise, and warns when it does. README, \"Past one machine\".",
    )
    ap.add_argument("--host", default="127.0.0.1",
                    help="IPv4 address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: every network)")
    ap.add_argument("-p", "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    ap.add_argument("-t", "--threads", type=int,
                    help="CPU threads for the layers served (default: the CPUs this process may use, at most 8)")
    ap.add_argument("-c", "--cache", metavar="DIR",
                    help="keep the weights clients send in DIR, so that loading the same model again skips "
                    "sending them (llama.cpp's tensor cache)")
    args = ap.parse_args(argv)
    return serve_rpc(RpcServerOptions(host=args.host, port=args.port, threads=args.threads, cache=args.cache))


def _help(argv: Sequence[str]) -> int:
    if argv and argv[0] in _COMMANDS and argv[0] != "help":
        return _COMMANDS[argv[0]](["--help"])
    _generate_parser().print_help()
    return 0


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "chat": _chat, "sweep": _sweep, "serve": _serve, "rpc-server": _rpc_server, "pull": _pull, "list": _list,
    "rm": _rm, "experiment": _experiment, "help": _help,
}


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    print(f"negtemp: warning: {message}", file=sys.stderr)


def _context_message(e: ContextOverflowError) -> str:
    return (f"the prompt ({e.prompt_tokens} tokens) plus -n {e.n_predict} does not fit the context size "
            f"(-c {e.n_ctx}); raise -c (the model was trained on {e.n_ctx_train} tokens) or lower -n")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (0, 1 for nothing done, 2 for an error, 130 for Ctrl-C)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command: Callable[[Sequence[str]], int] = _generate
    if args and args[0] in _COMMANDS:
        command, args = _COMMANDS[args[0]], args[1:]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            warnings.showwarning = _show_warning
            return command(args)
    except KeyboardInterrupt:
        print("\nnegtemp: interrupted", file=sys.stderr)
        return 130
    except ContextOverflowError as e:
        print(f"negtemp: error: {_context_message(e)}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError, ModelLoadError, ModelFetchError, RemoteError, SamplingError) as e:
        print(f"negtemp: error: {e}", file=sys.stderr)
        return 2

