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
    try:
        v = float(value)
    except OverflowError:
        v = math.inf
    if math.isnan(v) or math.isinf(v) or abs(v) > F32_MAX:
        raise DatasetError("recording %s: descriptor %s contains %r, which Gaia cannot train on "
                           "(NaN, infinity or beyond float32); fix or remove this recording" % (mbid, name[1:], value))
    return v


_NUMBER_TYPES = frozenset((int, float))


def _numbers(values: List[Any], mbid: str, name: str) -> np.ndarray:
    """A list of JSON numbers as float32, checked in one vectorised pass (the slow path names the culprit)."""
    if set(map(type, values)) <= _NUMBER_TYPES:  # type(): bool is not int here
        try:
            arr = np.array(values, dtype=np.float64)
        except OverflowError:
            arr = None
        if arr is not None and bool((np.abs(arr) <= F32_MAX).all()):  # False for NaN and inf too
            return arr.astype(np.float32)
    return np.array([_number(v, mbid, name) for v in values], dtype=np.float32)


def leaf_value(value: Any, mbid: str, name: str) -> Optional[Tuple[int, Any]]:
    """(type, values) of one leaf: REAL -> float32 array (a 1-tuple of float for a number),
    STRING -> list of str; None = skipped."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return STRING, [value]
    if isinstance(value, (int, float)):
        return REAL, (_number(value, mbid, name),)  # a 1-tuple: cheaper than an array per scalar
    if not isinstance(value, list):
        raise DatasetError("recording %s: descriptor %s has an unsupported value of type %s"
                           % (mbid, name[1:], type(value).__name__))
    if not value:
        return REAL, np.zeros(0, dtype=np.float32)
    first = value[0]
    if isinstance(first, str):
        if not all(isinstance(v, str) for v in value):
            raise DatasetError("recording %s: descriptor %s mixes strings with other values" % (mbid, name[1:]))
        return STRING, list(value)
    if isinstance(first, list):
        rows = len(value)
        cols = len(first)
        parts = [np.array([rows, cols], dtype=np.float32)]
        for row in value:
            if not isinstance(row, list) or len(row) != cols:
                raise DatasetError("recording %s: descriptor %s is a matrix with rows of different lengths"
                                   % (mbid, name[1:]))
            parts.append(_numbers(row, mbid, name))
        return REAL, np.concatenate(parts)
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        raise DatasetError("recording %s: descriptor %s is a list of %s, which Gaia cannot read"
                           % (mbid, name[1:], type(first).__name__))
    return REAL, _numbers(value, mbid, name)


def flatten_leaves(doc: Dict[str, Any], mbid: str) -> Dict[str, Tuple[int, Any]]:
    """``{full name: (type, values)}`` as ``leaf_value`` gives them (the merge's one pass).

    Scalar numbers (most leaves of a low-level document) are checked together in one
    vectorised test per document; only a failing document takes the per-value path that
    names the culprit."""
    out = {}  # type: Dict[str, Any]
    names, numbers = [], []  # type: List[str], List[Any]
    stack = [("", doc, True)]
    while stack:  # iter_leaves, inlined: this loop runs once per leaf of every document
        prefix, node, top = stack.pop()
        for key, value in node.items():
            if top and key in IGNORED_TOP_LEVEL:
                continue
            name = prefix + "." + key
            kind = type(value)
            if kind is float or kind is int:  # not bool: type() is exact
                out[name] = None  # keeps the document's order
                names.append(name)
                numbers.append(value)
            elif isinstance(value, dict):
                stack.append((name, value, False))
            else:
                leaf = leaf_value(value, mbid, name)
                if leaf is not None:
                    out[name] = leaf
    if numbers:
        try:
            arr = np.array(numbers, dtype=np.float64)
            checked = arr.tolist() if bool((np.abs(arr) <= F32_MAX).all()) else None  # None: NaN, inf, too big
        except OverflowError:
            checked = None
        if checked is None:  # the slow path raises, naming the descriptor
            checked = [_number(value, mbid, name) for name, value in zip(names, numbers)]
        for name, v in zip(names, checked):
            out[name] = (REAL, (v,))  # a 1-tuple: cheaper than an array per scalar
    return out


def flatten_document(doc: Dict[str, Any], mbid: str) -> Dict[str, Tuple[int, Any]]:
    """``{full name: (type, values)}``; REAL values as float32 arrays, STRING as lists."""
    return {name: (kind, np.asarray(v, dtype=np.float32) if kind == REAL else v)
            for name, (kind, v) in flatten_leaves(doc, mbid).items()}


def signature(flat: Dict[str, Tuple[int, Any]]) -> Tuple[Tuple[str, int, int], ...]:
    """A flattened document's layout as sorted (name, type, length) triples."""
    return tuple(sorted((name, kind, len(values)) for name, (kind, values) in flat.items()))
