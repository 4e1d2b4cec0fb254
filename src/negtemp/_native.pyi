"""
negtemp's native generation loop over a patched llama.cpp (private: use the negtemp package)
"""
from __future__ import annotations
import collections.abc
import numpy
import numpy.typing
import typing
__all__: list[str] = ['Cancelled', 'ChainSpec', 'Generation', 'Model', 'SamplingError', 'Setting', 'all_masked', 'cpu_backend', 'default_n_ctx', 'default_parallel', 'devices', 'fused_target', 'ggml_type_info', 'json_schema_grammar', 'llama_commit', 'patch_count', 'portable', 'rpc_server', 'sample_tokens', 'sampler_paths', 'sampler_probs', 'sampling_schema', 'system_info', 'unoffered_samplers']
class Setting:
    """
    One sampling setting as every door shows it (sampling_schema())
    """
    def check(self, value: typing.SupportsFloat | typing.SupportsIndex) -> float:
        """
        value, or ValueError with the setting's range when it is outside it
        """
    @property
    def default(self) -> float | None:
        """
        the value when none is given; None where there is none (seed: one is drawn)
        """
    @property
    def expects(self) -> str:
        """
        what a value is, as messages say it: 'an int'
        """
    @property
    def field(self) -> str:
        """
        llama-server's request field ('' if none)
        """
    @property
    def flag(self) -> str:
        """
        negtemp's CLI flag: llama.cpp's where it has one
        """
    @property
    def hi(self) -> float:
        ...
    @property
    def kind(self) -> str:
        """
        the Python type of a value: 'int', 'float', 'bool', 'str' (a choice) or 'bias' (token id -> number)
        """
    @property
    def lo(self) -> float:
        ...
    @property
    def meaning(self) -> str:
        ...
    @property
    def name(self) -> str:
        """
        the library's keyword
        """
    @property
    def neutral(self) -> float | None:
        """
        the value that turns the setting off; None where none does
        """
    @property
    def open(self) -> bool:
        """
        whether the range excludes lo and hi
        """
    @property
    def range(self) -> str:
        """
        the range as text: [0, 1], (0, inf)
        """
    @property
    def server_flag(self) -> str:
        """
        llama-server's flag for its default, which negtemp serve sets to this default ('' if none)
        """
class SamplingError(ValueError):
    pass
class Cancelled(RuntimeError):
    pass
class ChainSpec:
    """
    Every sampling setting, validated (negtemp.SamplingConfig makes these; ValueError names the setting out of range)
    """
    def __init__(self, *, beta: typing.SupportsFloat | typing.SupportsIndex, seed: int, top_k: int, top_p: typing.SupportsFloat | typing.SupportsIndex, min_p: typing.SupportsFloat | typing.SupportsIndex, repeat_penalty: typing.SupportsFloat | typing.SupportsIndex, penalty_last_n: int, logit_bias: dict[int, float], ignore_eos: bool, path: str) -> None:
        ...
    def check(self, n_vocab: typing.SupportsInt | typing.SupportsIndex, history: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex]) -> None:
        """
        ValueError unless the logit bias and the history are token ids of a vocabulary of n_vocab tokens
        """
    def draw_seeds(self, n: int) -> list[int]:
        """
        the seeds of n draws decoded together (seed + i for draw i); ValueError names the range
        """
    @property
    def plain(self) -> bool:
        """
        logit bias, temperature and the draw only
        """
    @property
    def resolved_path(self) -> str:
        """
        the path that runs: 'auto' is 'fused' for a plain chain, else 'chain'
        """
class Model:
    def __init__(self, path: bytes, n_ctx: typing.SupportsInt | typing.SupportsIndex, n_threads: typing.SupportsInt | typing.SupportsIndex, n_gpu_layers: typing.SupportsInt | typing.SupportsIndex, main_gpu: typing.SupportsInt | typing.SupportsIndex, rpc: collections.abc.Sequence[str], rpc_timeout_ms: typing.SupportsInt | typing.SupportsIndex, prefix_slots: int, kv_type: str) -> None:
        ...
    def cancel(self) -> None:
        ...
    def chat_prompt(self, messages: collections.abc.Sequence[tuple[str, str]]) -> str | None:
        ...
    def check_request(self, prompt: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], n_predict: int, grammar: str) -> None:
        """
        ValueError (ContextOverflowError) unless the prompt's tokens and n_predict fit a sequence and the GBNF parses: what a batch checks of each request before it decodes
        """
    def clear_prefix_cache(self) -> None:
        """
        forget every cached prompt (one in use now, when its call ends)
        """
    def close(self) -> None:
        ...
    def eog_tokens(self) -> list[int]:
        ...
    def eval_logits(self, tokens: typing.Annotated[numpy.typing.ArrayLike, numpy.int32]) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def op_backends(self, prompt: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], spec: ChainSpec) -> list[tuple[str, str, str, str]]:
        ...
    def prefix_cache_info(self) -> tuple[int, int, int, int, int, int, bool]:
        """
        (prompts held, tokens held, capacity in tokens, KV bytes, prompt tokens the last cached call reused, prompt tokens it evaluated, whether this model's prefixes are reused)
        """
    def token_to_piece(self, token: typing.SupportsInt | typing.SupportsIndex) -> bytes:
        ...
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> numpy.typing.NDArray[numpy.int32]:
        ...
    @property
    def closed(self) -> bool:
        ...
    @property
    def kv_bytes_per_token(self) -> int:
        ...
    @property
    def n_ctx(self) -> int:
        ...
    @property
    def n_ctx_train(self) -> int:
        ...
    @property
    def n_vocab(self) -> int:
        ...
class Generation:
    @typing.overload
    def __init__(self, model: Model, prompt: typing.Annotated[numpy.typing.ArrayLike, numpy.int32], n_predict: int, spec: ChainSpec, n: int, keep_logits: bool, n_probs: int, grammar: str) -> None:
        """
        n draws of one prompt (stream, complete, draws), on the prefix cache or the backend path
        """
    @typing.overload
    def __init__(self, model: Model, prompts: collections.abc.Sequence[typing.Annotated[numpy.typing.ArrayLike, numpy.int32]], specs: collections.abc.Sequence[ChainSpec], n_predict: collections.abc.Sequence[int], n: collections.abc.Sequence[int], n_probs: collections.abc.Sequence[int], grammars: collections.abc.Sequence[str], keep_logits: collections.abc.Sequence[bool], parallel: int | None) -> None:
        """
        many requests through `parallel` sequences on a context of their own (batch, sweep); None: min(jobs, default_parallel)
        """
    def close(self) -> None:
        ...
    def end(self, sequence: typing.SupportsInt | typing.SupportsIndex) -> None:
        """
        sequence decodes no more (a stop string ended it)
        """
    def next(self) -> list[tuple[int, int, float, bytes, str, numpy.typing.NDArray[numpy.float32] | None, tuple[numpy.typing.NDArray[numpy.int32], numpy.typing.NDArray[numpy.float64], numpy.typing.NDArray[numpy.float64], float, int] | None]] | None:
        ...
    @property
    def jobs(self) -> list[tuple[int, int]]:
        """
        each sequence's (request, draw)
        """
    @property
    def seeds(self) -> list[int]:
        """
        each sequence's seed: its request's seed + its draw
        """
def cpu_backend() -> str:
    """
    which CPU backend runs: the variant's file in a portable build, else what the build targeted
    """
def devices() -> list[tuple[str, str, str, int]]:
    """
    (name, description, kind, memory bytes) of every ggml device this build can use
    """
def fused_target() -> str:
    """
    the instruction set the fused sampler's loops run with
    """
def ggml_type_info(type: typing.SupportsInt | typing.SupportsIndex) -> tuple[int, int] | None:
    """
    (block size, bytes per block) of a ggml tensor type, or None if ggml has no such type
    """
def json_schema_grammar(schema: str) -> str:
    """
    GBNF for a JSON schema given as JSON text (llama.cpp's converter, as llama-server's json_schema)
    """
def portable() -> bool:
    """
    whether ggml's backends are loaded at run time, the best CPU variant for this CPU (a portable build)
    """
def rpc_server(endpoint: str, cache_dir: str, n_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Serve this machine's GPUs (else its CPU) to llama.cpp RPC clients at endpoint (host:port); returns only if the server cannot start
    """
def sample_tokens(logits: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], spec: ChainSpec, n: int, device: str) -> numpy.typing.NDArray[numpy.int32]:
    ...
def sampler_paths() -> list[str]:
    """
    the names of the sampling paths, 'auto' first
    """
def sampler_probs(logits: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], spec: ChainSpec, history: collections.abc.Sequence[typing.SupportsInt | typing.SupportsIndex], device: str) -> numpy.typing.NDArray[numpy.float64]:
    ...
def sampling_schema() -> list[Setting]:
    """
    every sampling setting, in the chain's order: the one table the library, the CLI, negtemp serve and llama-server read
    """
def system_info() -> str:
    """
    which CPU code runs, llama.cpp's build and CPU features (SIMD extensions, backends), for bug reports and benchmarks
    """
def unoffered_samplers() -> dict[str, str]:
    """
    llama.cpp's samplers negtemp does not offer, each with why (the library refuses them by name)
    """
all_masked: str = 'every token was masked (-inf, NaN or +inf logits, logit-bias bans, or filters that left nothing): there is no distribution to sample'
default_n_ctx: int = 2048
default_parallel: int = 32
llama_commit: str = '0c1e57098bba43ac29e6e3b677cdceebdd22334f'
patch_count: int = 12
