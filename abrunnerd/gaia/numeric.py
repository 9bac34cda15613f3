"""The arithmetic of Gaia's value appliers (``dotproduct``, ``distribute``) on numpy columns.

One implementation, used both by the trainer while it fits a chain and by the predictor
when it applies one, so what a history stores is exactly what was computed.  Columns are
float32 ``(n, size)`` arrays; the arithmetic is Gaia's (float32 multiply then add; the
distribute rank rule of gaia-training-pipeline.md §7.6 with float32 ``rank / n``).
"""
import numpy as np
from scipy.special import ndtri  # Cephes' inverse normal CDF, like the alglib copy in Gaia

F32 = np.float32


def dot_product(column: np.ndarray, a: np.ndarray, b: np.ndarray, clipping: bool = False) -> np.ndarray:
    """``x * a`` then ``+ b`` in float32; with Gaia's ``applyClipping`` clamp to [0, 1]."""
    out = (column.astype(F32, copy=False) * a.astype(F32, copy=False)).astype(F32) + b.astype(F32, copy=False)
    out = out.astype(F32, copy=False)
    if clipping:
        out = np.minimum(out, F32(1.0))  # std::min(x, 1) then std::max(x, 0): NaN stays NaN
        out = np.maximum(out, F32(0.0))
    return out


def distribute_ranks(x: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Gaia's ``binarySearch`` (gaiamath.h) for every value of ``x`` in the sorted ``dist``.

    0 below the first value, n above the last, else the end of the bisection interval,
    i.e. ``min(upper_bound, n - 1)``; NaN compares false everywhere and ends at n - 1.
    """
    n = dist.shape[0]
    rank = np.searchsorted(dist, x, side="right")
    rank = np.minimum(rank, n - 1)
    with np.errstate(invalid="ignore"):  # NaN compares false, as in Gaia (numpy 1.13 warns)
        below, above = x < dist[0], x > dist[n - 1]
    rank = np.where(below, 0, rank)
    rank = np.where(above, n, rank)
    if n == 1:
        rank = np.where(below | above, rank, 0)
    return np.where(np.isnan(x), n - 1, rank)


def distribute(x: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """One dimension through Gaia's ``distribute``: ``erfinv(2 * rank / n - 1)`` as float32."""
    n = dist.shape[0]
    rank = distribute_ranks(x, dist)
    outliers = int(0.00001 * n)
    rank = np.where(rank < outliers, outliers, rank)
    rank = np.where(rank > n - outliers, n - outliers, rank)
    rank = np.where(rank == 0, rank + 1, rank)
    rank = np.where(rank == n, rank - 1, rank)
    q = rank.astype(F32) / F32(n)  # Real (float32) division, as in distribute.cpp
    e = 2.0 * q.astype(np.float64) - 1.0  # promoted to double for erfinv
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ndtri(0.5 * (e + 1.0)) / np.sqrt(2.0)).astype(F32)  # erfinv(e) = ndtri((e+1)/2)/sqrt(2)


def distribute_block(block: np.ndarray, dists: "list") -> np.ndarray:
    """:func:`distribute` on every column ``j`` of ``block`` with ``dists[j]``, ranks per column,
    the rest of the rule vectorised over the whole block (same values as column by column)."""
    rows, cols = block.shape
    n = np.array([d.shape[0] for d in dists])
    first = np.array([d[0] for d in dists], dtype=F32)
    last = np.array([d[-1] for d in dists], dtype=F32)
    rank = np.empty((rows, cols), dtype=np.int64)
    for j, dist in enumerate(dists):
        rank[:, j] = np.searchsorted(dist, block[:, j], side="right")
    rank = np.minimum(rank, n - 1)
    with np.errstate(invalid="ignore"):  # NaN compares false, as in Gaia (numpy 1.13 warns)
        below, above = block < first, block > last
    rank = np.where(below, 0, rank)
    rank = np.where(above, n, rank)
    single = n == 1
    if single.any():
        rank = np.where(single & ~(below | above), 0, rank)
    rank = np.where(np.isnan(block), n - 1, rank)
    outliers = (0.00001 * n).astype(np.int64)
    rank = np.where(rank < outliers, outliers, rank)
    rank = np.where(rank > n - outliers, n - outliers, rank)
    rank = np.where(rank == 0, rank + 1, rank)
    rank = np.where(rank == n, rank - 1, rank)
    q = rank.astype(F32) / n.astype(F32)
    e = 2.0 * q.astype(np.float64) - 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return (ndtri(0.5 * (e + 1.0)) / np.sqrt(2.0)).astype(F32)
