"""The options the subcommands share, each from one place: a model's, the sampling settings' (from the
schema), the temperature's, colour; and the parsing that lets negative numbers be values."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .. import _native, registry
from ..config import SamplerPath, SamplingConfig
from ..host import DEFAULT_CTX
from ..model import DEFAULT_PREFIX_CACHE, Model
from ..results import Chunk
from ..schema import SCHEMA, default
from ..view import ansi


class PrintVersion(argparse.Action):
    """--version as its own lines (argparse's version action rewraps them into one paragraph)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(version_text())
        parser.exit()


def version_text() -> str:
    from .. import __version__

    patched = f"llama.cpp {_native.llama_commit[:12]} with {_native.patch_count} negtemp patches"
    return (f"negtemp {__version__} ({patched})\n"
            f"CPU backend: {_native.cpu_backend()}; fused sampler: {_native.fused_target()}")


def bind_negative_values(ap: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
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


def floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


_BIAS = re.compile(r"^\s*(\d+)\s*([+-].*)$")


def logit_bias(text: str) -> tuple[int, float]:
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


def model_options(ap: argparse.ArgumentParser) -> None:
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
    rpc_option(ap)


def rpc_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--rpc", default="", metavar="HOST:PORT[,HOST:PORT...]",
                    help="split the model over these llama.cpp RPC servers (see negtemp rpc-server)")


# short flags llama.cpp gives these settings too
_SHORT = {"n_predict": ("-n",), "logit_bias": ("-l",)}


def _value_of(name: str) -> Callable[[str], Any]:
    """argparse's type for a setting: the text as the setting's type, refused in the schema's words."""
    kind = SCHEMA[name].kind

    def from_text(text: str) -> Any:
        try:
            return int(text) if kind == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be {SCHEMA[name].expects}, got {text!r}") from None

    return from_text


def setting_option(ap: argparse.ArgumentParser | Any, name: str, **overrides: Any) -> None:
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
        kwargs.update(type=logit_bias, action="append", default=[], metavar="TOKEN(+|-)BIAS",
                      help=f"{s.meaning}, e.g. 15043+1 or 15043-inf (repeatable)")
    else:
        kwargs.update(type=_value_of(name), metavar=s.kind.upper() if s.kind == "int" else "X")
    kwargs.update(overrides)
    ap.add_argument(*_SHORT.get(name, ()), s.flag, **kwargs)


def sampling_options(ap: argparse.ArgumentParser) -> None:
    """The options every generating subcommand takes: SamplingConfig's settings, length and stop strings."""
    for name in ("n_predict", "seed", "top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "logit_bias",
                 "ignore_eos", "path"):
        setting_option(ap, name)
    ap.add_argument("-r", "--reverse-prompt", action="append", default=[], metavar="TEXT", dest="stop",
                    help="stop before TEXT when it is generated (repeatable; matched across tokens, left out)")
    ap.add_argument("--backend-sampling", action="store_true",
                    help="sample in the ggml graph (the GPU path in a GPU build); same as --sampler-path backend")


def grammar_options(ap: argparse.ArgumentParser) -> None:
    """--grammar / --json-schema and their -file forms, as llama.cpp's tools name them."""
    group = ap.add_mutually_exclusive_group()
    group.add_argument("--grammar", metavar="GBNF", help="restrict the text to this GBNF grammar (its start rule is "
                       "root): the tokens it does not allow are masked, then the chain runs on the rest")
    group.add_argument("--grammar-file", metavar="FILE", help="the --grammar from FILE")
    group.add_argument("-j", "--json-schema", metavar="SCHEMA", help="restrict the text to JSON this JSON schema "
                       "validates (converted to a grammar by llama.cpp's converter)")
    group.add_argument("--json-schema-file", metavar="FILE", help="the --json-schema from FILE")


def grammar_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """The grammar= or json_schema= keyword the grammar options give (none when none was given)."""
    if args.grammar_file:
        return {"grammar": Path(args.grammar_file).read_text(encoding="utf-8")}
    if args.grammar is not None:
        return {"grammar": args.grammar}
    text = Path(args.json_schema_file).read_text(encoding="utf-8") if args.json_schema_file else args.json_schema
    if text is None:
        return {}
    try:
        return {"json_schema": json.loads(text)}
    except ValueError as e:
        raise ValueError(f"--json-schema is not JSON: {e}") from None


def temperature_options(ap: argparse.ArgumentParser) -> None:
    temp = ap.add_mutually_exclusive_group()
    setting_option(temp, "temp", default=None, help=f"{SCHEMA['temp'].meaning} (default {default('temp')})")
    setting_option(temp, "beta", help=SCHEMA["beta"].meaning)


_CONFIG_FIELDS = ("seed", "top_k", "top_p", "min_p", "repeat_penalty", "penalty_last_n", "ignore_eos")


def sampling_config(args: argparse.Namespace, **temp_or_beta: float | None) -> SamplingConfig:
    path: SamplerPath = "backend" if args.backend_sampling else args.path
    settings: dict[str, Any] = {**temp_or_beta, **{name: getattr(args, name) for name in _CONFIG_FIELDS}}
    return SamplingConfig(**settings, logit_bias=dict(args.logit_bias), path=path)


def temperature(args: argparse.Namespace) -> dict[str, float | None]:
    return {"temp": args.temp} if args.beta is None else {"beta": args.beta}


def open_model(args: argparse.Namespace) -> Model:
    return Model(args.model, n_ctx=args.ctx_size, n_threads=args.threads, n_gpu_layers=args.n_gpu_layers,
                 main_gpu=args.main_gpu, rpc=args.rpc or (), prefix_cache=args.prefix_cache)


def color_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--color", "--colour", nargs="?", const="auto", default="never",
                    choices=["auto", "always", "never"],
                    help="colour each generated token by its probability under the model (a fixed scale, "
                    "legend on stderr): --color alone colours a terminal unless NO_COLOR is set; "
                    "--color=always forces it")


def parse(ap: argparse.ArgumentParser, argv: Sequence[str]) -> argparse.Namespace:
    if any(a == "--n" or a.startswith("--n=") for a in argv):
        ap.error("--n is not an option: --draws K makes K draws, -n N generates N tokens (as in llama.cpp)")
    return ap.parse_args(bind_negative_values(ap, argv))


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def chunk_writer(color: bool) -> Callable[[Chunk], None]:
    """Writes each chunk's text to stdout as it comes, in its token's colour with color."""
    def show(chunk: Chunk) -> None:
        _write(ansi(chunk.text, chunk.model_logprob) if color else chunk.text)

    return show
