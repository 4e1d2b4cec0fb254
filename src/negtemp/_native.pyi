"""Type stub for negtemp._native (private; use the negtemp package)."""

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

class SamplingParams:
    temp: float
    seed: int
    top_k: int
    top_p: float
    min_p: float
    repeat_penalty: float
    backend: bool
    logit_bias: dict[int, float]
    def __init__(self) -> None: ...

class Model:
    def __init__(self, path: str, n_ctx: int, n_threads: int) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def n_ctx_train(self) -> int: ...
    def eog_tokens(self) -> list[int]: ...
    def tokenize(self, text: str, add_special: bool) -> npt.NDArray[np.int32]: ...
    def token_to_piece(self, token: int) -> bytes: ...
    def eval_logits(self, tokens: npt.ArrayLike) -> npt.NDArray[np.float32]: ...
    def generate(
        self,
        prompt: npt.ArrayLike,
        n_predict: int,
        params: SamplingParams,
        on_piece: Callable[[bytes], None] | None,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]: ...

def system_info() -> str: ...
