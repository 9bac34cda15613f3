"""Essentia's GaiaTransform applies the histories we write and agrees with our predictions.

Needs the oracle venv (``tools/essentia-oracle-venv``; CI sets ABRUNNERD_ORACLE=required).
Each document gets a fresh GaiaTransform (gaia-transform-output.md §5).
"""
import json
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest

from abrunnerd.gaia.chain import FIXED, REAL, STRING, VARIABLE, Descriptor, Layout, Step, StringList, SvmModel
from abrunnerd.gaia.history import loads_history, read_history, write_history
from gaia_oracle import AB_REAL_SMALL, Oracle

pytestmark = pytest.mark.oracle
TOLERANCE = 1e-6


def compare(essentia: Dict[str, dict], ours: Dict[str, dict]) -> Tuple[int, float]:
    """Asserts identical classes; returns (documents compared, max probability difference)."""
    assert set(essentia) == set(ours)
    worst = 0.0
    for key, got in essentia.items():
        want = ours[key]
        assert got["value"] == want["value"], "%s: Essentia says %s, we say %s" % (key, got, want)
        assert set(got["all"]) == set(want["all"])
        worst = max([worst] + [abs(got["all"][c] - want["all"][c]) for c in want["all"]])
    assert worst <= TOLERANCE
    return len(essentia), worst


def test_gaias_reference_rewritten_by_us_predicts_like_gaia(tmp_path, reference_bytes, reference_predictions,
                                                           ab_real_1_lowlevel, oracle):
    path = tmp_path / "rewritten.history"
    write_history(loads_history(reference_bytes), path)
    assert path.read_bytes() == reference_bytes
    docs = sorted(ab_real_1_lowlevel.glob("*.json"))
    assert len(docs) == 180
    pools = oracle.apply(path, docs)
    got = {Path(p).stem: oracle.svm_output(pool, "highlevel.ab-real-1") for p, pool in pools.items()}
    n, worst = compare(got, reference_predictions)
    assert n == 180


# --- A hand-built minimal chain (history format §9) around a scikit-learn SVC ---

FEATURES = [(".lowlevel.average_loudness", 1), (".lowlevel.mfcc.mean", 13),
            (".lowlevel.spectral_centroid.mean", 1)]


def load_small() -> Tuple[List[Path], List[str], np.ndarray, List[str]]:
    dataset = json.loads((AB_REAL_SMALL / "dataset.json").read_text())
    paths, labels = [], []
    for cls in dataset["classes"]:
        for mbid in cls["recordings"]:
            paths.append(AB_REAL_SMALL / "lowlevel" / (mbid + ".json"))
            labels.append(cls["name"])
    rows = []
    for path in paths:
        doc = json.loads(path.read_text())
        row = []  # type: List[float]
        for name, _ in FEATURES:
            node = doc
            for part in name[1:].split("."):
                node = node[part]
            row.extend(node if isinstance(node, list) else [node])
        rows.append(row)
    # Gaia stores point values as float32: train and predict on exactly those values.
    x = np.asarray(rows, dtype=np.float32).astype(np.float64)
    return paths, labels, x, sorted(set(labels))


def svm_model_from_sklearn(clf, kernel: str) -> SvmModel:
    return SvmModel(kernel=kernel, gamma=float(clf._gamma), degree=int(clf.degree), coef0=float(clf.coef0),
                    labels=[int(c) for c in clf.classes_], n_support=[int(n) for n in clf.n_support_],
                    support_vectors=clf.support_vectors_, dual_coef=clf._dual_coef_, rho=-clf._intercept_,
                    prob_a=clf.probA_, prob_b=clf.probB_)


def minimal_chain(model: SvmModel, class_name: str, classes: List[str]) -> List[Step]:
    first = Layout([Descriptor(name, REAL, FIXED, size) for name, size in FEATURES])
    field = "." + class_name
    with_field = Layout(first.descriptors + [Descriptor(field, STRING, VARIABLE)])
    with_prob = Layout(with_field.descriptors + [Descriptor(field + "Probability", REAL, VARIABLE)])
    names = StringList(name for name, _ in FEATURES)
    return [
        Step("addfield", "addfieldapplier", {"string": class_name}, {"string": class_name}, {}, first),
        Step("svmtrain", "svmpredict",
             {"className": class_name, "type": "C-SVC", "kernel": model.kernel, "probability": True},
             {"className": class_name, "classMapping": StringList(classes), "descriptorNames": names,
              "modelData": model, "probability": True}, {}, with_field),
        Step("select", "selectdesc", {"descriptorNames": class_name + "*"},
             {"descriptorNames": StringList([field, field + "Probability"])}, {}, with_prob),
    ]


@pytest.mark.parametrize("kernel", ["rbf", "poly"])
def test_minimal_chain_with_sklearn_svc(tmp_path, oracle, kernel):
    from sklearn.svm import SVC

    paths, labels, x, classes = load_small()
    y = np.array([classes.index(label) for label in labels])
    scale = x.std(axis=0) + 1e-9  # keep the kernel well-conditioned without a normalize step
    gamma = 1.0 / (x.shape[1] * np.mean(np.var(x / scale, axis=0))) / float(np.mean(scale)) ** 2
    clf = SVC(kernel=kernel, C=4.0, gamma=gamma, degree=3, coef0=0.0, probability=True, random_state=0)
    clf.fit(x, y)
    model = svm_model_from_sklearn(clf, "rbf" if kernel == "rbf" else "polynomial")
    path = tmp_path / "minimal.history"
    write_history(minimal_chain(model, "highlevel.mini-test", classes), path)
    assert read_history(path)[1].params["modelData"].startswith(b"svm_type c_svc\nkernel_type ")

    proba = clf.predict_proba(x)
    ours = {str(p): {"value": classes[int(np.argmax(row))], "all": dict(zip(classes, row.tolist()))}
            for p, row in zip(paths, proba)}
    pools = oracle.apply(path, paths)
    got = {p: oracle.svm_output(pool, "highlevel.mini-test") for p, pool in pools.items()}
    n, worst = compare(got, ours)
    assert n == 60


# --- Models trained by abrunnerd.trainer: every preprocessing set x kernel ---

PREPROCESSINGS = ["basic", "lowlevel", "nobands", "normalized", "gaussianized"]
KERNELS = ["RBF", "poly"]
# One grid point per model (C = 2^3, gamma = 2^-5): the oracle checks the file, not the search.
C_EXP, GAMMA_EXP = 3, -5


def _scaled(value, factor):
    if isinstance(value, bool) or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return value * factor
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: _scaled(v, factor) for k, v in value.items()}
    return value


def perturbed_documents(documents: Dict[str, dict], tmp: Path) -> Dict[str, Tuple[str, dict]]:
    """12 documents unlike the training data: every number scaled by 0.5/1.25/2 (outside the
    normalize and gaussianize ranges) and, in half of them, tonal strings never seen in
    training (Essentia gives those the next free enum code).  {path: (key, document)}."""
    out = {}
    for i, mbid in enumerate(sorted(documents)[:12]):
        doc = {k: _scaled(v, (0.5, 1.25, 2.0)[i % 3]) if k != "metadata" else v
               for k, v in documents[mbid].items()}
        if i % 2 == 0:
            doc["tonal"] = dict(doc["tonal"], key_key="Cb", chords_key="Fb", key_scale="dorian")
        key = "perturbed-%02d-%s" % (i, mbid)
        path = tmp / (key + ".json")
        path.write_text(json.dumps(doc))
        out[str(path)] = (key, doc)
    return out


@pytest.fixture(scope="module")
def trained_models(tmp_path_factory, oracle):
    """Train every (preprocessing, kernel) model once, write it, and apply all of them in one oracle run.

    One run loads each document once for all ten histories (fresh GaiaTransform per pair).
    A model that fails to train is recorded and reported by its own test.
    """
    import abrunnerd.trainer as trainer
    ds = trainer.load_dataset_dir(AB_REAL_SMALL)
    tmp = tmp_path_factory.mktemp("trained")
    perturbed = perturbed_documents(ds.documents, tmp)
    extra = {key: doc for key, doc in perturbed.values()}
    models = {}
    for preprocessing in PREPROCESSINGS:
        for kernel in KERNELS:
            opts = trainer.TrainOptions.from_job_options(
                {"c_values": [C_EXP], "gamma_values": [GAMMA_EXP], "preprocessing_values": [preprocessing]},
                seed=42, kernels=(kernel,))
            try:
                res = trainer.train(ds, opts, workers=1)
                path = tmp / ("%s-%s.history" % (preprocessing, kernel))
                write_history(res.model.steps, path)
                ours = res.model.predict(ds.documents)
                ours.update(res.model.predict(extra))
                models[preprocessing, kernel] = (res, path, ours)
            except Exception as exc:  # reported by the test of this model
                models[preprocessing, kernel] = exc
    docs = {str(AB_REAL_SMALL / "lowlevel" / (mbid + ".json")): mbid for mbid in ds.documents}
    docs.update({path: key for path, (key, _) in perturbed.items()})
    paths = [m[1] for m in models.values() if not isinstance(m, Exception)]
    pools = oracle.apply_many(paths, sorted(docs)) if paths else {}
    return models, docs, pools


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("preprocessing", PREPROCESSINGS)
def test_trained_model_predicts_like_essentia(tmp_path, trained_models, preprocessing, kernel):
    models, docs, pools = trained_models
    model = models[preprocessing, kernel]
    if isinstance(model, Exception):
        raise model
    res, path, ours = model
    steps = res.model.steps
    class_name = res.model.class_name
    field = "." + class_name

    # AB-shaped: full raw low-level layout first, the two highlevel outputs selected last.
    first = steps[0].input_layout
    assert first.get(".lowlevel.mfcc.mean").length_type == VARIABLE
    assert len(first.descriptors) > 400
    assert (steps[-1].applier, list(steps[-1].params["descriptorNames"])) == (
        "selectdesc", [field, field + "Probability"])
    svm = [s for s in steps if s.analyzer == "svmtrain"]
    assert len(svm) == 1 and svm[0].params["probability"] is True
    write_history(read_history(path), tmp_path / "again.history")
    assert (tmp_path / "again.history").read_bytes() == path.read_bytes()  # our own files round-trip too

    got = {docs[p]: Oracle.svm_output(pool, class_name) for p, pool in pools[str(path)].items()}
    n, worst = compare(got, {m: {"value": v["value"], "all": v["all"]} for m, v in ours.items()})
    assert n == 72
    moved = [k for k in ours if k.startswith("perturbed-") and max(
        abs(ours[k]["all"][c] - ours[k[len("perturbed-00-"):]]["all"][c]) for c in ours[k]["all"]) > 1e-3]
    assert moved, "the perturbed documents should not predict like their originals"
    print("%s/%s: %d documents, max |p_essentia - p_ours| = %.2g" % (preprocessing, kernel, n, worst))
