"""Where tokens sit in the model's embedding and unembedding matrices: norm, centroid, and direction.

With a tied output layer the least likely token is the argmin of h . u_i,
which favours rows of large norm, so "far from the centroid" is nearly
automatic for T < 0 tokens. Direction is measured apart from norm, the way
Land & Bartolo ("Fishing for Magikarp", EMNLP 2024) find under-trained
tokens: the cosine, after removing the mean and the first principal
component, to the mean row of tokens known to be unused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..model import Model

__all__ = [
    "GGUF_CONTROL", "GGUF_NORMAL", "GGUF_UNUSED", "INDICATORS", "Matrices", "Reference", "centroid_distances",
    "embedding_matrix", "first_component", "indicator_variant", "read_matrices", "reference_tokens", "top_candidates",
    "undertrained_indicator",
]

# tokenizer.ggml.token_type values
GGUF_NORMAL, GGUF_CONTROL, GGUF_UNUSED = 1, 3, 5


@dataclass(frozen=True)
class Matrices:
    """A model's token matrices, dequantized to float32 [n_vocab, n_embd], and its token types."""

    input: np.ndarray  # token_embd: the embeddings a token id looks up
    output: np.ndarray  # the unembedding whose rows give the logits: output.weight, or token_embd when tied
    tied: bool
    token_types: np.ndarray  # tokenizer.ggml.token_type per id (1 normal, 3 control, 5 unused, ...)
    frequency_rank: np.ndarray  # 0 = most frequent, by the tokenizer's own order (frequency_source says which)
    frequency_source: str
    bias: np.ndarray | None = None  # output.bias [n_vocab], for the architectures that have one


def read_matrices(path: str | Path) -> Matrices:
    import gguf
    from gguf.quants import dequantize

    reader = gguf.GGUFReader(str(path))
    tensors = {t.name: t for t in reader.tensors}

    def matrix(name: str) -> np.ndarray:
        t = tensors[name]
        return np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32)

    emb = matrix("token_embd.weight")
    tied = "output.weight" not in tensors
    field = reader.fields.get("tokenizer.ggml.token_type")
    types = np.asarray(field.contents(), dtype=np.int32) if field else np.full(emb.shape[0], GGUF_NORMAL, np.int32)
    rank, source = _frequency_rank(reader, emb.shape[0])
    bias = matrix("output.bias").reshape(-1) if "output.bias" in tensors else None
    return Matrices(emb, emb if tied else matrix("output.weight"), tied, types, rank, source, bias)


def _frequency_rank(reader: object, n_vocab: int) -> tuple[np.ndarray, str]:
    """A proxy for how frequent each token was in the tokenizer's training text, as a rank (0 = most frequent).

    A SentencePiece vocabulary scores each piece by its log-probability; a
    BPE vocabulary learned its merges most frequent first, so a token made
    by merge k ranks k (tokens no merge makes, bytes and specials, rank 0
    and are not compared: the probe draws controls among normal tokens).
    """
    fields = reader.fields  # type: ignore[attr-defined]
    scores = fields.get("tokenizer.ggml.scores")
    if scores is not None:
        s = np.asarray(scores.contents(), dtype=np.float64)
        if s.size == n_vocab and np.ptp(s) > 0:
            return np.argsort(np.argsort(-s, kind="stable"), kind="stable"), "the tokenizer's piece scores"
    merges, tokens = fields.get("tokenizer.ggml.merges"), fields.get("tokenizer.ggml.tokens")
    if merges is not None and tokens is not None:
        ids = {t: i for i, t in enumerate(tokens.contents())}
        rank = np.zeros(n_vocab, np.int64)
        for k, merge in enumerate(merges.contents()):
            t = ids.get(merge.replace(" ", "", 1))
            if t is not None and rank[t] == 0:
                rank[t] = k + 1
        return rank, "the BPE merge that makes the token"
    return np.arange(n_vocab), "the token id (the GGUF has neither scores nor merges)"


def embedding_matrix(path: str | Path) -> tuple[np.ndarray, bool]:
    """(token embeddings dequantized to float32 [n_vocab, n_embd], whether the output layer is tied to them)."""
    m = read_matrices(path)
    return m.input, m.tied


def centroid_distances(emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Euclidean distance, uncentred cosine distance 1 - cos(e, c)) of every row to the centroid c of all rows.

    The cosine here measures alignment with the shared mean direction, not
    closeness to the centroid; undertrained_indicator measures direction.
    """
    c = emb.astype(np.float64).mean(axis=0)
    diff = emb - c.astype(np.float32)
    euclid = np.sqrt(np.einsum("ij,ij->i", diff, diff, dtype=np.float64))
    norms = np.linalg.norm(emb, axis=1).astype(np.float64) * np.linalg.norm(c)
    cosine = 1.0 - (emb @ c.astype(np.float32)).astype(np.float64) / np.where(norms > 0, norms, 1.0)
    return euclid, cosine


INDICATORS = ("centred, first PC removed", "first PC removed", "centred", "small input norm")


def first_component(w: np.ndarray, centre: bool = True) -> np.ndarray:
    """The unit first principal direction of the rows of w (of the centred rows when `centre`), oriented so
    that the rows' mean coordinate on it is >= 0 (a sign fixed by the data, not by the eigensolver)."""
    x = w - w.mean(axis=0, dtype=np.float64).astype(np.float32) if centre else w
    _, vecs = np.linalg.eigh((x.T @ x).astype(np.float64))
    pc = vecs[:, -1]
    return pc if float(np.mean(w @ pc.astype(np.float32))) >= 0 else -pc


def indicator_variant(name: str, output: np.ndarray, input_rows: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """One of INDICATORS per token, higher meaning more under-trained.

    The first three are Land & Bartolo's unembedding indicator and two
    variants of it: the cosine to the reference tokens' mean row after
    centring and removing the first principal component (this experiment's
    default), after removing it without centring, and after centring only.
    The fourth is their indicator for untied models, a small input-embedding
    norm (its negative, so that higher is more under-trained).
    """
    if name == "centred, first PC removed":
        return undertrained_indicator(output, reference, "pc")
    if name == "first PC removed":
        return undertrained_indicator(output, reference, "pc-uncentred")
    if name == "centred":
        return undertrained_indicator(output, reference, "mean")
    if name == "small input norm":
        return np.asarray(-np.linalg.norm(input_rows, axis=1), dtype=np.float64)
    raise ValueError(f"unknown indicator {name!r}; one of {', '.join(INDICATORS)}")


def undertrained_indicator(w: np.ndarray, reference: np.ndarray,
                           remove: Literal["mean", "pc", "pc-uncentred"] = "pc") -> np.ndarray:
    """Cosine of each row of w, centred, to the mean centred row of the reference (known unused) tokens.

    ``remove="pc"`` also projects out the first principal component of the
    centred rows (a direction every row shares): this experiment's variant
    of Land & Bartolo's indicator. ``"pc-uncentred"`` removes the first
    principal direction of the raw rows and does not centre; ``"mean"`` only
    centres. Higher means more like the unused tokens.
    """
    if reference.size == 0:
        raise ValueError("the indicator needs at least one known-unused reference token")
    if remove == "pc-uncentred":
        x = w.astype(np.float32, copy=True)
    else:
        x = w - w.mean(axis=0, dtype=np.float64).astype(np.float32)
    if remove in ("pc", "pc-uncentred"):
        pc = first_component(w, centre=remove == "pc").astype(np.float32)
        x = x - np.outer(x @ pc, pc)
    r = x[reference].mean(axis=0, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1).astype(np.float64) * np.linalg.norm(r)
    cos: np.ndarray = (x @ r.astype(np.float32)).astype(np.float64) / np.where(norms > 0, norms, 1.0)
    return cos


def top_candidates(indicator: np.ndarray, reference: np.ndarray, fraction: float = 0.02) -> np.ndarray:
    """The under-trained candidates: the `fraction` of non-reference tokens most like the reference ones."""
    pool = np.setdiff1d(np.arange(indicator.size), reference)
    k = max(1, round(fraction * pool.size))
    return np.sort(pool[np.argsort(-indicator[pool], kind="stable")[:k]])


@dataclass(frozen=True)
class Reference:
    """The tokens known to be unused, by the rule that found each (README and report say which)."""

    unused_type: list[int]  # GGUF token type UNUSED
    unused_control: list[int]  # control tokens no special id, end-of-generation set or chat template uses
    unreachable: list[int]  # normal tokens whose own text does not tokenize back to them

    @property
    def ids(self) -> np.ndarray:
        return np.array(sorted(set(self.unused_type) | set(self.unused_control) | set(self.unreachable)),
                        dtype=np.int64)


def _is_just(ids: np.ndarray, token: int) -> bool:
    return ids.size == 1 and int(ids[0]) == token


def reference_tokens(m: Model, types: np.ndarray) -> Reference:
    """Tokens a model cannot have been trained to produce: never-used specials and unreachable tokens.

    A control token counts as used when it is a special id llama.cpp knows
    (BOS, EOS, end-of-generation, ...) or appears when the model's chat
    template formats a short conversation. A normal token is unreachable
    when its text (valid UTF-8 on its own) tokenizes to anything but itself,
    with or without its leading space (a SentencePiece tokenizer adds one);
    byte pieces that are not UTF-8 alone are skipped (they are reachable in
    sequences).
    """
    used = set(m.eog_tokens)
    try:
        formatted = m.chat_prompt([{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
                                   {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}])
    except ValueError:
        formatted = None
    used.update(m.tokenize(formatted).tolist() if formatted else [])
    used.update(m.tokenize("x", add_special=True).tolist())  # BOS, when the model adds one
    control = np.flatnonzero(types == GGUF_CONTROL)
    unreachable = []
    for t in np.flatnonzero(types == GGUF_NORMAL).tolist():
        try:
            text = m.token_bytes(t).decode("utf-8")
        except UnicodeDecodeError:
            continue
        tries = [text, text[1:]] if text.startswith(" ") and len(text) > 1 else [text]
        if not any(_is_just(m.tokenize(x, add_special=False, parse_special=False), t) for x in tries):
            unreachable.append(t)
    return Reference(
        unused_type=np.flatnonzero(types == GGUF_UNUSED).tolist(),
        unused_control=[int(t) for t in control if int(t) not in used],
        unreachable=unreachable,
    )
