"""The final model: fitting it on all training data and replaying its steps on documents.

``FinalModel.steps`` is the whole history Gaia would save (merge ``remove``/``fixlength``,
the preprocessing steps, ``select``, ``cleaner``, ``normalize``, ``addfield``,
``svmtrain``, final ``select``); ``predict`` applies exactly those steps, so it is the
same computation as Essentia's GaiaTransform on the written history.
"""
import re
import unicodedata
from typing import Any, Dict, List, NamedTuple, Sequence

import numpy as np

from abrunnerd.gaia.chain import REAL, STRING, VARIABLE, Descriptor, Layout, Step, StringList
from abrunnerd.trainer import appliers
from abrunnerd.trainer import steps as fit
from abrunnerd.trainer.errors import PredictionError
from abrunnerd.trainer.flatten import flatten_document
from abrunnerd.trainer.frame import Frame
from abrunnerd.trainer.libsvm_predict import parse_model_text, probabilities, svm_model_from_sklearn

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


def fit_final(frame: Frame, head: List[Step], y: np.ndarray, class_mapping: List[str], slug: str,
              kernel: str, c: int, gamma: int, seed: int) -> FinalModel:
    """Steps 3-4 of spec §13 on the preprocessed training data; ``head`` = merge + preprocessing steps."""
    from sklearn.svm import SVC

    class_name = "highlevel." + slug
    select_step, f = fit.fit_select(frame, ["*"])
    clean_step, f = fit.fit_cleaner(f)
    norm_step, f = fit.fit_normalize(f, independent=True)
    layout = f.layout()
    add_step = Step("addfield", "addfieldapplier", {"string": class_name}, {"string": class_name}, {}, layout)
    with_class = _with(layout, Descriptor("." + class_name, STRING, VARIABLE, 1))
    x = f.feature_matrix().astype(np.float64)
    svc = SVC(C=2.0 ** c, kernel=SVM_KERNELS[kernel].replace("polynomial", "poly"), gamma=2.0 ** gamma,
              degree=3, coef0=0.0, tol=1e-3, shrinking=True, probability=True, cache_size=100, random_state=seed)
    svc.fit(x, y)
    model = svm_model_from_sklearn(svc, SVM_KERNELS[kernel], 2.0 ** gamma)
    svm_step = Step("svmtrain", "svmpredict",
                    {"className": class_name, "type": "C-SVC", "kernel": kernel, "c": 2.0 ** c,
                     "gamma": 2.0 ** gamma, "probability": True},
                    {"className": class_name, "classMapping": StringList(class_mapping),
                     "descriptorNames": StringList(f.names()), "modelData": model, "probability": True},
                    {}, with_class)
    with_prob = _with(with_class, Descriptor("." + class_name + "Probability", REAL, VARIABLE, 1))
    last = Step("select", "selectdesc", {"descriptorNames": class_name + "*"},
                {"descriptorNames": StringList(["." + class_name, "." + class_name + "Probability"])}, {},
                with_prob)
    steps = list(head) + [select_step, clean_step, norm_step, add_step, svm_step, last]
    return FinalModel(steps, class_name, list(class_mapping))


def document_frame(layout: Layout, doc: Dict[str, Any], mbid: str) -> Frame:
    """A one-point frame with the descriptors of a history's first layout."""
    flat = flatten_document(doc, mbid)
    values, types = {}, {}
    for d in layout.descriptors:
        if d.name not in flat:
            raise PredictionError("recording %s lacks descriptor %s, which the model needs" % (mbid, d.name[1:]))
        kind, v = flat[d.name]
        if kind != d.type:
            raise PredictionError("recording %s: descriptor %s has another type than in training"
                                  % (mbid, d.name[1:]))
        values[d.name] = (np.asarray(v, dtype=np.float32) if kind == REAL else np.asarray(v, dtype=object))[None, :]
        types[d.name] = kind
    return Frame([mbid], values, types)


def _fixlength(frame: Frame, names: Sequence[str], following: Layout, mbid: str) -> Frame:
    sizes = {d.name: d.size for d in following.descriptors}
    for name in names:
        want = sizes.get(name)
        if want is not None and frame.values[name].shape[1] != want:
            raise PredictionError("recording %s: descriptor %s has %d values, the model was trained on %d"
                                  % (mbid, name[1:], frame.values[name].shape[1], want))
    return frame


def apply_steps(steps: List[Step], frame: Frame, mbid: str = "", start: int = 0, stop: int = -1) -> Any:
    """Run a history's appliers ``start..stop-1`` on a frame; returns the probabilities if svmpredict runs."""
    for k, step in enumerate(steps):
        if k < start or (stop >= 0 and k >= stop):
            continue
        following = steps[k + 1].input_layout if k + 1 < len(steps) else None
        names = list(step.params.get("descriptorNames", []) or [])
        if step.applier == "removedesc":
            frame = appliers.remove(frame, names)
        elif step.applier == "selectdesc":
            if step.analyzer == "select" and k > 0 and steps[k - 1].applier == "svmpredict":
                continue
            frame = appliers.select(frame, names)
        elif step.applier == "fixlengthapplier":
            frame = _fixlength(frame, names, following, mbid) if following is not None else frame
        elif step.applier == "enumerateapplier":
            frame = appliers.enumerate_strings(frame, names, following.enum_maps)
        elif step.applier == "dotproduct":
            frame = appliers.dot_product(frame, step.params["coeffs"])
        elif step.applier == "distribute":
            dists = {key: np.frombuffer(bytes(v), dtype="<f4") for key, v in step.params["distribution"].items()}
            frame = appliers.distribute(frame, dists)
        elif step.applier == "addfieldapplier":
            continue
        elif step.applier == "svmpredict":
            model = step.params["modelData"]
            if isinstance(model, (bytes, str)):
                model = parse_model_text(model)
            x = np.concatenate([frame.values[n].astype(np.float64) for n in names], axis=1)
            return probabilities(model, x)
        else:
            raise PredictionError("unsupported transformation %r in the model" % step.applier)
    return frame


def _fixed_prefix(steps: List[Step]) -> int:
    """Number of leading steps that must run per document (up to and including fixlength)."""
    for k, step in enumerate(steps):
        if step.applier == "fixlengthapplier":
            return k + 1
    return 0


def _stack(frames: List[Frame]) -> Frame:
    first = frames[0]
    values = {n: np.concatenate([f.values[n] for f in frames], axis=0) for n in first.values}
    return Frame([f.ids[0] for f in frames], values, dict(first.types), dict(first.enum_maps))


def predict_documents(steps: List[Step], documents: Dict[str, Dict[str, Any]],
                      batch: int = 256) -> Dict[str, Dict[str, Any]]:
    """Replay the steps on many documents: per document up to fixlength, then in batches.

    Every later applier works row by row (enum codes for unseen strings are handed out
    per document), so batching gives what one GaiaTransform per document gives.
    """
    svm = next(s for s in steps if s.applier == "svmpredict")
    mapping = list(svm.params["classMapping"])
    head = _fixed_prefix(steps)
    if head == 0:
        raise PredictionError("the model has no fixlength step; cannot batch documents")
    out: Dict[str, Dict[str, Any]] = {}
    ids = list(documents)
    for start in range(0, len(ids), batch):
        frames = []
        for mbid in ids[start:start + batch]:
            frame = document_frame(steps[0].input_layout, documents[mbid], mbid)
            frames.append(apply_steps(steps[:head] + [steps[head]], frame, mbid, stop=head))
        probs = apply_steps(steps, _stack(frames), "", start=head)
        for row, frame in enumerate(frames):
            best = int(np.argmax(probs[row]))
            out[frame.ids[0]] = {"value": mapping[best],
                                 "all": {cls: float(probs[row, i]) for i, cls in enumerate(mapping)}}
    return out


def predict_document(steps: List[Step], doc: Dict[str, Any], mbid: str) -> Dict[str, Any]:
    return predict_documents(steps, {mbid: doc})[mbid]
