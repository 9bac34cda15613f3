"""A column store of Gaia points with fixed-length descriptors (what the merge produces).

Real descriptors are float32 ``(n, size)`` arrays, Enum descriptors int64 codes, String
descriptors object arrays; names are Gaia full names.  Frames are never modified in
place: every step returns a new frame sharing the untouched columns.
"""
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import FIXED, STRING, Descriptor, Layout


class Frame:
    __slots__ = ("ids", "values", "types", "enum_maps")

    def __init__(self, ids: List[str], values: Dict[str, np.ndarray], types: Dict[str, int],
                 enum_maps: Optional[Dict[str, List[str]]] = None) -> None:
        self.ids = ids
        self.values = values
        self.types = types
        self.enum_maps = {} if enum_maps is None else enum_maps  # type: Dict[str, List[str]]

    def __repr__(self) -> str:
        return "Frame(%d points, %d descriptors)" % (len(self.ids), len(self.values))

    def names(self) -> List[str]:
        return sorted(self.values)

    def names_of(self, kind: int) -> List[str]:
        return [n for n in self.names() if self.types[n] == kind]

    def layout(self) -> Layout:
        descs = [Descriptor(n, self.types[n], FIXED, int(self.values[n].shape[1])) for n in self.names()]
        return Layout(descs, {k: list(v) for k, v in self.enum_maps.items() if k in self.values})

    def keep(self, names: Sequence[str]) -> "Frame":
        keep = set(names)
        return Frame(self.ids, {n: v for n, v in self.values.items() if n in keep},
                     {n: t for n, t in self.types.items() if n in keep},
                     {n: m for n, m in self.enum_maps.items() if n in keep})

    def replace(self, values: Dict[str, np.ndarray], types: Dict[str, int] = None,
                enum_maps: Dict[str, List[str]] = None) -> "Frame":
        new_values = dict(self.values)
        new_values.update(values)
        new_types = dict(self.types)
        new_types.update(types or {})
        new_maps = dict(self.enum_maps)
        new_maps.update(enum_maps or {})
        return Frame(self.ids, new_values, new_types, new_maps)

    def take(self, rows: np.ndarray) -> "Frame":
        return Frame([self.ids[i] for i in rows], {n: v[rows] for n, v in self.values.items()},
                     dict(self.types), dict(self.enum_maps))

    def feature_blocks(self) -> List[Tuple[str, int, int, int]]:
        """(name, type, start column, size) in svmtrain's feature order (sorted full names)."""
        blocks, start = [], 0
        for n in self.names():
            size = int(self.values[n].shape[1])
            blocks.append((n, self.types[n], start, size))
            start += size
        return blocks

    def feature_matrix(self) -> np.ndarray:
        """All Real and Enum columns as float32, in feature order; String columns are an error."""
        strings = self.names_of(STRING)
        if strings:
            raise ValueError("String descriptors must be enumerated first: " + ", ".join(strings))
        cols = [self.values[n].astype(np.float32, copy=False) for n in self.names()]
        if not cols:
            return np.zeros((len(self.ids), 0), dtype=np.float32)
        return np.concatenate(cols, axis=1)


def real_constant(values: np.ndarray) -> np.ndarray:
    """Per dimension: Gaia's "constant" test ``max - min < 1e-7`` in float32."""
    if values.shape[0] == 0:
        return np.ones(values.shape[1], dtype=bool)
    diff = values.max(axis=0) - values.min(axis=0)
    return diff < np.float32(1e-7)
