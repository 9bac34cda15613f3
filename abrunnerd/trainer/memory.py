"""The trainer's memory budget and peak-memory formula (docs/trainer.md explains each term).

Kernel matrices are the only term that grows as n^2: a (preprocessing, fold) unit keeps
two float64 matrices for train x train and two for test x train (Gram + the current
kernel, ``kernels.py``): ``16 n_train n`` bytes.  They must fit the *kernel budget*
(default: half of ``max_memory``, or of the available RAM).  ``plan_units`` runs as many
units at once as the budget holds; when not even one fits, units fall back to libsvm
computing its own kernel rows in a cache of the budget's share (memory O(cache), not
O(n^2); slower, same model search).

    parent  = 200 MB + 4 n d_raw + 4 n d (1 + P) + documents (caller's, released as merged)
    worker  = 150 MB + 16 n d + (16 n_train n  if precomputed, else the libsvm cache)
    total   = parent + concurrent units * worker
"""
import math
from typing import NamedTuple, Optional

from abrunnerd.features_bundle import available_memory
from abrunnerd.trainer.options import TrainOptions

MB = 1024 * 1024
AB_RAW_VALUES = 2700  # float values of a merged AB 2.1-beta2 document
AB_FEATURES = 1900  # the widest preprocessing set's features ("basic")
PARENT_BASE = 200 * MB
WORKER_BASE = 150 * MB
KERNEL_SHARE = 0.5  # of max_memory (or available RAM) for kernel matrices
FALLBACK_MEMORY = 4 * 1024 ** 3  # where neither max_memory nor /proc/meminfo says
SVM_CACHE_MB = 100  # libsvm's cache (Gaia's setting) for precomputed kernels
MIN_CACHE_MB = 40


class UnitPlan(NamedTuple):
    """How the grid's units run: at most ``concurrent`` at once, each ``mode`` with ``cache_mb``."""

    concurrent: int
    mode: str  # "precomputed" or "libsvm"
    cache_mb: float
    kernel_bytes: int  # of one unit in precomputed mode


def kernel_budget(max_memory: Optional[int] = None) -> int:
    """Bytes the kernel matrices of all concurrent units may take."""
    total = max_memory or available_memory() or FALLBACK_MEMORY
    return int(total * KERNEL_SHARE)


def unit_kernel_bytes(n_recordings: int, nfold: int) -> int:
    """Gram + kernel buffer for train x train and test x train of the largest fold."""
    n = int(n_recordings)
    n_train = min(n, int(math.ceil(n * (nfold - 1) / float(nfold))) + nfold)  # slack for uneven folds
    return 16 * n_train * n


def plan_units(n_recordings: int, nfold: int, workers: int, budget: int) -> UnitPlan:
    """As many concurrent precomputed units as the budget holds; none fits -> libsvm's cache."""
    k = unit_kernel_bytes(n_recordings, nfold)
    workers = max(1, int(workers))
    fit = int(budget // k) if k else workers
    if fit >= 1:
        return UnitPlan(min(workers, fit), "precomputed", float(SVM_CACHE_MB), k)
    return UnitPlan(workers, "libsvm", max(float(MIN_CACHE_MB), budget / float(workers) / MB), k)


def estimate_peak_memory(n_recordings: int, opts: TrainOptions, workers: int = 1,
                         n_features: Optional[int] = None, memory_budget: Optional[int] = None) -> int:
    n = int(n_recordings)
    d = int(n_features or AB_FEATURES)
    sets = len(opts.preprocessing_values)
    plan = plan_units(n, opts.nfold, workers, memory_budget or kernel_budget())
    parent = PARENT_BASE + 4 * n * AB_RAW_VALUES + 4 * n * d * (1 + sets)
    kernels = plan.kernel_bytes if plan.mode == "precomputed" else int(plan.cache_mb * MB)
    worker = WORKER_BASE + 16 * n * d + kernels
    return int(parent + plan.concurrent * worker)
