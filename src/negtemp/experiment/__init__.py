"""The negative-temperature experiment as a one-command report.

`negtemp experiment -m MODEL --out DIR` (or run_experiment()) writes
report.md, three plots and the raw numbers (results.json, CSVs):

1. side by side: continuations at T = +-0.001 and +-1 for fixed prompts, with
   each chosen token's probability and rank at T = 1 (run);
2. which tokens T = -0.001, -0.1 and -1 draw over a few hundred built-in
   prompts, against T = +0.001 (run);
3. each token's norm and direction in the unembedding matrix (and the
   embedding matrix of an untied model), and the under-trained candidates
   that Land & Bartolo's indicator finds (geometry);
4. the draws against that geometry, every number with a bootstrap interval
   over prompts, in four weightings; tie-aware Spearman (analysis, stats);
5. whether the model can repeat T < 0 tokens and candidates, against
   controls matched on surface form (probe);
6. entropy and expected log-probability against beta = 1/T and against T.

report renders results.json; stats holds the statistics. Needs the
`experiment` extra (gguf, matplotlib).
"""

from .geometry import centroid_distances, embedding_matrix, read_matrices, undertrained_indicator
from .run import run_experiment, undertrained_candidates, varied_prompts

__all__ = [
    "centroid_distances", "embedding_matrix", "read_matrices", "run_experiment", "undertrained_candidates",
    "undertrained_indicator", "varied_prompts",
]
