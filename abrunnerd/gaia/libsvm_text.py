"""libsvm model text (what ``svm_save_model`` writes) for the ``svmtrain`` step's ``modelData``.

Gaia's ``svmpredict`` writes ``modelData`` to a file and loads it with the libsvm 2.89
it bundles, so the text must use only the keywords that loader knows (history format
§7).  Numbers are written with ``%.17g`` so every double survives exactly.
:func:`parse_model_header` reads the header back for ``inspect-history``;
:func:`parse_model` reads a whole model (ours or Gaia's) back into an :class:`SvmModel`.
"""
import math
from typing import Dict, List

import numpy as np

from abrunnerd.gaia.chain import SvmModel

KERNELS = ("linear", "polynomial", "rbf", "sigmoid")


def _num(x: float) -> str:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("libsvm model value %r is not finite" % x)
    return "%.17g" % x


def render_model(model: SvmModel) -> bytes:
    """The libsvm 2.89-loadable text of a C-SVC model; ValueError on an inconsistent model."""
    if model.kernel not in KERNELS:
        raise ValueError("kernel %r is not one of libsvm's %s" % (model.kernel, ", ".join(KERNELS)))
    k = len(model.labels)
    sv = np.asarray(model.support_vectors, dtype=np.float64)
    coef = np.asarray(model.dual_coef, dtype=np.float64)
    rho = np.ravel(np.asarray(model.rho, dtype=np.float64))
    total = int(sum(model.n_support))
    if k < 2 or len(model.n_support) != k or sv.ndim != 2 or sv.shape[0] != total:
        raise ValueError("SVM model: %d labels, n_support %s and %s support vectors disagree"
                         % (k, list(model.n_support), sv.shape))
    if coef.shape != (k - 1, total) or rho.shape != (k * (k - 1) // 2,):
        raise ValueError("SVM model: dual_coef %s / rho %s do not fit %d classes and %d SVs"
                         % (coef.shape, rho.shape, k, total))
    lines = ["svm_type c_svc", "kernel_type " + model.kernel]
    if model.kernel == "polynomial":
        lines.append("degree %d" % int(model.degree))
    if model.kernel != "linear":
        lines.append("gamma " + _num(model.gamma))
    if model.kernel in ("polynomial", "sigmoid"):
        lines.append("coef0 " + _num(model.coef0))
    lines += ["nr_class %d" % k, "total_sv %d" % total,
              "rho " + " ".join(_num(r) for r in rho),
              "label " + " ".join("%d" % int(label) for label in model.labels)]
    if model.prob_a is not None and model.prob_b is not None:
        lines.append("probA " + " ".join(_num(a) for a in np.ravel(model.prob_a)))
        lines.append("probB " + " ".join(_num(b) for b in np.ravel(model.prob_b)))
    lines += ["nr_sv " + " ".join("%d" % int(n) for n in model.n_support), "SV"]
    for j in range(total):
        coefs = " ".join(_num(c) for c in coef[:, j])
        feats = " ".join("%d:%s" % (i + 1, _num(v)) for i, v in enumerate(sv[j]))
        lines.append(coefs + " " + feats)
    return ("\n".join(lines) + "\n").encode("ascii")


def parse_model_header(text: bytes) -> Dict[str, List[str]]:
    """The keyword lines before ``SV`` as {keyword: [values]}, plus ``n_features``."""
    header = {}  # type: Dict[str, List[str]]
    lines = text.decode("ascii", "replace").split("\n")
    for i, line in enumerate(lines):
        words = line.split()
        if not words:
            continue
        if words[0] == "SV":
            n_features = 0
            for sv_line in lines[i + 1:]:
                idx = [int(w.split(":")[0]) for w in sv_line.split() if ":" in w]
                n_features = max([n_features] + idx)
            header["n_features"] = [str(n_features)]
            break
        header[words[0]] = words[1:]
    return header


def parse_model(text: bytes, n_features: int = 0) -> SvmModel:
    """An :class:`SvmModel` from libsvm model text (C-SVC); ValueError saying what is wrong.

    Sparse SV lines are expanded to ``max(n_features, highest index)`` dense columns.
    """
    header = parse_model_header(text)
    try:
        if header.get("svm_type") != ["c_svc"]:
            raise ValueError("only c_svc models are supported, got %s" % header.get("svm_type"))
        k = int(header["nr_class"][0])
        total = int(header["total_sv"][0])
        width = max(n_features, int(header["n_features"][0]))
        lines = text.decode("ascii").split("\n")
        start = next(i for i, line in enumerate(lines) if line.split()[:1] == ["SV"]) + 1
        sv_lines = [line for line in lines[start:] if line.strip()]
        if len(sv_lines) != total:
            raise ValueError("total_sv is %d but %d SV lines follow" % (total, len(sv_lines)))
        coef = np.zeros((k - 1, total))
        sv = np.zeros((total, width))
        for j, line in enumerate(sv_lines):
            words = line.split()
            coef[:, j] = [float(w) for w in words[:k - 1]]
            for word in words[k - 1:]:
                index, value = word.split(":")
                sv[j, int(index) - 1] = float(value)
        prob_a = np.array([float(a) for a in header["probA"]]) if "probA" in header else None
        prob_b = np.array([float(b) for b in header["probB"]]) if "probB" in header else None
        return SvmModel(kernel=header["kernel_type"][0], gamma=float(header.get("gamma", ["0"])[0]),
                        degree=int(header.get("degree", ["3"])[0]), coef0=float(header.get("coef0", ["0"])[0]),
                        labels=[int(v) for v in header["label"]], n_support=[int(v) for v in header["nr_sv"]],
                        support_vectors=sv, dual_coef=coef, rho=np.array([float(r) for r in header["rho"]]),
                        prob_a=prob_a, prob_b=prob_b)
    except (KeyError, IndexError, StopIteration, UnicodeDecodeError) as exc:
        raise ValueError("malformed libsvm model text: %r" % (exc,)) from None
