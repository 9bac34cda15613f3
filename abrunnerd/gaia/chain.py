"""The fitted transformation chain, in memory: the contract between trainer and history writer.

The trainer (``abrunnerd.trainer``) records every transformation it fits as a
:class:`Step`, in Gaia's order (merge ``remove``/``fixlength``, the preprocessing
set's steps, then the classifier's ``select``/``cleaner``/``normalize``/``addfield``/
``svmtrain``/``select``).  The history writer (``abrunnerd.gaia.history``) turns a
list of steps into a Gaia ``.history`` file without knowing anything about training,
and the reader turns a file back into the same structures.

Names of descriptors are Gaia *full names* with the leading dot (``.lowlevel.mfcc.mean``)
everywhere except ``className`` (``highlevel.<slug>``), as in the files Gaia writes.
See ``../shared/docs/gaia-history-format.md`` §4–§9 for what each step stores.
"""
from typing import Dict, List, NamedTuple, Optional, Union

import numpy as np

# Descriptor types and length types, numbered as in Gaia's PointLayout stream.
REAL, STRING, ENUM = 1, 2, 3
FIXED, VARIABLE = 0, 1


class Descriptor(NamedTuple):
    """One leaf of a point layout."""

    name: str  # full name, leading dot
    type: int  # REAL, STRING or ENUM
    length_type: int  # FIXED or VARIABLE
    size: int = 1  # dimension for FIXED; always 1 for VARIABLE


class Layout:
    """A point layout: its leaves plus the enum maps (code -> string is the list index)."""

    __slots__ = ("descriptors", "enum_maps")

    def __init__(self, descriptors: List[Descriptor], enum_maps: Optional[Dict[str, List[str]]] = None) -> None:
        self.descriptors = descriptors
        self.enum_maps = {} if enum_maps is None else enum_maps  # type: Dict[str, List[str]]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Layout) and (self.descriptors, self.enum_maps) == (other.descriptors,
                                                                                   other.enum_maps)

    __hash__ = None  # type: ignore  # mutable value

    def __repr__(self) -> str:
        return "Layout(%r, %r)" % (self.descriptors, self.enum_maps)

    def names(self) -> List[str]:
        return sorted(d.name for d in self.descriptors)

    def get(self, name: str) -> Descriptor:
        for d in self.descriptors:
            if d.name == name:
                return d
        raise KeyError(name)


# Parameter value wrappers: they say which QVariant a value becomes in the file.
# Plain Python values map as: str -> String, bool -> Bool, int -> Int, float -> Double,
# dict -> Map (keys str), bytes -> ByteArray.
class StringList(list):
    """A list of strings -> QVariant StringList (11)."""


class RealList(list):
    """A RealDescriptor (float32 values widened to double) -> QVariant List (9) of Double (6)."""


class Float32Blob(bytes):
    """Raw little-endian float32 values (gaussianize distributions) -> QVariant ByteArray (12)."""

    @classmethod
    def from_array(cls, values: np.ndarray) -> "Float32Blob":
        return cls(np.asarray(values, dtype="<f4").tobytes())

    def to_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self), dtype="<f4")


ParamValue = Union[str, bool, int, float, bytes, StringList, RealList, Float32Blob, dict]


class SvmModel(NamedTuple):
    """A trained libsvm C-SVC model, enough to write libsvm's model text (history §7).

    ``labels`` are the libsvm labels 0..K-1 (indices into the sorted ``classMapping``);
    ``support_vectors`` are grouped by class in ``labels`` order with counts ``n_support``;
    ``dual_coef`` has shape (K-1, total_sv) and ``rho`` shape (K(K-1)/2,) in libsvm's
    one-vs-one order (scikit-learn's private ``_dual_coef_`` and ``-_intercept_``).
    """

    kernel: str  # "rbf" or "polynomial" (libsvm's keywords)
    gamma: float
    degree: int
    coef0: float
    labels: List[int]
    n_support: List[int]
    support_vectors: np.ndarray  # (total_sv, n_features) float64
    dual_coef: np.ndarray  # (K-1, total_sv)
    rho: np.ndarray  # (K(K-1)/2,)
    prob_a: Union[np.ndarray, None] = None  # present iff trained with probability estimates
    prob_b: Union[np.ndarray, None] = None


class Step(NamedTuple):
    """One fitted transformation, as Gaia stores it.

    ``params`` use the wrappers above; the ``svmtrain`` step's ``params['modelData']`` may
    be an :class:`SvmModel` (the writer renders it as libsvm text) or the text as ``bytes``.
    ``input_layout`` is the layout of the data *entering* this step.
    """

    analyzer: str  # e.g. "remove", "fixlength", "enumerate", "select", "normalize", ...
    applier: str  # e.g. "removedesc", "fixlengthapplier", "enumerateapplier", ...
    analyzer_params: Dict[str, ParamValue]
    params: Dict[str, ParamValue]
    info: Dict[str, ParamValue]
    input_layout: Layout
    name: str = ""
