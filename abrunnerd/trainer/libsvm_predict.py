"""A fitted scikit-learn SVC as the libsvm model a history stores (history spec §7).

Prediction from a stored model lives in :mod:`abrunnerd.gaia.svm` (the one predictor
of the project, used by the trainer and by ``abrunnerctl predict``).
"""
from typing import List, Optional

import numpy as np

from abrunnerd.gaia.chain import SvmModel


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
