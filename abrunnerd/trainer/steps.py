"""Fitting Gaia's transformations: each returns the :class:`Step` Gaia stores and the data after it.

The stored parameters follow gaia-history-format.md §8 (resolved full-name lists,
``{name: {"a", "b"}}`` coefficient maps of ``RealList``, ``Float32Blob`` distributions
keyed ``"<name>[i]"``); the data is transformed by the appliers in :mod:`appliers`.
"""
import math
from typing import Dict, List, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import REAL, STRING, Float32Blob, RealList, Step, StringList
from abrunnerd.trainer import appliers
from abrunnerd.trainer.errors import FoldError
from abrunnerd.trainer.frame import Frame, real_constant
from abrunnerd.trainer.patterns import resolve

DISTRIBUTION_SIZE = 10000


def _names_param(patterns: Sequence[str]) -> StringList:
    return StringList(patterns)


def fit_remove(frame: Frame, patterns: Sequence[str], excepts: Sequence[str] = ()) -> Tuple[Step, Frame]:
    names = resolve(patterns, frame.names(), excepts)
    analyzer = {"descriptorNames": _names_param(patterns)}
    if excepts:
        analyzer["except"] = StringList(excepts)
    step = Step("remove", "removedesc", analyzer,
                {"descriptorNames": StringList(names)}, {}, frame.layout())
    return step, appliers.remove(frame, names)


def fit_select(frame: Frame, patterns: Sequence[str], excepts: Sequence[str] = ()) -> Tuple[Step, Frame]:
    names = resolve(patterns, frame.names(), excepts)
    step = Step("select", "selectdesc",
                {"descriptorNames": _names_param(patterns), "except": StringList(excepts)},
                {"descriptorNames": StringList(names)}, {}, frame.layout())
    return step, appliers.select(frame, names)


def fit_enumerate(frame: Frame, patterns: Sequence[str]) -> Tuple[Step, Frame]:
    """Codes in order of first appearance, scanning points in dataset (MBID) order."""
    names = [n for n in resolve(patterns, frame.names()) if frame.types[n] == STRING]
    maps: Dict[str, List[str]] = {}
    for name in names:
        seen: Dict[str, int] = {}
        for s in frame.values[name].ravel(order="C"):
            if s not in seen:
                seen[s] = len(seen)
        maps[name] = list(seen)
    step = Step("enumerate", "enumerateapplier", {"descriptorNames": _names_param(patterns)},
                {"descriptorNames": StringList(names)}, {}, frame.layout())
    return step, appliers.enumerate_strings(frame, names, maps)


def normalize_coefficients(values: np.ndarray, independent: bool, name: str) -> Tuple[np.ndarray, np.ndarray]:
    """Gaia's range normalisation in float32; raises FoldError on a constant dimension."""
    lo = values.min(axis=0).astype(np.float32)
    hi = values.max(axis=0).astype(np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if independent:
            diff = (hi - lo).astype(np.float32)
            a = (np.float32(1) / diff).astype(np.float32)
            b = (-lo * a).astype(np.float32)
        else:
            m, big = np.float32(lo.min()), np.float32(hi.max())
            diff = np.float32(big - m)
            a = np.full(values.shape[1], np.float32(1) / diff, dtype=np.float32)
            b = np.full(values.shape[1], np.float32(-m) / diff, dtype=np.float32)
    bad = ~(np.isfinite(a) & np.isfinite(b))
    if bad.any():
        i = int(np.argmax(bad))
        raise FoldError("normalize: dimension %d of %s is constant in the data it is fitted on "
                        "(Gaia: \"apply cleaner before normalization\")" % (i, name[1:]))
    return a, b


def _stats(values: np.ndarray) -> Dict[str, RealList]:
    v = values.astype(np.float64)
    n = v.shape[0]
    mean = v.mean(axis=0) if n else np.zeros(v.shape[1])
    var = v.var(axis=0, ddof=1) if n > 1 else np.zeros(v.shape[1])
    return {"mean": RealList(float(np.float32(x)) for x in mean),
            "var": RealList(float(np.float32(x)) for x in var)}


def fit_normalize(frame: Frame, independent: bool) -> Tuple[Step, Frame]:
    coeffs, info = {}, {}
    for name in frame.names_of(REAL):
        a, b = normalize_coefficients(frame.values[name], independent, name)
        coeffs[name] = {"a": RealList(float(x) for x in a), "b": RealList(float(x) for x in b)}
        info[name] = _stats(frame.values[name])
    analyzer_params = {"independent": True} if independent else {}
    step = Step("normalize", "dotproduct", analyzer_params, {"applyClipping": False, "coeffs": coeffs},
                info, frame.layout())
    return step, appliers.dot_product(frame, coeffs)


def fit_gaussianize(frame: Frame, patterns: Sequence[str]) -> Tuple[Step, Frame]:
    names = resolve(patterns, frame.names_of(REAL))
    n = len(frame.ids)
    stride = max(1, int(math.ceil(n / float(DISTRIBUTION_SIZE))))
    dists = {}
    for name in names:
        sample = frame.values[name][::stride]
        for i in range(sample.shape[1]):
            dists["%s[%d]" % (name, i)] = np.sort(sample[:, i]).astype(np.float32)
    pattern_param = patterns[0] if len(patterns) == 1 else _names_param(patterns)  # Gaia stores AB's as a string
    step = Step("gaussianize", "distribute", {"descriptorNames": pattern_param},
                {"distribution": {k: Float32Blob.from_array(v) for k, v in dists.items()}}, {},
                frame.layout())
    return step, appliers.distribute(frame, dists)


def fit_cleaner(frame: Frame) -> Tuple[Step, Frame]:
    """Remove Real descriptors constant in every dimension (NaN/inf never reach here)."""
    removed = [n for n in frame.names_of(REAL) if bool(np.all(real_constant(frame.values[n])))]
    step = Step("cleaner", "removedesc", {}, {"descriptorNames": StringList(removed)}, {}, frame.layout())
    return step, appliers.remove(frame, removed)
