"""Gaia's appliers on frames: the arithmetic a history performs on a point (history spec §8).

Training transforms its data with these; the arithmetic itself is
:mod:`abrunnerd.gaia.numeric`, which the predictor (:mod:`abrunnerd.gaia.apply`) also
uses, so what is written is what was computed and what is applied.
"""
from typing import Dict, List, Mapping, Sequence

import numpy as np

from abrunnerd.gaia import numeric
from abrunnerd.gaia.chain import ENUM
from abrunnerd.trainer.frame import Frame


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
        values[name] = numeric.dot_product(frame.values[name], a, b)
    return frame.replace(values)


def distribute(frame: Frame, distributions: Mapping[str, np.ndarray]) -> Frame:
    """Replace dimension ``i`` of each ``name[i]`` key by its rank-based Gaussian value."""
    values: Dict[str, np.ndarray] = {}
    for key, dist in distributions.items():
        name, _, index = key.rpartition("[")
        i = int(index.rstrip("]"))
        column = values.get(name)
        if column is None:
            column = values[name] = frame.values[name].copy()
        column[:, i] = numeric.distribute(column[:, i], np.asarray(dist, dtype=np.float32))
    return frame.replace(values)
