"""The trainer's memory budget and peak-memory formula (docs/trainer.md explains each term
and the measured peaks it was calibrated against).

Kernel matrices are the only term that grows as n^2: a (preprocessing, fold) unit keeps
two float64 matrices for train x train and two for test x train (Gram + the current
kernel, ``kernels.py``): ``16 n_train n`` bytes.  They must fit the *kernel budget*
(default: half of ``max_memory``, or of the available RAM).  ``plan_units`` runs as many
units at once as the budget holds; when not even one fits, units fall back to libsvm
computing its own kernel rows in a cache of the budget's share (memory O(cache), not
O(n^2); slower, same model search).

    data    = 12.9 KB n  +  P 8 n d          (bundle + merged frame; each set's frame + feature matrix)
    unit    = 8 n d + kernels + libsvm cache (in-process: + the kernels again while a matrix < 32 MB)
    final   = 8 n d + 8 n^2 + libsvm cache   (or 8 n d + cache above the budget)
    in one process:   110 MB + data + max(unit, final)
    W workers:        110 MB + data + max(W (110 MB + 8 n d + unit), final)
"""
import math
import os
from typing import NamedTuple, Optional

from abrunnerd.features_bundle import available_memory
from abrunnerd.trainer.options import TrainOptions

MB = 1024 * 1024
BASE = 110 * MB  # one interpreter with numpy, scipy, scikit-learn and the trainer: 101 MB measured, + heap
# per recording: the merged frame (ab-real-1: 10,568 bytes, ~2,640 float32 values) and the features bundle
# read whole (2.1 KB compressed)
MERGED_BYTES = 12900
SET_FEATURES = 680  # SVM features of the widest preprocessing set (basic/normalized/gaussianized: 672 on ab-real-1)
HEAP_KEEP = 32 * MB  # glibc's largest mmap threshold: smaller freed matrices stay resident in its heap
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


def _n_train(n: int, nfold: int) -> int:
    return min(n, int(math.ceil(n * (nfold - 1) / float(nfold))) + nfold)  # slack for uneven folds


def unit_kernel_bytes(n_recordings: int, nfold: int) -> int:
    """Gram + kernel buffer for train x train and test x train of the largest fold."""
    n = int(n_recordings)
    return 16 * _n_train(n, nfold) * n


def plan_units(n_recordings: int, nfold: int, workers: int, budget: int) -> UnitPlan:
    """As many concurrent precomputed units as the budget holds; none fits -> libsvm's cache."""
    k = unit_kernel_bytes(n_recordings, nfold)
    workers = max(1, int(workers))
    fit = int(budget // k) if k else workers
    if fit >= 1:
        return UnitPlan(min(workers, fit), "precomputed", float(SVM_CACHE_MB), k)
    return UnitPlan(workers, "libsvm", max(float(MIN_CACHE_MB), budget / float(workers) / MB), k)


def _unit_peak(n: int, d: int, nfold: int, plan: UnitPlan, in_process: bool) -> int:
    """One unit: its fold features as float64, its kernels (or libsvm's cache), libsvm's cache.

    In the training process itself (whose heap the merge and the preprocessing churned)
    the previous unit's kernels stay resident while each matrix is under glibc's 32 MB
    mmap threshold; measured: +51 MB at 2,000 recordings, nothing at 5,000."""
    features = 8 * n * d
    if plan.mode != "precomputed":
        return features + int(plan.cache_mb * MB)
    n_train = _n_train(n, nfold)
    cache = min(SVM_CACHE_MB * MB, 4 * n_train * n_train)  # float32 rows, allocated as libsvm needs them
    kept = plan.kernel_bytes if in_process and 8 * n_train * n_train < HEAP_KEEP else 0
    return features + plan.kernel_bytes + cache + kept


def _final_peak(n: int, d: int, budget: int) -> int:
    """The final model on all n recordings: its features, the n x n kernel when it fits the budget."""
    if 8 * n * n <= budget:
        return 8 * n * d + 8 * n * n + min(SVM_CACHE_MB * MB, 4 * n * n)
    return 8 * n * d + SVM_CACHE_MB * MB


def estimate_peak_memory(n_recordings: int, opts: TrainOptions, workers: int = 1,
                         n_features: Optional[int] = None, memory_budget: Optional[int] = None) -> int:
    """Peak RSS of the training process and its workers, in bytes, for ``train(..., workers,
    memory_budget)``: the same unit plan and the same in-process-or-pool decision as ``train``."""
    from abrunnerd.trainer.grid import useful_workers  # (imports numpy: this module stays light)

    n = int(n_recordings)
    d = int(n_features or SET_FEATURES)
    sets = len(opts.preprocessing_values)
    budget = memory_budget or kernel_budget()
    cpus = os.cpu_count() or 1
    requested = max(1, min(int(workers or cpus), cpus))
    plan = plan_units(n, opts.nfold, requested, budget)
    w = useful_workers(min(requested, plan.concurrent), n, len(opts.configurations()) * opts.nfold,
                       sets * opts.nfold, opts.nfold)
    data = MERGED_BYTES * n + sets * 8 * n * d
    final = _final_peak(n, d, budget)
    if w <= 1:
        return int(BASE + data + max(_unit_peak(n, d, opts.nfold, plan, True), final))
    worker = BASE + 8 * n * d + _unit_peak(n, d, opts.nfold, plan, False)  # + its copy of the set's features
    return int(BASE + data + max(w * worker, final))
