"""The negative-temperature experiment as a one-command report.

`negtemp experiment -m MODEL --out DIR` (or run_experiment()) writes
report.md, three plots and the raw numbers (results.json, CSVs):

1. side by side: continuations at T = +-0.001 and +-1 for fixed prompts, with
   each chosen token's probability and rank at T = 1 (run);
2. free-running draws at T = -0.001, -0.1, -1 and +0.001 over a templates x
   subjects grid of prompts, and a seed check that changes one thing at a time
   (run);
3. each token's norm, direction and first-PC coordinate in the output matrix
   (and the input matrix of an untied model), the known-unused tokens, and the
   under-trained candidates of four indicator variants (geometry);
4. the primary measure: the argmin (T -> 0-) at every position of a natural-text
   corpus, teacher-forced (corpus);
5. the statistics: cluster and crossed bootstraps, nulls matched on norm, a
   context-free baseline, AUCs and a regression over the whole vocabulary
   (analysis, stats);
6. which candidates and reference tokens some hidden state in the cone of the
   observed ones makes the strict argmin (or argmax), checked on held-out text
   (cone);
7. whether the model can repeat T < 0 tokens and candidates, against controls
   matched on kind, frequency and norm (probe);
8. entropy and expected log-probability against beta = 1/T and against T.

scan is `negtemp scan`: the indicator, the corpus's argmins, the cone and the
repetition probe as one report on a model's under-trained tokens.

report renders results.json. Needs the `experiment` extra (gguf, matplotlib,
scipy).
"""

from .geometry import centroid_distances, embedding_matrix, read_matrices, undertrained_indicator
from .run import run_experiment, undertrained_candidates, varied_prompts

__all__ = [
    "centroid_distances", "embedding_matrix", "read_matrices", "run_experiment", "undertrained_candidates",
    "undertrained_indicator", "varied_prompts",
]
