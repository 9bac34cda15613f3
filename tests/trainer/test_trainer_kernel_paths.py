"""Why the memory-budget fallback (libsvm computing its own kernel rows) is the same model search as the
precomputed path but not a bit-identical one.

scikit-learn's libsvm computes every kernel value by itself: RBF in training as
``exp(-g * (|x_i|^2 + |x_j|^2 - 2 dot(x_i, x_j)))`` and in prediction as ``exp(-g * dot(x - y, x - y))``,
poly as ``(g * dot(x, y))^3`` via ``powi``, with one BLAS ``ddot`` call per pair (scikit-learn >= 0.23; a
plain C loop before) and the C library's ``exp``.  The precomputed path gets its values from one Gram
matrix (BLAS ``gemm``: another summation order), numpy's ``exp`` (SIMD code on AVX-512 machines that
differs from the C library's in the last bit of about a quarter of its results) and the expanded form
for test rows too.  The first test proves that this arithmetic is the *only* difference: a precomputed
kernel built with libsvm's arithmetic gives bit-identical models and predictions to the fallback.
The second shows that the two kernels differ in the last bits, so libsvm's solver (its float32 cache,
its double diagonal) and its prediction can see different numbers; on 2,000 synthetic recordings the
diagonal alone moved one fold count of one configuration out of 144 (``benchmarks/train_grid.py
--memory 2000 --grid basic --compare-mb 40`` and ``--kernel-paths 2000``), so the diagonal is now
libsvm's (the third test).
Matching libsvm's arithmetic in the precomputed path would need one ``ddot`` per pair and one C ``exp``
per value (docs/trainer.md "Memory budget": measured cost), so the fallback stays a same-search path.
"""
import math

import numpy as np
import pytest

from abrunnerd.trainer import TrainOptions
from abrunnerd.trainer.cells import SVM_TOL, fold_features
from abrunnerd.trainer.kernels import KernelParts
from abrunnerd.trainer.train import prepare

CELLS = [("RBF", c, g) for c in (-5, 3, 11) for g in (-11, -5, 1)] + [("poly", c, g) for c in (-5, 11)
                                                                        for g in (-11, -5)]


def _sklearn_version():
    import sklearn

    return tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit())


def _libsvm_dot():
    """The dot product scikit-learn's dense libsvm uses for every kernel value."""
    if _sklearn_version() >= (0, 23):  # scikit-learn PR 16530: scipy's BLAS ddot, the one scipy.linalg.blas wraps
        from scipy.linalg.blas import ddot

        return ddot

    def loop(a: np.ndarray, b: np.ndarray) -> float:  # svm.cpp's ``sum += px[i] * py[i]`` in index order
        total = 0.0
        for p in (a * b).tolist():
            total += p
        return total

    return loop


def libsvm_kernels(x_train: np.ndarray, x_test: np.ndarray, kind: str, gamma: float):
    """(train, test) kernel matrices computed with libsvm's own arithmetic, value by value."""
    dot = _libsvm_dot()
    sq = [dot(r, r) for r in x_train]
    n, m = len(x_train), len(x_test)
    k_train, k_test = np.empty((n, n)), np.empty((m, n))

    def poly(d: float) -> float:
        b = gamma * d + 0.0  # powi(gamma * dot + coef0, 3) = b * (b * b)
        return b * (b * b)

    for i in range(n):
        for j in range(n):
            d = dot(x_train[i], x_train[j])
            k_train[i, j] = math.exp(-gamma * (sq[i] + sq[j] - 2 * d)) if kind == "RBF" else poly(d)
    for t in range(m):
        for j in range(n):
            if kind == "RBF":
                diff = x_test[t] - x_train[j]
                k_test[t, j] = math.exp(-gamma * dot(diff, diff))
            else:
                k_test[t, j] = poly(dot(x_test[t], x_train[j]))
    return k_train, k_test


@pytest.fixture(scope="module")
def unit(small_dataset):
    prepared = prepare(small_dataset, TrainOptions.from_job_options({"preprocessing_values": ["basic"]}, seed=42),
                       only=["basic"])
    u = prepared.unit("basic", 0)
    x_train, x_test = fold_features(u)
    return x_train, x_test, u.y[u.train], u.y[u.test]


def _fit(kernel_or_features, y, kind: str, c: int, g: int, precomputed: bool):
    from sklearn.svm import SVC

    if precomputed:
        svc = SVC(C=2.0 ** c, kernel="precomputed", tol=SVM_TOL, shrinking=True, cache_size=100)
    else:
        svc = SVC(C=2.0 ** c, kernel="rbf" if kind == "RBF" else "poly", gamma=2.0 ** g, degree=3, coef0=0.0,
                  tol=SVM_TOL, shrinking=True, cache_size=100)
    return svc.fit(kernel_or_features, y)


def test_the_fallback_is_exactly_a_precomputed_kernel_with_libsvms_arithmetic(unit):
    x_train, x_test, y_train, y_test = unit
    for kind, c, g in CELLS:
        own = _fit(x_train, y_train, kind, c, g, precomputed=False)
        k_train, k_test = libsvm_kernels(x_train, x_test, kind, 2.0 ** g)
        pre = _fit(k_train, y_train, kind, c, g, precomputed=True)
        where = "%s C=2^%d gamma=2^%d" % (kind, c, g)
        assert np.array_equal(own.support_, pre.support_), where
        assert np.array_equal(own.dual_coef_, pre.dual_coef_), where
        assert np.array_equal(own.intercept_, pre.intercept_), where
        assert np.array_equal(own.decision_function(x_test), pre.decision_function(k_test)), where
        assert np.array_equal(own.predict(x_test), pre.predict(k_test)), where


def test_the_precomputed_paths_kernels_differ_from_libsvms_in_the_last_bits(unit):
    x_train, x_test, _, _ = unit
    parts = KernelParts(x_train, x_test)
    for g in (-11, -5, 1):
        ours_train, ours_test = (k.copy() for k in parts.kernel("RBF", 2.0 ** g))
        k_train, k_test = libsvm_kernels(x_train, x_test, "RBF", 2.0 ** g)
        for ours, theirs in ((ours_train, k_train), (ours_test, k_test)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)  # the same kernel ...
        # ... computed another way: the test rows' expanded form |x|^2 + |y|^2 - 2<x,y> against libsvm's
        # dot(x - y, x - y) differs in rounding whatever the BLAS
        assert np.count_nonzero(ours_test != k_test) > 0, "gamma=2^%d" % g


def test_the_training_kernels_diagonal_is_libsvms(unit):
    """libsvm takes |x_i|^2 and dot(x_i, x_i) from the same dot product, so its solver sees K(x_i, x_i) = 1
    exactly for RBF (its QD is kept in double, unlike the float32 cache); squares summed another way left
    most diagonal values a few ulps off 1, which alone flipped one fold count of 720 fits on 2,000 recordings."""
    x_train, x_test, _, _ = unit
    parts = KernelParts(x_train, x_test)
    for kind, g in (("RBF", -7), ("RBF", 1), ("poly", -5)):
        ours = np.diag(parts.kernel(kind, 2.0 ** g)[0]).copy()
        theirs = np.diag(libsvm_kernels(x_train, x_test[:1], kind, 2.0 ** g)[0])
        if kind == "RBF":
            assert np.all(ours == 1.0), "%s gamma=2^%d" % (kind, g)
        if _sklearn_version() >= (0, 23):  # numpy's stacked products and scipy's ddot: the same BLAS call
            assert np.array_equal(ours, theirs), "%s gamma=2^%d" % (kind, g)
