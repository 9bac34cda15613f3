"""From a JSON low-level document to Gaia descriptors (pipeline spec §3).

Every leaf is a descriptor named by its key path with a leading dot.  Numbers and number
lists become Real float32 vectors, a matrix becomes ``[rows, cols, row-major values]``,
strings and string lists become String vectors.  Booleans and nulls have no stable Gaia
type (YAML reads them as strings, Essentia's pool as reals), so they are left out
of the layout.
"""
import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from abrunnerd.gaia.chain import REAL, STRING
from abrunnerd.trainer.errors import DatasetError

IGNORED_TOP_LEVEL = ("segments", "configuration")  # Gaia skips these keys
F32_MAX = float(np.finfo(np.float32).max)


def iter_leaves(doc: Dict[str, Any]) -> Iterator[Tuple[str, Any]]:
    """(full name, JSON value) of every leaf, depth first."""
    stack = [("", doc, True)]
    while stack:
        prefix, node, top = stack.pop()
        for key, value in node.items():
            if top and key in IGNORED_TOP_LEVEL:
                continue
            name = prefix + "." + key
            if isinstance(value, dict):
                stack.append((name, value, False))
            else:
                yield name, value


def _number(value: Any, mbid: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DatasetError("recording %s: descriptor %s mixes numbers with %s"
                           % (mbid, name[1:], type(value).__name__))
    v = float(value)
    if math.isnan(v) or math.isinf(v) or abs(v) > F32_MAX:
        raise DatasetError("recording %s: descriptor %s contains %r, which Gaia cannot train on "
                           "(NaN, infinity or beyond float32); fix or remove this recording" % (mbid, name[1:], value))
    return v


def leaf_value(value: Any, mbid: str, name: str) -> Optional[Tuple[int, Any]]:
    """(type, values) of one leaf: REAL -> list of floats, STRING -> list of str; None = skipped."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return STRING, [value]
    if isinstance(value, (int, float)):
        return REAL, [_number(value, mbid, name)]
    if not isinstance(value, list):
        raise DatasetError("recording %s: descriptor %s has an unsupported value of type %s"
                           % (mbid, name[1:], type(value).__name__))
    if not value:
        return REAL, []
    first = value[0]
    if isinstance(first, str):
        if not all(isinstance(v, str) for v in value):
            raise DatasetError("recording %s: descriptor %s mixes strings with other values" % (mbid, name[1:]))
        return STRING, list(value)
    if isinstance(first, list):
        rows = len(value)
        cols = len(first) if isinstance(first, list) else -1
        flat: List[float] = [float(rows), float(cols)]
        for row in value:
            if not isinstance(row, list) or len(row) != cols:
                raise DatasetError("recording %s: descriptor %s is a matrix with rows of different lengths"
                                   % (mbid, name[1:]))
            flat.extend(_number(v, mbid, name) for v in row)
        return REAL, flat
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        raise DatasetError("recording %s: descriptor %s is a list of %s, which Gaia cannot read"
                           % (mbid, name[1:], type(first).__name__))
    return REAL, [_number(v, mbid, name) for v in value]


def flatten_document(doc: Dict[str, Any], mbid: str) -> Dict[str, Tuple[int, Any]]:
    """``{full name: (type, values)}``; REAL values as float32 arrays, STRING as lists."""
    out = {}
    for name, value in iter_leaves(doc):
        leaf = leaf_value(value, mbid, name)
        if leaf is None:
            continue
        kind, values = leaf
        out[name] = (kind, np.asarray(values, dtype=np.float32) if kind == REAL else values)
    return out


def signature(doc: Dict[str, Any], mbid: str) -> Tuple[Tuple[str, int, int], ...]:
    """The document's layout as sorted (name, type, length) triples; validates every value."""
    sig = []
    for name, value in iter_leaves(doc):
        leaf = leaf_value(value, mbid, name)
        if leaf is not None:
            sig.append((name, leaf[0], len(leaf[1])))
    sig.sort()
    return tuple(sig)
