"""Evaluating the grid cells of one (preprocessing, fold) unit.

Per unit the classifier's ``cleaner`` and ``normalize(independent)`` are fitted on the
training fold once (spec §8), the kernel parts computed once, and every (kernel, gamma)
kernel derived from them and shared by every C; each cell is one
``SVC(kernel="precomputed")`` fit without probability estimates (decisions.md 4),
scored by libsvm's voting prediction.
"""
import time
from typing import Callable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from abrunnerd.gaia.chain import REAL
from abrunnerd.trainer.errors import FoldError
from abrunnerd.trainer.frame import real_constant
from abrunnerd.trainer.kernels import KernelParts
from abrunnerd.trainer.steps import normalize_coefficients

Cell = Tuple  # (kernel, C exponent, gamma exponent[, balanceClasses]); no 4th element = not balanced
SVM_TOL = 1e-3
SVM_CACHE_MB = 100  # Gaia's setting


class UnitInput(NamedTuple):
    """What a worker needs for one (preprocessing, fold); ``error`` = the preprocessing failed."""

    preprocessing: str
    fold: int
    x: np.ndarray  # float32 (n, d), feature order
    blocks: List[Tuple[str, int, int, int]]  # (name, type, start, size)
    y: np.ndarray  # int labels (indices into the sorted class list)
    train: np.ndarray
    test: np.ndarray
    n_classes: int
    error: Optional[str] = None
    kernel_mode: str = "precomputed"  # or "libsvm": libsvm computes kernels in its cache (memory budget)
    cache_mb: float = SVM_CACHE_MB


class CellOutcome:
    """One cell on one fold: its test-fold score, or why it failed; ``run_unit`` sets ``seconds``."""

    __slots__ = ("ok", "correct", "total", "confusion", "error", "seconds")

    def __init__(self, ok: bool, correct: int = 0, total: int = 0, confusion: Optional[List[List[int]]] = None,
                 error: Optional[str] = None, seconds: float = 0.0) -> None:
        self.ok = ok
        self.correct = correct
        self.total = total
        self.confusion = [] if confusion is None else confusion  # type: List[List[int]]
        self.error = error
        self.seconds = seconds

    def __repr__(self) -> str:
        return "CellOutcome(ok=%r, correct=%r, total=%r, error=%r)" % (self.ok, self.correct, self.total, self.error)


def fold_features(unit: UnitInput) -> Tuple[np.ndarray, np.ndarray]:
    """Training/test features after the fold's cleaner + normalize(independent), as float64."""
    x_train = unit.x[unit.train]
    x_test = unit.x[unit.test]
    columns, a_parts, b_parts = [], [], []
    for name, kind, start, size in unit.blocks:
        block = x_train[:, start:start + size]
        if kind == REAL:
            if bool(np.all(real_constant(block))):
                continue  # the fold's cleaner removes it
            a, b = normalize_coefficients(block, True, name)
        else:  # enum codes enter the SVM unnormalised
            a, b = np.ones(size, dtype=np.float32), np.zeros(size, dtype=np.float32)
        columns.extend(range(start, start + size))
        a_parts.append(a)
        b_parts.append(b)
    if not columns:
        raise FoldError("no descriptor varies in the training fold")
    idx = np.asarray(columns)
    a = np.concatenate(a_parts)
    b = np.concatenate(b_parts)
    out = []
    for part in (x_train, x_test):
        out.append(((part[:, idx] * a).astype(np.float32) + b).astype(np.float64))
    return out[0], out[1]


def _fit_and_score(k_train: np.ndarray, k_test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
                   c: int, n_classes: int, balanced: bool = False) -> CellOutcome:
    from sklearn.svm import SVC

    if len(set(y_train.tolist())) < 2:
        return CellOutcome(False, error="the training fold holds only one class")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    if len(y_test):
        # balanceClasses: Gaia's svmtrain gives class k the weight N / (K * N_k) over the K classes of the
        # training data, exactly scikit-learn's "balanced"
        svc = SVC(C=2.0 ** c, kernel="precomputed", tol=SVM_TOL, shrinking=True, cache_size=SVM_CACHE_MB,
                  class_weight="balanced" if balanced else None)
        svc.fit(k_train, y_train)
        predicted = svc.predict(k_test)
        np.add.at(confusion, (y_test, predicted.astype(np.int64)), 1)
    correct = int(np.trace(confusion))
    return CellOutcome(True, correct, int(len(y_test)), confusion.tolist())


def _fit_and_score_features(x_train: np.ndarray, x_test: np.ndarray, y_train: np.ndarray, y_test: np.ndarray,
                            cell: Cell, n_classes: int, cache_mb: float, balanced: bool = False) -> CellOutcome:
    """The same cell with libsvm computing its own kernel rows (memory = its cache, not n^2)."""
    from sklearn.svm import SVC

    kind, c, g = cell
    if len(set(y_train.tolist())) < 2:
        return CellOutcome(False, error="the training fold holds only one class")
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    if len(y_test):
        svc = SVC(C=2.0 ** c, kernel="rbf" if kind == "RBF" else "poly", gamma=2.0 ** g, degree=3, coef0=0.0,
                  tol=SVM_TOL, shrinking=True, cache_size=cache_mb, class_weight="balanced" if balanced else None)
        svc.fit(x_train, y_train)
        np.add.at(confusion, (y_test, svc.predict(x_test).astype(np.int64)), 1)
    return CellOutcome(True, int(np.trace(confusion)), int(len(y_test)), confusion.tolist())


def run_unit(unit: UnitInput, cells: Sequence[Cell],
             should_stop: Optional[Callable[[], bool]] = None) -> Iterator[Tuple[Cell, CellOutcome]]:
    """Yield each cell's outcome as it finishes; a unit that cannot be trained fails every cell."""
    started = time.monotonic()
    reason = unit.error
    parts = None
    x_train = x_test = None
    if reason is None:
        try:
            x_train, x_test = fold_features(unit)
            if unit.kernel_mode == "precomputed":
                parts = KernelParts(x_train, x_test)
                x_train = x_test = None  # the Gram matrices are all the unit needs now
        except FoldError as e:
            reason = str(e)
    if reason is not None:
        for cell in cells:
            yield cell, CellOutcome(False, error=reason, seconds=0.0)
        return
    y_train, y_test = unit.y[unit.train], unit.y[unit.test]
    order = sorted(cells, key=lambda c: (c[0], c[2], c[1]))  # one kernel per (kernel, gamma)
    current = None
    for cell in order:
        if should_stop is not None and should_stop():
            return
        kind, c, g = cell[0], cell[1], cell[2]
        balanced = bool(cell[3]) if len(cell) > 3 else False
        if parts is None:
            outcome = _fit_and_score_features(x_train, x_test, y_train, y_test, (kind, c, g), unit.n_classes,
                                              unit.cache_mb, balanced)
        else:
            if current != (kind, g):
                k_train, k_test = parts.kernel(kind, 2.0 ** g)
                current = (kind, g)
            outcome = _fit_and_score(k_train, k_test, y_train, y_test, c, unit.n_classes, balanced)
        now = time.monotonic()
        outcome.seconds = now - started
        started = now
        yield cell, outcome
