"""The trainer's peak-memory formula (docs/trainer.md explains each term).

    parent  = 200 MB + 4 n d_raw + 4 n d (1 + P) + documents (caller's)
    worker  = 150 MB + 100 MB libsvm cache + 24 n^2 + 16 n d
    total   = parent + workers * worker

with ``n`` recordings, ``d_raw`` values per merged document, ``d`` SVM features after
preprocessing and ``P`` preprocessing sets.  ``24 n^2`` bounds a worker's six float64
kernel buffers (Gram, squared distances and one kernel, each for train x train and
test x train: 3 * 8 * n_train * n with n_train <= n).
"""
from typing import Optional

from abrunnerd.trainer.options import TrainOptions

MB = 1024 * 1024
AB_RAW_VALUES = 2700  # float values of a merged AB 2.1-beta2 document
AB_FEATURES = 1900  # the widest preprocessing set's features ("basic")
PARENT_BASE = 200 * MB
WORKER_BASE = 150 * MB
LIBSVM_CACHE = 100 * MB


def estimate_peak_memory(n_recordings: int, opts: TrainOptions, workers: int = 1,
                         n_features: Optional[int] = None) -> int:
    n = int(n_recordings)
    d = int(n_features or AB_FEATURES)
    sets = len(opts.preprocessing_values)
    parent = PARENT_BASE + 4 * n * AB_RAW_VALUES + 4 * n * d * (1 + sets)
    worker = WORKER_BASE + LIBSVM_CACHE + 24 * n * n + 16 * n * d
    return int(parent + max(1, workers) * worker)
