"""A small AB-shaped classification chain built by hand, for the predictor's unit tests.

Every applier kind of an AB history appears once (removedesc, fixlengthapplier,
enumerateapplier, dotproduct, distribute, selectdesc, addfieldapplier, svmpredict) on a
five-descriptor document, with a hand-written two-class libsvm model, so the tests need
neither Gaia nor scikit-learn and run on every runtime profile.
"""
import copy
from typing import Any, Dict, List

import numpy as np

from abrunnerd.gaia.chain import (ENUM, FIXED, REAL, STRING, VARIABLE, Descriptor, Float32Blob, Layout, RealList,
                                  Step, StringList)

CLASS = "highlevel.toy"
DOC = {
    "lowlevel": {"x": [0.5, 1.5, -2.0], "m": [[1.0, 2.0], [3.0, 4.0]], "dropped": [1.0, 2.0, 3.0, 4.0]},
    "tonal": {"key": "C", "chords": ["A", "B"]},
    "metadata": {"version": {"essentia": "2.1-beta2"}, "tags": {"artist": ["someone"]}},
}
FEATURES = [(".lowlevel.m", REAL, 6), (".lowlevel.x", REAL, 3), (".tonal.chords", ENUM, 2), (".tonal.key", ENUM, 1)]
MODEL_TEXT = (b"svm_type c_svc\nkernel_type rbf\ngamma 0.25\nnr_class 2\ntotal_sv 3\nrho 0.04\nlabel 1 0\n"
              b"probA -20\nprobB 0\nnr_sv 2 1\nSV\n"
              b"0.75 1:0.1 2:0.2 3:0.3 4:0.4 5:0.5 6:0.6 7:0.1 8:0.9 9:0 10:1 11:2\n"
              b"0.5 1:0.9 2:0.1 3:0.5 4:0.5 5:0.2 6:0.1 7:0.7 8:0.3 9:1 10:0 11:0\n"
              b"-1.25 1:0.4 2:0.4 3:0.4 4:0.4 5:0.4 6:0.4 7:0.4 8:0.4 9:2 10:2 11:1\n")


def _layout(descs: List[Descriptor], maps: Dict[str, List[str]] = None) -> Layout:
    return Layout(sorted(descs, key=lambda d: d.name), dict(maps or {}))


def toy_steps(model_text: bytes = MODEL_TEXT, enum_maps: bool = True) -> List[Step]:
    raw = _layout([Descriptor(".lowlevel.x", REAL, VARIABLE), Descriptor(".lowlevel.m", REAL, VARIABLE),
                   Descriptor(".lowlevel.dropped", REAL, VARIABLE), Descriptor(".tonal.key", STRING, VARIABLE),
                   Descriptor(".tonal.chords", STRING, VARIABLE),
                   Descriptor(".metadata.version.essentia", STRING, VARIABLE)])
    kept = _layout([d for d in raw.descriptors if d.name != ".lowlevel.dropped"])
    sizes = {".lowlevel.x": 3, ".lowlevel.m": 6, ".tonal.key": 1, ".tonal.chords": 2, ".metadata.version.essentia": 1}
    fixed = _layout([Descriptor(d.name, d.type, FIXED, sizes[d.name]) for d in kept.descriptors])
    maps = {".tonal.key": ["C", "D", "E"], ".tonal.chords": ["A", "B", "C"]} if enum_maps else {}
    enumerated = _layout([Descriptor(d.name, ENUM if d.name.startswith(".tonal") else d.type, FIXED, d.size)
                          for d in fixed.descriptors], maps)
    features = _layout([d for d in enumerated.descriptors if not d.name.startswith(".metadata")], maps)
    field = "." + CLASS
    with_class = _layout(features.descriptors + [Descriptor(field, STRING, VARIABLE)], maps)
    with_prob = _layout(with_class.descriptors + [Descriptor(field + "Probability", REAL, VARIABLE)], maps)
    dist = Float32Blob.from_array(np.array([-3, -1, 0, 0.5, 1, 2, 2, 4], dtype=np.float32))
    return [
        Step("remove", "removedesc", {}, {"descriptorNames": StringList([".lowlevel.dropped"])}, {}, raw),
        Step("fixlength", "fixlengthapplier", {}, {"descriptorNames": StringList(sorted(sizes))}, {}, kept),
        Step("enumerate", "enumerateapplier", {}, {"descriptorNames": StringList([".tonal.chords", ".tonal.key"])},
             {}, fixed),
        Step("remove", "removedesc", {}, {"descriptorNames": StringList([".metadata.version.essentia"])}, {},
             enumerated),
        Step("normalize", "dotproduct", {}, {"applyClipping": False, "coeffs": {
            ".lowlevel.m": {"a": RealList([0.5] * 6), "b": RealList([0.25] * 6)},
            ".lowlevel.x": {"a": RealList([0.1, 0.2, 0.3]), "b": RealList([0.0, 0.5, 1.0])}}}, {}, features),
        Step("gaussianize", "distribute", {}, {"distribution": {".lowlevel.x[0]": dist, ".lowlevel.x[2]": dist}},
             {}, features),
        Step("addfield", "addfieldapplier", {"string": CLASS}, {"string": CLASS}, {}, features),
        Step("svmtrain", "svmpredict", {"className": CLASS},
             {"className": CLASS, "classMapping": StringList(["no", "yes"]),
              "descriptorNames": StringList([n for n, _, _ in FEATURES]), "modelData": model_text,
              "probability": True}, {}, with_class),
        Step("select", "selectdesc", {}, {"descriptorNames": StringList([field, field + "Probability"])}, {},
             with_prob),
    ]


def toy_doc(**changes: Any) -> Dict[str, Any]:
    """DOC with ``section__key=value`` changes (value None deletes the key)."""
    doc = copy.deepcopy(DOC)
    for path, value in changes.items():
        node = doc
        parts = path.split("__")
        for part in parts[:-1]:
            node = node[part]
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    return doc
