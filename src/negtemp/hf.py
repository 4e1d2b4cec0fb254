"""Negative temperature for Hugging Face transformers causal LMs (``pip install "negtemp[hf]"``).

transformers cannot sample at T < 0 by itself (docs/transformers.md): its
temperature warper refuses T <= 0, its filters run after the temperature,
``generate`` appends a top_k=50 warper unless told otherwise, and a logit
masked to -inf divided by a negative T becomes +inf, the most likely token.

``ChainProcessor`` runs negtemp's chain instead, exactly as
``negtemp.reference`` defines it: masks, logit bias and the mirrored repeat
penalty on the step's raw logits, the filters on the model's own (T = 1)
distribution, then the temperature, in float64. It draws each sequence's
token itself, sequence i from a NumPy generator seeded seed + i (the rule of
``Model.draws``), and hands transformers scores with all the mass on that
token, so whatever ``generate`` applies after it (greedy or sampling, its
default top-k, a temperature) keeps the draw. ``generate`` (one prompt) and
``batch`` (many, left-padded into one ``generate`` call) are the safe way to
run it: they also keep the model's own generation config, whose processors
would run *before* the chain (a repetition_penalty there favours repeats at
T < 0), out of the call.

With ``mode="scores"`` the processor draws nothing: it hands transformers the
chain's log-probabilities as scores, and transformers' own sampler draws from
them, so streamers, stopping criteria, ``output_scores`` and
``compute_transition_scores`` work as usual. transformers' sampler then draws
from exactly the chain's distribution only if nothing after the processor
changes the scores: ``sampling_generation_config()`` makes a GenerationConfig
with every such setting neutral and refuses the ones that are not, and
``neutral_generation_config(model)`` keeps the model's own config out.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, cast

import numpy as np

from .config import SamplingConfig, SamplingOptions, make_config, warn_identical_draws
from .errors import ALL_MASKED, SamplingError
from .results import Completion
from .schema import convert, default

try:
    import torch
    from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList
except ImportError as e:  # pragma: no cover - the message is the point
    raise ImportError(f'negtemp.hf needs torch and transformers ({e}): pip install "negtemp[hf]"') from None

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase
    from typing_extensions import Unpack

__all__ = ["ChainProcessor", "Step", "batch", "chain_probs", "generate", "neutral_generation_config",
           "sampling_generation_config"]

N_PREDICT: int = default("n_predict")


class Step(NamedTuple):
    """One drawn token: its log-probability in the distribution sampled and under the model at T = 1, its
    rank there (1 = the model's most likely), and the step's raw logits with ``keep_logits``."""

    token: int
    logprob: float
    model_logprob: float
    rank: int
    logits: np.ndarray | None


class ChainProcessor(LogitsProcessor):
    """A transformers LogitsProcessor that samples from negtemp's chain.

    ``config``: the chain (any SamplingConfig; its seed is used, drawn when
    None); its ``path`` must be "auto", since the chain runs here in torch.
    ``eog_tokens``: the model's end-of-generation ids, banned when
    ``config.ignore_eos``. ``left_padding``: per row, how many pad tokens
    start it (a left-padded batch), kept out of the repeat penalty's window.

    ``mode="draw"`` (the default): the processor draws each row's token
    itself, row i from a NumPy generator seeded seed + i (``n`` rows), and
    hands transformers scores with all the mass on it; ``steps`` holds, per
    row, each drawn token as a ``Step``. It serves one ``generate`` call: the
    first call's input is taken as the prompt.

    ``mode="scores"``: it returns the chain's log-probabilities (-inf where
    the chain gives probability 0) and transformers' sampler draws, with
    transformers' seed (``torch.manual_seed``); it keeps no state, so it
    serves any number of calls and rows. Run it with
    ``sampling_generation_config()``'s settings, under
    ``neutral_generation_config(model)``.
    """

    def __init__(self, config: SamplingConfig, *, n: int = 1, eog_tokens: Iterable[int] = (),
                 keep_logits: bool = False, mode: Literal["draw", "scores"] = "draw",
                 left_padding: Sequence[int] = ()) -> None:
        if config.path != "auto":
            raise ValueError(f"path={config.path!r} picks one of llama.cpp's samplers; negtemp.hf runs the chain "
                             "in torch: leave path as 'auto'")
        if mode not in ("draw", "scores"):
            raise ValueError(f"mode must be 'draw' or 'scores', got {mode!r}")
        resolved = config.resolved()
        self.mode = mode
        self.seeds: list[int] = [int(s) for s in resolved.native().draw_seeds(n)]
        self.config = replace(config, seed=resolved.seed)
        bias = dict(self.config.logit_bias)
        if self.config.ignore_eos:
            eog = sorted({int(t) for t in eog_tokens})
            if not eog:
                raise ValueError("ignore_eos bans the end-of-generation tokens: give eog_tokens")
            bias.update({t: -math.inf for t in eog})
        # the chain as the reference runs it: ignore_eos is a logit bias of -inf on the model's eog tokens
        self.chain = replace(self.config, ignore_eos=False, logit_bias=bias)
        self.keep_logits = keep_logits
        self.left_padding = [int(k) for k in left_padding]
        self._rngs = [np.random.default_rng(s) for s in self.seeds]
        self._prompt_len: int | None = None
        self.steps: list[list[Step]] = [[] for _ in self.seeds]

    def _with_seeds(self, seeds: Sequence[int]) -> ChainProcessor:
        """This processor drawing row i with seeds[i] (a batch of several prompts: each prompt's draws seeded
        seed + i)."""
        self.seeds = [int(s) for s in seeds]
        self._rngs = [np.random.default_rng(s) for s in self.seeds]
        self.steps = [[] for _ in self.seeds]
        return self

    def probs(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """The chain's distribution for each row (float64, on scores' device), the repeat penalty's history
        being each row's tokens, the prompt's included (as Model and llama-server count it), pads left out."""
        valid = None
        if self.left_padding:
            if len(self.left_padding) != input_ids.shape[0]:
                raise ValueError(f"left_padding gives {len(self.left_padding)} rows, the batch has "
                                 f"{input_ids.shape[0]}")
            pads = torch.tensor(self.left_padding, device=input_ids.device).unsqueeze(-1)
            valid = torch.arange(input_ids.shape[-1], device=input_ids.device) >= pads
        return chain_probs(scores, self.chain, input_ids, valid)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.chain.native().check(scores.shape[-1], [])
        if self.mode == "scores":
            return torch.log(self.probs(input_ids, scores)).to(scores.dtype)
        rows, width = input_ids.shape
        if rows != len(self.seeds):
            raise ValueError(f"this processor was made for {len(self.seeds)} rows (n), the batch has {rows}")
        if self._prompt_len is None:
            self._prompt_len = width
        elif width != self._prompt_len + len(self.steps[0]):
            raise RuntimeError("a ChainProcessor in mode 'draw' serves one generate() call: make a new one for "
                               "each call, or use mode='scores'")
        p = self.probs(input_ids, scores)
        u = torch.tensor([rng.random() for rng in self._rngs], dtype=torch.float64, device=p.device)
        cum = p.cumsum(-1)
        # the first token whose cumulative mass passes u: never one of probability 0
        tokens = torch.searchsorted(cum, (u * cum[:, -1]).unsqueeze(-1), right=True).clamp_(max=p.shape[-1] - 1)
        self._record(scores, p, tokens.squeeze(-1))
        out = torch.full_like(scores, -math.inf)
        out.scatter_(-1, tokens, 0.0)
        return out

    def _record(self, scores: torch.Tensor, p: torch.Tensor, tokens: torch.Tensor) -> None:
        raw = _masked(scores)
        model_lp = torch.log_softmax(raw, dim=-1)
        for row, tok in enumerate(tokens.tolist()):
            rank = int((raw[row] > raw[row, tok]).sum()) + 1
            logits = scores[row].detach().float().cpu().numpy().copy() if self.keep_logits else None
            self.steps[row].append(Step(tok, float(torch.log(p[row, tok])), float(model_lp[row, tok]), rank, logits))


def _masked(scores: torch.Tensor) -> torch.Tensor:
    z = scores.detach().to(torch.float64)
    return torch.where(torch.isfinite(z), z, torch.full_like(z, -math.inf))


def chain_probs(scores: torch.Tensor, config: SamplingConfig, history: torch.Tensor,
                valid: torch.Tensor | None = None) -> torch.Tensor:
    """negtemp.reference.probs for a batch of logits rows in torch (float64): the same steps, in the same
    order, with the same tie-breaking by lower token id. ``history``: each row's tokens for the repeat
    penalty (rows x tokens); ``valid`` (the same shape, bool): which of them count (a left-padded row's
    pads do not), all by default. ``config.ignore_eos`` must already be a logit bias (ChainProcessor does
    it)."""
    if config.ignore_eos:
        raise ValueError("chain_probs does not know the model's end-of-generation tokens: ban them with logit_bias")
    z = _masked(scores)
    rows, vocab = z.shape
    if config.logit_bias:
        ids = torch.tensor(list(config.logit_bias), device=z.device)
        z[:, ids] += torch.tensor(list(config.logit_bias.values()), dtype=z.dtype, device=z.device)
    beta = config.inverse_temperature
    if config.repeat_penalty != 1.0 and history.shape[-1]:
        r = config.repeat_penalty
        window = history[:, -config.penalty_last_n:].to(z.device)
        counts = torch.zeros(rows, vocab, dtype=torch.float64, device=z.device)
        weight = (torch.ones_like(window, dtype=torch.float64) if valid is None
                  else valid[:, -config.penalty_last_n:].to(device=z.device, dtype=torch.float64))
        seen = counts.scatter_add_(1, window, weight) > 0
        # mirrored at T < 0, so that a penalty always makes a repeat less likely
        scaled_up = (z >= 0) if beta < 0 else (z <= 0)
        z = torch.where(seen, torch.where(scaled_up, z * r, z / r), z)
    keep = _survivors(z, config)
    if not keep.any(-1).all():
        raise SamplingError(ALL_MASKED)
    zk = torch.where(keep, z, torch.full_like(z, -math.inf))
    if beta == 0.0:
        w = keep.to(z.dtype)
    elif beta == math.inf:
        w = torch.zeros_like(z).scatter_(1, zk.argmax(-1, keepdim=True), 1.0)
    elif beta == -math.inf:
        low = torch.where(keep, z, torch.full_like(z, math.inf)).amin(-1, keepdim=True)
        w = (keep & (z == low)).to(z.dtype)
    else:
        star = zk.amax(-1, keepdim=True) if beta > 0 else torch.where(keep, z, math.inf).amin(-1, keepdim=True)
        w = torch.where(keep, torch.exp((z - star) * beta), torch.zeros_like(z))
    return w / w.sum(-1, keepdim=True)


def _survivors(z: torch.Tensor, config: SamplingConfig) -> torch.Tensor:
    """Which tokens top-k, top-p and min-p keep, on the model's own distribution (reference step 4)."""
    live = torch.isfinite(z)
    if config.plain:
        return live
    # descending by logit, ties by lower token id: a stable sort of -z
    order = torch.sort(-z, dim=-1, stable=True).indices
    zs = z.gather(-1, order)
    kept = torch.isfinite(zs)
    if config.top_k > 0:
        kept[:, config.top_k:] = False
    if config.top_p < 1.0:
        w = torch.where(kept, torch.exp(zs - zs[:, :1]), torch.zeros_like(zs))
        cum = torch.cumsum(w / w.sum(-1, keepdim=True), -1)
        last = torch.searchsorted(cum, torch.full_like(cum[:, :1], config.top_p), right=False)
        kept &= torch.arange(z.shape[-1], device=z.device) <= last
    if config.min_p > 0.0:
        kept &= zs >= zs[:, :1] + math.log(config.min_p)
    return torch.zeros_like(kept).scatter_(-1, order, kept)


# GenerationConfig's settings that change the scores after a processor (or which tokens may come, or how a
# row is chosen), at their neutral values: what transformers' sampler must run with in mode "scores"
_NEUTRAL: dict[str, Any] = {
    "do_sample": True, "temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": None, "typical_p": 1.0,
    "epsilon_cutoff": 0.0, "eta_cutoff": 0.0, "top_h": None, "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "encoder_no_repeat_ngram_size": 0,
    "bad_words_ids": None, "suppress_tokens": None, "begin_suppress_tokens": None, "sequence_bias": None,
    "num_beams": 1, "num_beam_groups": 1, "penalty_alpha": None, "guidance_scale": None,
    "forced_bos_token_id": None, "forced_eos_token_id": None, "exponential_decay_length_penalty": None,
    "min_length": 0, "min_new_tokens": None, "watermarking_config": None, "diversity_penalty": 0.0,
    "length_penalty": 1.0, "low_memory": None,
}


def sampling_generation_config(**settings: Any) -> GenerationConfig:
    """A GenerationConfig under which transformers' sampler draws exactly the distribution a
    ``ChainProcessor(mode="scores")`` hands it: sampling on, and every setting that would change the scores
    after the processor (temperature, top_k, top_p, min_p, typical_p, the penalties, suppressed or forced
    tokens, a minimum length, beams) neutral. ``settings``: anything else (max_new_tokens, eos_token_id,
    pad_token_id, output_scores, return_dict_in_generate, num_return_sequences, ...). ValueError for a
    setting that would change the distribution: give it to negtemp's SamplingConfig instead."""
    changed = sorted(k for k, v in settings.items() if k in _NEUTRAL and v != _NEUTRAL[k])
    if changed:
        raise ValueError(f"{', '.join(changed)} would change the distribution transformers samples after the "
                         "chain: set the chain's settings in the negtemp SamplingConfig, and leave these out")
    known = GenerationConfig().to_dict()  # type: ignore[no-untyped-call]
    return GenerationConfig(**({k: v for k, v in _NEUTRAL.items() if k in known} | settings))  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def neutral_generation_config(model: PreTrainedModel) -> Iterator[None]:
    """The model's own generation config swapped out for transformers' defaults while the block runs:
    generate() fills every setting a call leaves unset (or at its default) from it, and its processors run
    before the chain. Not for two threads generating with one model at once."""
    saved = model.generation_config
    model.generation_config = GenerationConfig()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        model.generation_config = saved


def _eog_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = model.config.eos_token_id
    if eos is None and tokenizer is not None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(eos)] if isinstance(eos, int) else [int(t) for t in eos]


def _prompt_ids(prompt: str | Sequence[int] | np.ndarray | torch.Tensor,
                tokenizer: PreTrainedTokenizerBase | None) -> list[int]:
    if isinstance(prompt, str):
        if tokenizer is None:
            raise TypeError("a text prompt needs tokenizer=; or give the prompt as token ids")
        ids = [int(t) for t in tokenizer(prompt)["input_ids"]]
    else:
        ids = [int(t) for t in (prompt.tolist() if isinstance(prompt, (np.ndarray, torch.Tensor)) else prompt)]
    if not ids:
        raise ValueError("the prompt has no tokens")
    return ids


def generate(
    model: PreTrainedModel,
    prompt: str | Sequence[int] | np.ndarray | torch.Tensor,
    temp: float | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    config: SamplingConfig | None = None,
    n: int = 1,
    n_predict: int = N_PREDICT,
    keep_logits: bool = False,
    **options: Unpack[SamplingOptions],
) -> list[Completion]:
    """``n`` draws of a transformers causal LM from one prompt, at any temperature, with negtemp's chain.

    Takes Model.complete()'s sampling arguments (``temp`` or ``beta``,
    ``top_k``, ``top_p``, ``min_p``, ``repeat_penalty``, ``penalty_last_n``,
    ``logit_bias``, ``ignore_eos``, ``seed``) or ``config=``. ``prompt``:
    text (with ``tokenizer``) or token ids, used as given. The n sequences
    run as one batch; draw i is seeded seed + i. A draw ends at one of the
    model's end-of-generation tokens (kept as its last token) or after
    ``n_predict`` tokens. Returns negtemp Completions: ``tokens``,
    ``logprobs`` (in the distribution sampled), ``model_logprobs`` and
    ``ranks`` (under the model at T = 1), ``text`` and ``pieces`` (each
    token's text on its own, UTF-8) when a tokenizer is given,
    ``step_logits`` with ``keep_logits``. The model's ``generation_config``
    is swapped out for the call and put back after it, so two calls must not
    run on one model at once.
    """
    return batch(model, [prompt], temp, tokenizer=tokenizer, config=config, n=n, n_predict=n_predict,
                 keep_logits=keep_logits, **options)[0]


def batch(
    model: PreTrainedModel,
    prompts: Sequence[str | Sequence[int] | np.ndarray | torch.Tensor],
    temp: float | None = None,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
    config: SamplingConfig | None = None,
    n: int = 1,
    n_predict: int = N_PREDICT,
    keep_logits: bool = False,
    **options: Unpack[SamplingOptions],
) -> list[list[Completion]]:
    """generate() for several prompts in one ``generate`` call: each prompt's ``n`` draws (draw i seeded
    seed + i, as Model.batch seeds them), the prompts left-padded to one length with an attention mask, so
    each row is its own single-prompt run (the pads are kept out of the repeat penalty's window)."""
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence) or not prompts:
        raise TypeError("prompts must be a non-empty list of prompts (for one prompt, use generate())")
    cfg = make_config(temp, config, dict(options))
    all_ids = [_prompt_ids(p, tokenizer) for p in prompts]
    eog = _eog_tokens(model, tokenizer)
    pad = eog[0] if eog else (tokenizer.pad_token_id if tokenizer is not None and tokenizer.pad_token_id is not None
                              else 0)
    width = max(len(ids) for ids in all_ids)
    rows = [ids for ids in all_ids for _ in range(n)]
    padding = [width - len(ids) for ids in rows]
    processor = ChainProcessor(cfg, n=n, eog_tokens=eog, keep_logits=keep_logits, left_padding=padding)
    processor._with_seeds(processor.seeds * len(all_ids))
    warn_identical_draws(processor.config, n)
    device = next(model.parameters()).device
    input_ids = torch.tensor([[pad] * k + ids for k, ids in zip(padding, rows, strict=True)], dtype=torch.long,
                             device=device)
    mask = torch.tensor([[0] * k + [1] * len(ids) for k, ids in zip(padding, rows, strict=True)], dtype=torch.long,
                        device=device)
    # greedy over the processor's one-hot scores: no sampling warper is added, and the draw is the processor's
    settings = GenerationConfig(  # type: ignore[no-untyped-call]
        do_sample=False, num_beams=1, max_new_tokens=convert("n_predict", n_predict), min_new_tokens=0,
        eos_token_id=None if cfg.ignore_eos else (eog or None), pad_token_id=pad,
    )
    with neutral_generation_config(model), torch.no_grad():
        cast(Any, model).generate(input_ids, attention_mask=mask, generation_config=settings,
                                  logits_processor=LogitsProcessorList([processor]))
    out = [_completion(steps, ids, replace(processor.config, seed=seed), set(eog), tokenizer, model, int(n_predict))
           for steps, ids, seed in zip(processor.steps, rows, processor.seeds, strict=True)]
    return [out[i * n:(i + 1) * n] for i in range(len(all_ids))]


def _completion(steps: list[Step], prompt: list[int],
                config: SamplingConfig, eog: set[int], tokenizer: PreTrainedTokenizerBase | None,
                model: PreTrainedModel, n_predict: int) -> Completion:
    # the processor drew on for rows that had ended (transformers pads them): cut at the first eog
    end = None if config.ignore_eos else next((i + 1 for i, s in enumerate(steps) if s.token in eog), None)
    finished = end is not None
    steps = steps[:end]
    tokens = np.array([s.token for s in steps], dtype=np.int32)
    text, pieces = "", tuple[bytes, ...]()
    if tokenizer is not None:
        body = tokens[:-1] if finished else tokens
        text = str(tokenizer.decode(body.tolist()))
        pieces = tuple(str(tokenizer.decode([int(t)])).encode() for t in tokens)
    settings: dict[str, Any] = {
        "model": str(getattr(model, "name_or_path", "") or type(model).__name__), **config.to_dict(),
        "n_predict": n_predict, "stop": [], "engine": "transformers", "dtype": str(model.dtype),
    }
    logits = [s.logits for s in steps if s.logits is not None]
    return Completion(
        text=text, tokens=tokens, prompt_tokens=np.array(prompt, dtype=np.int32),
        logprobs=np.array([s.logprob for s in steps], dtype=np.float64), config=config, settings=settings,
        step_logits=np.stack(logits) if logits else None,
        stop_type="eos" if finished else "limit",
        model_logprobs=np.array([s.model_logprob for s in steps], dtype=np.float64),
        ranks=np.array([s.rank for s in steps], dtype=np.int64), pieces=pieces,
    )
