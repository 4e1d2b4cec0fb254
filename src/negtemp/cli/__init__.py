"""The `negtemp` command: sample a model from the shell, chat with it, or manage the model cache.

Standard output carries only what was asked for (the text, or the JSON);
every diagnostic, warning and progress line goes to standard error.
One module a subcommand; the options they share are options.py's.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from typing import TextIO

from ..errors import ContextOverflowError, ModelFetchError, ModelLoadError, RemoteError, SamplingError
from . import batch, chat, experiment, generate, models, rpc_server, scan, serve, sweep

__all__ = ["main"]


def _help(argv: Sequence[str]) -> int:
    if argv and argv[0] in _COMMANDS and argv[0] != "help":
        return _COMMANDS[argv[0]](["--help"])
    generate.parser().print_help()
    return 0


_COMMANDS: dict[str, Callable[[Sequence[str]], int]] = {
    "chat": chat.run, "sweep": sweep.run, "batch": batch.run, "serve": serve.run, "rpc-server": rpc_server.run,
    "pull": models.pull, "list": models.list_models, "rm": models.rm, "experiment": experiment.run, "scan": scan.run,
    "help": _help,
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
    command: Callable[[Sequence[str]], int] = generate.run
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
