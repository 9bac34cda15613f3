"""Gaia's ``svmpredict``: libsvm 2.89's C-SVC prediction, batched in numpy.

Reads the libsvm model text a history embeds (``params.modelData``, history format §7)
and predicts many feature vectors at once: kernel values as one matrix product, the
one-vs-one decision values as a second one, then libsvm's Platt sigmoids (clipped to
[1e-7, 1-1e-7]) and Wu-Lin-Weng coupling (``multiclass_probability``), or its voting.
Results agree with libsvm up to floating-point summation order (~1e-15).

The parser treats the text as hostile: every count is checked against the text and
against :data:`MAX_CLASSES` / :data:`MAX_FEATURES` before anything is allocated.
"""
import math
from typing import List, Optional, Sequence

import numpy as np

MIN_PROB = 1e-7
MAX_CLASSES = 1000
MAX_FEATURES = 1 << 20
KERNELS = ("linear", "polynomial", "rbf", "sigmoid")
SVM_TYPES = ("c_svc", "nu_svc")  # both predict the same way; regression/one-class have no classes


class SvmModelError(ValueError):
    """The libsvm model text is invalid or of a kind Gaia's svmpredict cannot use."""


def _float(word: str, what: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise SvmModelError("%s: %r is not a number" % (what, word[:40])) from None
    if not math.isfinite(value):
        raise SvmModelError("%s: %r is not finite" % (what, word[:40]))
    return value


def _int(word: str, what: str, low: int, high: int) -> int:
    try:
        value = int(word)
    except ValueError:
        raise SvmModelError("%s: %r is not an integer" % (what, word[:40])) from None
    if not low <= value <= high:
        raise SvmModelError("%s: %d is outside [%d, %d]" % (what, value, low, high))
    return value


class SvmPredictor:
    """A parsed C-SVC model, ready to predict ``(n, d)`` float64 feature matrices.

    ``labels[i]`` is the libsvm label of the model's i-th class (Gaia: an index into
    ``classMapping``); support vectors are stored densely, one column per feature index.
    """

    def __init__(self, kernel: str, gamma: float, degree: int, coef0: float, labels: List[int],
                 n_support: List[int], support_vectors: np.ndarray, coef: np.ndarray, rho: np.ndarray,
                 prob_a: Optional[np.ndarray], prob_b: Optional[np.ndarray]) -> None:
        self.kernel, self.gamma, self.degree, self.coef0 = kernel, gamma, degree, coef0
        self.labels = labels
        self.n_support = n_support
        self.sv = support_vectors
        self.sv_sq = (support_vectors * support_vectors).sum(axis=1)
        self.rho = rho
        self.prob_a, self.prob_b = prob_a, prob_b
        k = len(labels)
        # One-vs-one pair p = (i, j): sum over class i's SVs of coef[j-1] and class j's of coef[i].
        start = np.concatenate([[0], np.cumsum(n_support)[:-1]]).astype(int)
        weights = np.zeros((support_vectors.shape[0], k * (k - 1) // 2))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = start[i], start[j]
                weights[si:si + n_support[i], p] = coef[j - 1, si:si + n_support[i]]
                weights[sj:sj + n_support[j], p] = coef[i, sj:sj + n_support[j]]
                p += 1
        self.pair_weights = weights

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    @property
    def has_probability(self) -> bool:
        return self.prob_a is not None and self.prob_b is not None

    def kernel_matrix(self, x: np.ndarray) -> np.ndarray:
        """``K[n, l]`` = k(x_n, sv_l); SV columns beyond ``x``'s width count as libsvm counts them."""
        d = x.shape[1]
        sv = self.sv
        if sv.shape[1] < d:
            sv = np.hstack([sv, np.zeros((sv.shape[0], d - sv.shape[1]))])
        # einsum, not BLAS: each value's summation order then does not depend on the batch size,
        # so a document gets the same bits alone or in any batch (and any --jobs).
        dot = np.einsum("nd,ld->nl", x, sv[:, :d])
        if self.kernel == "rbf":
            sq = np.einsum("nd,nd->n", x, x)[:, None] + self.sv_sq[None, :] - 2.0 * dot
            return np.exp(-self.gamma * np.maximum(sq, 0.0))
        if self.kernel == "linear":
            return dot
        base = self.gamma * dot + self.coef0
        if self.kernel == "sigmoid":
            return np.tanh(base)
        out = np.ones_like(base)  # libsvm's powi: square-and-multiply
        t = self.degree
        while t > 0:
            if t % 2 == 1:
                out = out * base
            base = base * base
            t //= 2
        return out

    def decision_values(self, x: np.ndarray) -> np.ndarray:
        """(n, K(K-1)/2) one-vs-one decision values in libsvm's pair order."""
        return np.einsum("nl,lp->np", self.kernel_matrix(x), self.pair_weights) - self.rho[None, :]

    def vote(self, x: np.ndarray) -> np.ndarray:
        """libsvm ``svm_predict``: the index (in model order) of the class with most votes."""
        dec = self.decision_values(x)
        k = self.n_classes
        votes = np.zeros((x.shape[0], k), dtype=np.int64)
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                win = dec[:, p] > 0
                votes[:, i] += win
                votes[:, j] += ~win
                p += 1
        return np.argmax(votes, axis=1)  # first maximum, as libsvm

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """(n, K) class probabilities in model order (libsvm ``svm_predict_probability``)."""
        dec = self.decision_values(x)
        f = dec * self.prob_a[None, :] + self.prob_b[None, :]
        with np.errstate(over="ignore"):
            e = np.exp(-np.abs(f))
            sig = np.where(f >= 0, e / (1.0 + e), 1.0 / (1.0 + e))
        # libsvm's min(max(s, 1e-7), 1-1e-7); a NaN decision value ends at 1e-7 there too.
        sig = np.where(sig > MIN_PROB, sig, MIN_PROB)
        sig = np.where(sig < 1 - MIN_PROB, sig, 1 - MIN_PROB)
        return couple(sig, self.n_classes)


def couple(pairwise: np.ndarray, k: int) -> np.ndarray:
    """libsvm's ``multiclass_probability`` for every row of ``pairwise`` (r_ij, pair order) at once."""
    n = pairwise.shape[0]
    r = np.zeros((n, k, k))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            r[:, i, j] = pairwise[:, p]
            r[:, j, i] = 1 - pairwise[:, p]
            p += 1
    q = np.zeros((n, k, k))
    for t in range(k):
        for j in range(t):
            q[:, t, t] += r[:, j, t] * r[:, j, t]
            q[:, t, j] = q[:, j, t]
        for j in range(t + 1, k):
            q[:, t, t] += r[:, j, t] * r[:, j, t]
            q[:, t, j] = -r[:, j, t] * r[:, t, j]
    prob = np.full((n, k), 1.0 / k)
    eps = 0.005 / k
    active = np.ones(n, dtype=bool)
    for _ in range(max(100, k)):
        idx = np.nonzero(active)[0]
        if not idx.size:
            break
        pa, qa = prob[idx], q[idx]
        qp = np.zeros((idx.size, k))
        pqp = np.zeros(idx.size)
        for t in range(k):  # libsvm's summation order
            for j in range(k):
                qp[:, t] += qa[:, t, j] * pa[:, j]
            pqp += pa[:, t] * qp[:, t]
        done = np.max(np.abs(qp - pqp[:, None]), axis=1) < eps
        todo = ~done
        active[idx[done]] = False
        if not todo.any():
            break
        pa, qa, qp, pqp = pa[todo], qa[todo], qp[todo], pqp[todo]
        for t in range(k):
            diff = (-qp[:, t] + pqp) / qa[:, t, t]
            pa[:, t] += diff
            pqp = (pqp + diff * (diff * qa[:, t, t] + 2 * qp[:, t])) / (1 + diff) / (1 + diff)
            for j in range(k):
                qp[:, j] = (qp[:, j] + diff * qa[:, t, j]) / (1 + diff)
                pa[:, j] /= (1 + diff)
        prob[idx[todo]] = pa
    return prob


def parse_svm_model(text: bytes, n_features: int) -> SvmPredictor:
    """A :class:`SvmPredictor` from libsvm model text; :class:`SvmModelError` says what is wrong.

    ``n_features`` is the length of the feature vectors it will see (SV indices beyond it
    are kept: libsvm's RBF kernel counts them).
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError as exc:
            raise SvmModelError("model text is not ASCII (byte %d)" % exc.start) from None
    lines = text.split("\n")
    header = {}  # type: dict
    sv_start = None
    for i, line in enumerate(lines):
        words = line.split()
        if not words:
            continue
        if words[0] == "SV":
            sv_start = i + 1
            break
        if words[0] in header:
            raise SvmModelError("keyword %r appears twice" % words[0][:40])
        if words[0] not in ("svm_type", "kernel_type", "degree", "gamma", "coef0", "nr_class", "total_sv",
                            "rho", "label", "probA", "probB", "nr_sv"):
            raise SvmModelError("unknown keyword %r (libsvm 2.89 refuses it)" % words[0][:40])
        header[words[0]] = words[1:]
    if sv_start is None:
        raise SvmModelError("no SV section")

    def one(key: str, default: Optional[str] = None) -> str:
        values = header.get(key)
        if values is None:
            if default is None:
                raise SvmModelError("keyword %s is missing" % key)
            return default
        if len(values) != 1:
            raise SvmModelError("%s has %d values, expected 1" % (key, len(values)))
        return values[0]

    svm_type = one("svm_type")
    if svm_type not in SVM_TYPES:
        raise SvmModelError("svm_type %r cannot classify (Gaia's svmpredict needs %s)"
                            % (svm_type[:40], " or ".join(SVM_TYPES)))
    kernel = one("kernel_type")
    if kernel not in KERNELS:
        raise SvmModelError("kernel_type %r is not one of %s" % (kernel[:40], ", ".join(KERNELS)))
    degree = _int(one("degree", "3"), "degree", 0, 100)
    gamma = _float(one("gamma", "0"), "gamma")
    coef0 = _float(one("coef0", "0"), "coef0")
    k = _int(one("nr_class"), "nr_class", 2, MAX_CLASSES)
    total = _int(one("total_sv"), "total_sv", 1, len(lines) - sv_start)
    pairs = k * (k - 1) // 2

    def numbers(key: str, count: int, required: bool = True) -> Optional[np.ndarray]:
        values = header.get(key)
        if values is None:
            if required:
                raise SvmModelError("keyword %s is missing" % key)
            return None
        if len(values) != count:
            raise SvmModelError("%s has %d values, expected %d for %d classes" % (key, len(values), count, k))
        return np.array([_float(v, key) for v in values])

    rho = numbers("rho", pairs)
    prob_a = numbers("probA", pairs, required=False)
    prob_b = numbers("probB", pairs, required=False)
    labels = header.get("label")
    n_sv = header.get("nr_sv")
    if labels is None or n_sv is None:
        raise SvmModelError("keyword %s is missing" % ("label" if labels is None else "nr_sv"))
    if len(labels) != k or len(n_sv) != k:
        raise SvmModelError("label/nr_sv have %d/%d values, expected %d" % (len(labels), len(n_sv), k))
    label_ints = [_int(v, "label", -(1 << 31), (1 << 31) - 1) for v in labels]
    if len(set(label_ints)) != k:
        raise SvmModelError("label lists a class twice")
    counts = [_int(v, "nr_sv", 0, total) for v in n_sv]
    if sum(counts) != total:
        raise SvmModelError("nr_sv sums to %d but total_sv is %d" % (sum(counts), total))
    rows = [line for line in lines[sv_start:] if line.strip()]
    if len(rows) != total:
        raise SvmModelError("total_sv is %d but %d SV lines follow" % (total, len(rows)))
    coef = np.zeros((k - 1, total))
    entries = []  # type: List[Sequence]
    width = n_features
    for j, row in enumerate(rows):
        words = row.split()
        if len(words) < k - 1:
            raise SvmModelError("SV line %d has %d coefficients, expected %d" % (j + 1, len(words), k - 1))
        coef[:, j] = [_float(w, "SV line %d coefficient" % (j + 1)) for w in words[:k - 1]]
        pairs_j = []
        last = 0
        for word in words[k - 1:]:
            index, sep, value = word.partition(":")
            if not sep:
                raise SvmModelError("SV line %d: %r is not index:value" % (j + 1, word[:40]))
            i = _int(index, "SV line %d index" % (j + 1), 1, MAX_FEATURES)
            if i <= last:
                raise SvmModelError("SV line %d: indices not ascending at %d" % (j + 1, i))
            last = i
            pairs_j.append((i - 1, _float(value, "SV line %d value" % (j + 1))))
        width = max(width, last)
        entries.append(pairs_j)
    if total * width > 1 << 28:
        raise SvmModelError("%d support vectors x %d features is too large" % (total, width))
    sv = np.zeros((total, width))
    for j, pairs_j in enumerate(entries):
        for i, value in pairs_j:
            sv[j, i] = value
    if (prob_a is None) != (prob_b is None):
        raise SvmModelError("probA and probB must come together")
    return SvmPredictor(kernel, gamma, degree, coef0, label_ints, counts, sv, coef, rho, prob_a, prob_b)
