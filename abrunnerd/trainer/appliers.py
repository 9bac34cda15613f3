"""Gaia's appliers on frames: the arithmetic a history performs on a point (history spec §8).

Training uses these same functions to transform its data, and the Python prediction
replays a model's steps through them, so what is written is what was computed.
"""
from typing import Dict, List, Mapping, Sequence

import numpy as np

from abrunnerd.gaia.chain import ENUM
from abrunnerd.trainer.frame import Frame

from scipy.special import ndtri  # scipy comes with scikit-learn; Cephes, like Gaia's alglib copy


def remove(frame: Frame, names: Sequence[str]) -> Frame:
    missing = [n for n in names if n not in frame.values]
    if missing:
        raise KeyError("Couldn't find node with name " + missing[0])
    drop = set(names)
    return frame.keep([n for n in frame.values if n not in drop])


def select(frame: Frame, names: Sequence[str]) -> Frame:
    missing = [n for n in names if n not in frame.values]
    if missing:
        raise KeyError("Couldn't find node with name " + missing[0])
    return frame.keep(names)


def enumerate_strings(frame: Frame, names: Sequence[str], maps: Mapping[str, List[str]]) -> Frame:
    """String -> Enum codes of the training maps; an unseen string gets the next free code.

    Codes for unseen strings are handed out per point (a fresh GaiaTransform per document):
    the first unseen string of a point gets ``len(map)``, the next distinct one ``+1``.
    """
    values, types = {}, {}
    for name in names:
        table = {s: i for i, s in enumerate(maps[name])}
        column = frame.values[name]
        codes = np.empty(column.shape, dtype=np.int64)
        for row in range(column.shape[0]):
            extra: Dict[str, int] = {}
            for j in range(column.shape[1]):
                s = column[row, j]
                code = table.get(s)
                if code is None:
                    code = extra.setdefault(s, len(table) + len(extra))
                codes[row, j] = code
        values[name] = codes
        types[name] = ENUM
    return frame.replace(values, types, {n: list(maps[n]) for n in names})


def dot_product(frame: Frame, coeffs: Mapping[str, Mapping[str, Sequence[float]]]) -> Frame:
    """``x * a`` then ``+ b``, two float32 operations, no clipping (Gaia's dotproduct)."""
    values = {}
    for name, ab in coeffs.items():
        a = np.asarray(ab["a"], dtype=np.float32)
        b = np.asarray(ab["b"], dtype=np.float32)
        values[name] = (frame.values[name] * a).astype(np.float32) + b
    return frame.replace(values)


def distribute_one(x: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Gaia's distribute rule for one dimension (pipeline spec §7.6)."""
    n = dist.shape[0]
    rank = np.searchsorted(dist, x, side="right")
    inside = (x >= dist[0]) & (x <= dist[n - 1])
    rank = np.where(inside, np.minimum(rank, n - 1), np.where(x < dist[0], 0, n))
    o = int(0.00001 * n)
    rank = np.clip(rank, o, n - o)
    rank = np.where(rank == 0, 1, np.where(rank == n, n - 1, rank))
    q = rank.astype(np.float32) / np.float32(n)  # Real (float32) division, as in distribute.cpp
    e = 2.0 * q.astype(np.float64) - 1.0  # double arithmetic, as in distribute.cpp
    return (ndtri(0.5 * (e + 1.0)) / np.sqrt(2.0)).astype(np.float32)  # gaiamath.cpp: inverf


def distribute(frame: Frame, distributions: Mapping[str, np.ndarray]) -> Frame:
    """Replace dimension ``i`` of each ``name[i]`` key by its rank-based Gaussian value."""
    values: Dict[str, np.ndarray] = {}
    for key, dist in distributions.items():
        name, _, index = key.rpartition("[")
        i = int(index.rstrip("]"))
        column = values.get(name)
        if column is None:
            column = values[name] = frame.values[name].copy()
        column[:, i] = distribute_one(column[:, i], np.asarray(dist, dtype=np.float32))
    return frame.replace(values)
