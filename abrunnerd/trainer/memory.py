"""The trainer's peak-memory formula (docs/trainer.md explains each term).

    parent  = 200 MB + 4 n d_raw + 4 n d (1 + P) + documents (caller's)
    worker  = 150 MB + 40 n^2 + 16 n d
    total   = parent + workers * worker

with ``n`` recordings, ``d_raw`` values per merged document, ``d`` SVM features after
preprocessing and ``P`` preprocessing sets.  A worker's six float64 kernel buffers
(Gram, squared distances and one kernel, each for train x train and test x train) take
``3 * 8 * n_train * n <= 24 n^2``; the measured worker peak is higher (1,143 MB at
n = 5,000, 501 MB at n = 3,000: ``benchmarks/train_grid.py --memory N``), so the n^2
coefficient is the measured 40 bytes, which also covers libsvm's kernel cache.
"""
from typing import Optional

from abrunnerd.trainer.options import TrainOptions

MB = 1024 * 1024
AB_RAW_VALUES = 2700  # float values of a merged AB 2.1-beta2 document
AB_FEATURES = 1900  # the widest preprocessing set's features ("basic")
PARENT_BASE = 200 * MB
WORKER_BASE = 150 * MB
WORKER_BYTES_PER_PAIR = 40  # measured, see the docstring


def estimate_peak_memory(n_recordings: int, opts: TrainOptions, workers: int = 1,
                         n_features: Optional[int] = None) -> int:
    n = int(n_recordings)
    d = int(n_features or AB_FEATURES)
    sets = len(opts.preprocessing_values)
    parent = PARENT_BASE + 4 * n * AB_RAW_VALUES + 4 * n * d * (1 + sets)
    worker = WORKER_BASE + WORKER_BYTES_PER_PAIR * n * n + 16 * n * d
    return int(parent + max(1, workers) * worker)
