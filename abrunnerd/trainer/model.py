"""The final model: fitting it on all training data and replaying its steps on documents.

``FinalModel.steps`` is the whole history Gaia would save (merge ``remove``/``fixlength``,
the preprocessing steps, ``select``, ``cleaner``, ``normalize``, ``addfield``,
``svmtrain``, final ``select``); ``predict`` applies exactly those steps with the
project's one predictor (:mod:`abrunnerd.gaia.apply`, also behind ``abrunnerctl predict``),
the same computation as Essentia's GaiaTransform on the written history.
"""
import re
import unicodedata
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from abrunnerd.gaia.chain import REAL, STRING, VARIABLE, Descriptor, Layout, Step, StringList
from abrunnerd.trainer import steps as fit
from abrunnerd.trainer.errors import PredictionError
from abrunnerd.trainer.frame import Frame
from abrunnerd.trainer.kernels import CHUNK_ROWS, gram_diagonal
from abrunnerd.trainer.libsvm_predict import svm_model_from_sklearn

SVM_KERNELS = {"RBF": "rbf", "poly": "polynomial"}


def slugify(name: str) -> str:
    """AB's ``db.dataset.slugify`` (the class name of the history is ``highlevel.<slug>``)."""
    value = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    value = re.sub(r"[^\w\s-]", "", value).strip().lower()
    return re.sub(r"[-\s]+", "-", value)


def class_order(classes: Sequence[str]) -> List[str]:
    """Gaia's classMapping order: sorted by UTF-16 code units."""
    return sorted(set(classes), key=lambda s: s.encode("utf-16-be"))


def _with(layout: Layout, *extra: Descriptor) -> Layout:
    return Layout(list(layout.descriptors) + list(extra), dict(layout.enum_maps))


class FinalModel(NamedTuple):
    steps: List[Step]
    class_name: str  # "highlevel.<slug>"
    class_mapping: List[str]

    def predict(self, documents: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
        """``{mbid: {"value": class, "all": {class: probability}}}`` (as a fresh GaiaTransform per document)."""
        return predict_documents(self.steps, documents)


def full_kernel(x: np.ndarray, kernel: str, gamma: float) -> np.ndarray:
    """The n x n training kernel in one float64 matrix (the Gram matrix, transformed in place by row
    blocks with the cross-validation kernels' arithmetic)."""
    k = x @ x.T
    sq = gram_diagonal(x, k)
    for start in range(0, k.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        block = k[rows]
        if kernel == "RBF":
            dist = np.add(sq[rows, None], sq[None, :])
            dist -= 2.0 * block
            np.multiply(dist, -gamma, out=dist)
            block[...] = np.exp(dist)
        else:
            np.multiply(block, gamma, out=block)
            block *= block * block
    return k


def fit_final(frame: Frame, head: List[Step], y: np.ndarray, class_mapping: List[str], slug: str,
              kernel: str, c: int, gamma: int, seed: int, balance_classes: Optional[bool] = None,
              memory_budget: Optional[int] = None) -> FinalModel:
    """Steps 3-4 of spec §13 on the preprocessed training data; ``head`` = merge + preprocessing steps.

    ``balance_classes``: None for AB's grid (no such parameter in the history), else Gaia master's
    ``balanceClasses`` (class weights N / (K N_k), scikit-learn's "balanced").
    The kernel is precomputed when its n^2 float64 fit ``memory_budget`` (None: always).
    """
    from sklearn.svm import SVC

    class_name = "highlevel." + slug
    select_step, f = fit.fit_select(frame, ["*"])
    clean_step, f = fit.fit_cleaner(f)
    norm_step, f = fit.fit_normalize(f, independent=True)
    layout = f.layout()
    add_step = Step("addfield", "addfieldapplier", {"string": class_name}, {"string": class_name}, {}, layout)
    with_class = _with(layout, Descriptor("." + class_name, STRING, VARIABLE, 1))
    x = f.feature_matrix().astype(np.float64)
    weights = "balanced" if balance_classes else None
    if memory_budget is None or 8 * x.shape[0] ** 2 <= memory_budget:
        # One kernel with BLAS, shared by the fit and Platt's five internal folds
        svc = SVC(C=2.0 ** c, kernel="precomputed", tol=1e-3, shrinking=True, probability=True,
                  cache_size=100, random_state=seed % (2 ** 32), class_weight=weights)
        svc.fit(full_kernel(x, kernel, 2.0 ** gamma), y)
        model = svm_model_from_sklearn(svc, SVM_KERNELS[kernel], 2.0 ** gamma, features=x)
    else:  # over the budget: libsvm computes kernel rows in its cache
        svc = SVC(C=2.0 ** c, kernel=SVM_KERNELS[kernel].replace("polynomial", "poly"), gamma=2.0 ** gamma,
                  degree=3, coef0=0.0, tol=1e-3, shrinking=True, probability=True, cache_size=100,
                  random_state=seed % (2 ** 32), class_weight=weights)
        svc.fit(x, y)
        model = svm_model_from_sklearn(svc, SVM_KERNELS[kernel], 2.0 ** gamma)
    analyzer = {"className": class_name, "type": "C-SVC", "kernel": kernel, "c": 2.0 ** c,
                "gamma": 2.0 ** gamma, "probability": True}
    if balance_classes is not None:
        analyzer["balanceClasses"] = bool(balance_classes)
    svm_step = Step("svmtrain", "svmpredict", analyzer,
                    {"className": class_name, "classMapping": StringList(class_mapping),
                     "descriptorNames": StringList(f.names()), "modelData": model, "probability": True},
                    {}, with_class)
    with_prob = _with(with_class, Descriptor("." + class_name + "Probability", REAL, VARIABLE, 1))
    last = Step("select", "selectdesc", {"descriptorNames": class_name + "*"},
                {"descriptorNames": StringList(["." + class_name, "." + class_name + "Probability"])}, {},
                with_prob)
    steps = list(head) + [select_step, clean_step, norm_step, add_step, svm_step, last]
    return FinalModel(steps, class_name, list(class_mapping))


def predict_documents(steps: List[Step], documents: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, Any]]:
    """``{mbid: {"value", "all"}}`` through the project's one predictor, :mod:`abrunnerd.gaia.apply`.

    It applies the chain as a fresh Essentia GaiaTransform per document would; a document
    it cannot map raises PredictionError naming the recording and the descriptor.
    """
    from abrunnerd.gaia.apply import DocumentError, ModelError, compile_steps

    try:
        model = compile_steps(steps, "the trained model")
    except ModelError as exc:
        raise PredictionError(str(exc)) from None
    ids = list(documents)
    out = {}  # type: Dict[str, Dict[str, Any]]
    for start in range(0, len(ids), 256):
        chunk = ids[start:start + 256]
        for mbid, result in zip(chunk, model.predict([documents[m] for m in chunk])):
            if isinstance(result, DocumentError):
                raise PredictionError("recording %s: %s" % (mbid, result))
            out[mbid] = {"value": result.value, "all": dict(result.all or {})}
    return out


def predict_document(steps: List[Step], doc: Dict[str, Any], mbid: str) -> Dict[str, Any]:
    return predict_documents(steps, {mbid: doc})[mbid]
