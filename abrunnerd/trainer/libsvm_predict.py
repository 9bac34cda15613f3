"""libsvm's prediction from a stored model, in numpy (what Gaia's ``svmpredict`` does).

Works on :class:`abrunnerd.gaia.chain.SvmModel` or libsvm model text, so a model read
back from a ``.history`` predicts exactly like the one just trained: one-vs-one decision
values, Platt sigmoids clipped to [1e-7, 1-1e-7], Wu-Lin-Weng pairwise coupling.
"""
from typing import List, Optional, Union

import numpy as np

from abrunnerd.gaia.chain import SvmModel

MIN_PROB = 1e-7


def parse_model_text(text: Union[bytes, str]) -> SvmModel:
    """The header and SV lines of a libsvm model file (history spec §7)."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    head, _, body = text.partition("\nSV\n")
    fields = {}
    for line in head.splitlines():
        parts = line.split()
        if parts:
            fields[parts[0]] = parts[1:]
    kernel = fields["kernel_type"][0]
    k = int(fields["nr_class"][0])
    rows = [r.split() for r in body.splitlines() if r.strip()]
    index_max = max([int(t.split(":")[0]) for r in rows for t in r[k - 1:]] or [0])
    sv = np.zeros((len(rows), index_max))
    coef = np.zeros((k - 1, len(rows)))
    for i, r in enumerate(rows):
        coef[:, i] = [float(v) for v in r[:k - 1]]
        for t in r[k - 1:]:
            j, v = t.split(":")
            sv[i, int(j) - 1] = float(v)
    get = fields.get
    return SvmModel(kernel=kernel, gamma=float(get("gamma", ["0"])[0]), degree=int(get("degree", ["3"])[0]),
                    coef0=float(get("coef0", ["0"])[0]), labels=[int(v) for v in fields["label"]],
                    n_support=[int(v) for v in fields["nr_sv"]], support_vectors=sv, dual_coef=coef,
                    rho=np.array([float(v) for v in fields["rho"]]),
                    prob_a=np.array([float(v) for v in fields["probA"]]) if "probA" in fields else None,
                    prob_b=np.array([float(v) for v in fields["probB"]]) if "probB" in fields else None)


def kernel_values(model: SvmModel, x: np.ndarray) -> np.ndarray:
    sv = np.asarray(model.support_vectors, dtype=np.float64)
    if sv.shape[1] < x.shape[1]:  # sparse text may omit trailing zero features
        sv = np.hstack([sv, np.zeros((sv.shape[0], x.shape[1] - sv.shape[1]))])
    if model.kernel == "rbf":
        d = ((x[:, None, :] - sv[None, :, :]) ** 2).sum(axis=2)
        return np.exp(-model.gamma * d)
    if model.kernel == "polynomial":
        base = model.gamma * (x @ sv.T) + model.coef0
        out = np.ones_like(base)
        t, tmp = model.degree, base
        while t > 0:  # libsvm's powi
            if t % 2 == 1:
                out = out * tmp
            tmp = tmp * tmp
            t //= 2
        return out
    if model.kernel == "linear":
        return x @ sv.T
    raise ValueError("unsupported kernel %r" % model.kernel)


def decision_values(model: SvmModel, x: np.ndarray) -> np.ndarray:
    kv = kernel_values(model, x)
    k = len(model.labels)
    start = np.concatenate([[0], np.cumsum(model.n_support)[:-1]]).astype(int)
    coef = np.asarray(model.dual_coef, dtype=np.float64)
    out = np.empty((x.shape[0], k * (k - 1) // 2))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            si, sj, ci, cj = start[i], start[j], model.n_support[i], model.n_support[j]
            s = kv[:, si:si + ci] @ coef[j - 1, si:si + ci] + kv[:, sj:sj + cj] @ coef[i, sj:sj + cj]
            out[:, p] = s - model.rho[p]
            p += 1
    return out


def _sigmoid(f: np.ndarray, a: float, b: float) -> np.ndarray:
    fapb = f * a + b
    with np.errstate(over="ignore"):
        pos = np.exp(-np.abs(fapb))
        return np.where(fapb >= 0, pos / (1.0 + pos), 1.0 / (1.0 + np.exp(np.minimum(fapb, 0))))


def _couple(r: np.ndarray) -> np.ndarray:
    """libsvm's multiclass_probability for one point (r[i][j] = P(i | i or j))."""
    k = r.shape[0]
    q = np.zeros((k, k))
    for t in range(k):
        for j in range(t):
            q[t, t] += r[j, t] * r[j, t]
            q[t, j] = q[j, t]
        for j in range(t + 1, k):
            q[t, t] += r[j, t] * r[j, t]
            q[t, j] = -r[j, t] * r[t, j]
    p = np.full(k, 1.0 / k)
    eps = 0.005 / k
    for _ in range(max(100, k)):
        qp = [sum(q[t, j] * p[j] for j in range(k)) for t in range(k)]
        pqp = sum(p[t] * qp[t] for t in range(k))
        if max(abs(qp[t] - pqp) for t in range(k)) < eps:
            break
        for t in range(k):
            diff = (-qp[t] + pqp) / q[t, t]
            p[t] += diff
            pqp = (pqp + diff * (diff * q[t, t] + 2 * qp[t])) / (1 + diff) / (1 + diff)
            for j in range(k):
                qp[j] = (qp[j] + diff * q[t, j]) / (1 + diff)
                p[j] /= (1 + diff)
    return p


def probabilities(model: SvmModel, x: np.ndarray) -> np.ndarray:
    """(n, K) probabilities, column i = the class with libsvm label ``i``."""
    if model.prob_a is None or model.prob_b is None:
        raise ValueError("the model was trained without probability estimates")
    dec = decision_values(model, x)
    k = len(model.labels)
    out = np.zeros((x.shape[0], k))
    for row in range(x.shape[0]):
        r = np.zeros((k, k))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                v = _sigmoid(np.array(dec[row, p]), model.prob_a[p], model.prob_b[p])
                r[i, j] = min(max(float(v), MIN_PROB), 1 - MIN_PROB)
                r[j, i] = 1 - r[i, j]
                p += 1
        probs = _couple(r)
        for idx, label in enumerate(model.labels):
            out[row, label] = probs[idx]
    return out


def svm_model_from_sklearn(svc, kernel: str, gamma: float, features: Optional[np.ndarray] = None) -> SvmModel:
    """Build the libsvm model of a fitted ``sklearn.svm.SVC`` (history spec §7 mapping).

    ``features``: the training matrix of an SVC fitted on a precomputed kernel (its
    support vectors are then ``features[support_]``, in libsvm's order).
    """
    svs = svc.support_vectors_ if features is None else features[svc.support_]
    prob_a = getattr(svc, "_probA", None)
    if prob_a is None or not len(prob_a):
        prob_a = getattr(svc, "probA_", None)
    prob_b = getattr(svc, "_probB", None)
    if prob_b is None or not len(prob_b):
        prob_b = getattr(svc, "probB_", None)
    labels: List[int] = [int(c) for c in svc.classes_]
    return SvmModel(kernel=kernel, gamma=float(gamma), degree=3, coef0=0.0, labels=labels,
                    n_support=[int(n) for n in svc.n_support_],
                    support_vectors=np.asarray(svs, dtype=np.float64),
                    dual_coef=np.asarray(svc._dual_coef_, dtype=np.float64),
                    rho=-np.asarray(svc._intercept_, dtype=np.float64),
                    prob_a=None if prob_a is None or not len(prob_a) else np.asarray(prob_a, dtype=np.float64),
                    prob_b=None if prob_b is None or not len(prob_b) else np.asarray(prob_b, dtype=np.float64))
