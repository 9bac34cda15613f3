"""Kernel matrices from one Gram matrix per (preprocessing, fold), with libsvm's arithmetic.

RBF ``exp(-gamma * (|x|^2 + |y|^2 - 2<x,y>))`` is how libsvm's trainer computes it; poly
``(gamma <x,y>)^3`` uses libsvm's ``powi`` order (``b * (b*b)``).  Only the Gram matrices
and one kernel buffer each are kept (2 float64 matrices for train x train, 2 for
test x train: ``16 n_train n`` bytes); squared distances are rebuilt per gamma in the
buffer, in the same order of operations, so the kernels are bit-identical to keeping them.
"""
from typing import Tuple

import numpy as np


CHUNK_ROWS = 256  # temporaries stay at CHUNK_ROWS x n, not n x n
BUFFERS = 2  # per part: Gram + the current kernel


class KernelParts:
    """Gram matrices of train x train and test x train, and a reused kernel buffer for each."""

    def __init__(self, x_train: np.ndarray, x_test: np.ndarray) -> None:
        self.gram = x_train @ x_train.T
        self.sq = gram_diagonal(x_train, self.gram)
        self.sq_test = np.einsum("ij,ij->i", x_test, x_test)
        self.gram_test = x_test @ x_train.T
        self._buf = np.empty_like(self.gram)
        self._buf_test = np.empty_like(self.gram_test)

    def kernel(self, kind: str, gamma: float) -> Tuple[np.ndarray, np.ndarray]:
        """(train, test) kernel matrices for ``kind`` in {"RBF", "poly"}; valid until the next call."""
        if kind == "RBF":
            return (_rbf(self.sq, self.sq, self.gram, gamma, self._buf),
                    _rbf(self.sq_test, self.sq, self.gram_test, gamma, self._buf_test))
        return (_poly(self.gram, gamma, self._buf), _poly(self.gram_test, gamma, self._buf_test))


def gram_diagonal(x: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """``|x_i|^2`` as libsvm computes it (one dot product per row: BLAS ``ddot``, which numpy's
    stacked (1 x d) @ (d x 1) products call where numpy uses BLAS), also written onto ``gram``'s
    diagonal.

    libsvm takes ``x_square[i]`` and ``dot(x_i, x_i)`` from the same dot product, so its
    RBF kernel is exactly 1 on the diagonal and its solver's ``QD`` (kept in double) is
    too; squares summed another way than the Gram matrix left ``K(x_i, x_i)`` a few ulps
    off 1 for most rows, enough to flip one fold count in 720 fits against libsvm's own
    kernel (docs/trainer.md, "The libsvm-cache fallback")."""
    sq = np.empty(x.shape[0])
    for start in range(0, x.shape[0], CHUNK_ROWS):  # contiguous rows (numpy sums strided ones itself), a
        c = np.ascontiguousarray(x[start:start + CHUNK_ROWS])  # chunk at a time: no n x d copy
        sq[start:start + CHUNK_ROWS] = np.matmul(c[:, None, :], c[:, :, None]).ravel()
    np.fill_diagonal(gram, sq)
    return sq


def _rbf(sq_rows: np.ndarray, sq_cols: np.ndarray, gram: np.ndarray, gamma: float, out: np.ndarray) -> np.ndarray:
    """``exp(-gamma * ((|x|^2 + |y|^2) - 2<x,y>))`` in libsvm's order, without n x n temporaries."""
    np.add(sq_rows[:, None], sq_cols[None, :], out=out)
    for start in range(0, out.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        out[rows] -= 2.0 * gram[rows]
    np.multiply(out, -gamma, out=out)
    return np.exp(out, out=out)


def _poly(gram: np.ndarray, gamma: float, out: np.ndarray) -> np.ndarray:
    np.multiply(gram, gamma, out=out)
    for start in range(0, out.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        out[rows] *= out[rows] * out[rows]  # libsvm's powi(b, 3) = b * (b * b)
    return out
