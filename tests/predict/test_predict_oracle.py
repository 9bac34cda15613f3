"""abrunnerd's predictor agrees with Essentia's GaiaTransform on every document of every model.

Matrix (default suite): Gaia's two reference histories (AB's ab-real-1, 3 classes, AB
layout; essentia-real-1, 2 classes, Essentia 2.1-beta6 layout, made by Gaia's own
scripts) on all their documents; models trained by abrunnerd.trainer for every
preprocessing set x {RBF, poly} on a 2-class dataset, applied to training documents and
to variants: numbers scaled outside the training ranges, tonal strings never seen in
training, optional descriptors missing, required ones missing / of the wrong kind /
of the wrong length (Essentia fails those: so must we, per document).  The 3-class
trained matrix is tests/gaia/test_history_oracle.py, whose predictions come from this
same predictor through the trainer.  Same class on every document, |dp| <= 1e-6.
"""
import copy
import json
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

from abrunnerd.documents import Source, load_source
from abrunnerd.gaia.apply import DocumentError, load_model
from abrunnerd.gaia.history import write_history
from predict_paths import AB_REFERENCE, ESSENTIA_REFERENCE, need
from gaia_oracle import AB_REAL_SMALL, SHARED_DATA

pytestmark = pytest.mark.oracle
TOLERANCE = 1e-6
PREPROCESSINGS = ["basic", "lowlevel", "nobands", "normalized", "gaussianized"]
KERNELS = ["RBF", "poly"]


def ours(history: Path, paths: List[Path]) -> Dict[str, object]:
    model = load_model(str(history))
    docs = [load_source(Source(str(p), str(p), p.name)) for p in paths]
    return dict(zip(map(str, paths), model.predict(docs)))


def agree(history: Path, pools: Dict[str, dict], predictions: Dict[str, object]) -> Tuple[int, int, float]:
    """Asserts Essentia and we agree on every document; returns (predicted, refused by both, max |dp|)."""
    model = load_model(str(history))
    prefix = model.class_name
    assert set(pools) == set(predictions)
    worst, predicted, refused = 0.0, 0, 0
    for path, pool in sorted(pools.items()):
        mine = predictions[path]
        if "error" in pool:
            assert isinstance(mine, DocumentError), "%s: Essentia fails (%s), we predict %s" % (path, pool, mine)
            refused += 1
            continue
        assert not isinstance(mine, DocumentError), "%s: Essentia predicts, we fail: %s" % (path, mine)
        assert pool[prefix + ".value"] == mine.value, "%s: Essentia %s, ours %s" % (path, pool, mine)
        got = {k[len(prefix) + 5:]: v for k, v in pool.items() if k.startswith(prefix + ".all.")}
        assert set(got) == set(mine.all)
        assert abs(pool[prefix + ".probability"] - mine.probability) <= TOLERANCE
        worst = max([worst] + [abs(got[c] - mine.all[c]) for c in got])
        predicted += 1
    assert worst <= TOLERANCE, worst
    return predicted, refused, worst


def reference_cases():
    return [(need(AB_REFERENCE, "Gaia reference history"),
             sorted(need(SHARED_DATA / "ab-real-1" / "lowlevel", "ab-real-1 documents").glob("*.json"))),
            (need(ESSENTIA_REFERENCE, "Gaia-script history"),
             sorted((SHARED_DATA / "essentia-real-1").glob("[iv]*/*.json")))]


def check_reference(oracle, stride: int) -> None:
    """Every document against Gaia's own predictions.json; every ``stride``-th also against Essentia."""
    for history, docs in reference_cases():
        assert len(docs) in (180, 90)
        mine = ours(history, docs)
        gaia = json.loads((history.parent / "predictions.json").read_text())  # what Gaia itself predicted
        for path, result in mine.items():
            want = gaia[Path(path).stem]
            assert result.value == want["value"]
            assert max(abs(result.all[c] - want["all"][c]) for c in want["all"]) <= TOLERANCE
        sample = docs[::stride]
        pools = oracle.apply(history, sample)
        predicted, refused, worst = agree(history, pools, {str(p): mine[str(p)] for p in sample})
        assert (predicted, refused) == (len(sample), 0)
        print("%s: %d documents like Gaia, %d like Essentia, max |p_essentia - p_ours| = %.2g"
              % (history.name, len(docs), predicted, worst))


def test_gaias_reference_histories_predict_like_gaia_and_essentia(oracle):
    check_reference(oracle, stride=3)  # a third through Essentia here, all of them in make test-long


@pytest.mark.long
def test_gaias_reference_histories_predict_like_essentia_on_every_document(oracle):
    check_reference(oracle, stride=1)


# --- models trained by abrunnerd.trainer on 2 classes, with hostile variants ---

def variants(docs: Dict[str, dict], tmp: Path) -> List[Path]:
    """Documents Essentia must handle: originals, out-of-range numbers, unseen strings, missing parts."""
    out = []

    def write(name: str, doc: dict) -> None:
        path = tmp / (name + ".json")
        path.write_text(json.dumps(doc))
        out.append(path)

    def scaled(value, factor):
        if isinstance(value, bool) or isinstance(value, str):
            return value
        if isinstance(value, (int, float)):
            return value * factor
        if isinstance(value, list):
            return [scaled(v, factor) for v in value]
        return {k: scaled(v, factor) for k, v in value.items()}

    keys = sorted(docs)
    for mbid in keys[:6] + keys[-6:]:
        write("orig-" + mbid, docs[mbid])
    base = docs[keys[0]]
    for i, factor in enumerate((0.5, 2.0, 40.0)):
        doc = {k: scaled(v, factor) if k != "metadata" else v for k, v in docs[keys[i]].items()}
        write("scaled-%g" % factor, doc)
    for i, (key, chords, scale) in enumerate([("Cb", "Fb", "dorian"), ("H", "H", "major"), ("A", "Cb", "x")]):
        doc = copy.deepcopy(docs[keys[-1 - i]])
        doc["tonal"].update(key_key=key, chords_key=chords, key_scale=scale)
        write("unseen-%d" % i, doc)
    doc = copy.deepcopy(base)
    doc.get("metadata", {}).pop("tags", None)
    doc["extra_namespace"] = {"anything": [1, 2, 3], "text": "x"}
    write("optional-missing", doc)
    doc = copy.deepcopy(base)
    del doc["lowlevel"]["mfcc"]["mean"]
    write("required-missing", doc)
    doc = copy.deepcopy(base)
    doc["lowlevel"]["average_loudness"] = "loud"
    write("wrong-kind", doc)
    doc = copy.deepcopy(base)
    doc["tonal"]["hpcp"]["mean"] = doc["tonal"]["hpcp"]["mean"][:-1]
    write("wrong-length", doc)
    return out


@pytest.fixture(scope="module")
def two_class_models(tmp_path_factory, oracle):
    """Train every (preprocessing, kernel) model once on 2 classes; one oracle run for all of them."""
    from abrunnerd import trainer

    full = trainer.load_dataset_dir(str(AB_REAL_SMALL))
    classes = sorted(set(full.groundtruth.values()))[:2]
    keep = sorted(m for m, c in full.groundtruth.items() if c in classes)
    ds = trainer.Dataset(name="two-classes", groundtruth={m: full.groundtruth[m] for m in keep},
                         documents={m: full.documents[m] for m in keep},
                         artists={m: full.artists.get(m) for m in keep})
    tmp = tmp_path_factory.mktemp("two-class")
    docs = variants(ds.documents, tmp)
    models = {}
    for preprocessing in PREPROCESSINGS:
        for kernel in KERNELS:
            opts = trainer.TrainOptions.from_job_options(
                {"c_values": [3], "gamma_values": [-5], "preprocessing_values": [preprocessing]},
                seed=42, kernels=(kernel,))
            res = trainer.train(ds, opts, workers=1)
            path = tmp / ("%s-%s.history" % (preprocessing, kernel))
            write_history(res.model.steps, path)
            models[preprocessing, kernel] = path
    pools = oracle.apply_many(list(models.values()), docs)
    return models, docs, pools


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("preprocessing", PREPROCESSINGS)
def test_trained_two_class_model_predicts_like_essentia(two_class_models, preprocessing, kernel):
    models, docs, pools = two_class_models
    history = models[preprocessing, kernel]
    mine = ours(history, docs)
    predicted, refused, worst = agree(history, pools[str(history)], mine)
    assert (predicted, refused) == (len(docs) - 3, 3)  # required-missing, wrong-kind, wrong-length
    errors = {Path(p).stem: str(r) for p, r in mine.items() if isinstance(r, DocumentError)}
    assert "lowlevel.mfcc.mean is missing" in errors["required-missing"]
    assert "lowlevel.average_loudness is str" in errors["wrong-kind"]
    assert "tonal.hpcp.mean has 35 values, the model was trained on 36" in errors["wrong-length"]
    print("%s/%s: %d documents, max |p_essentia - p_ours| = %.2g" % (preprocessing, kernel, predicted, worst))


def test_hand_built_chain_enum_rules_like_essentia(tmp_path, oracle):
    """Multi-valued strings never seen in training, and a history whose layouts lack the enum maps
    (codes then follow the order of appearance in the document): Essentia and we agree."""
    from predict_vectors import DOC, toy_doc, toy_steps

    docs = []
    for i, doc in enumerate([DOC, toy_doc(tonal__chords=["Y", "X"], tonal__key="B"),
                             toy_doc(tonal__chords=["Y", "Y"], tonal__key="E"),
                             toy_doc(tonal__chords=["C", "A"], tonal__key="D"),
                             toy_doc(lowlevel__x=[float(v) for v in (9, -9, 0.6)]),
                             toy_doc(lowlevel__x=[-4.0, 0.0, 5.0], metadata__version=None),
                             toy_doc(lowlevel__x=[1.0, 2.0]), toy_doc(tonal__key=["C", "D"])]):
        path = tmp_path / ("toy-%d.json" % i)
        path.write_text(json.dumps(doc))
        docs.append(path)
    histories = []
    for maps in (True, False):
        path = tmp_path / ("toy-maps-%s.history" % maps)
        write_history(toy_steps(enum_maps=maps), path)
        histories.append(path)
    pools = oracle.apply_many(histories, docs)
    for history in histories:
        predicted, refused, worst = agree(history, pools[str(history)], ours(history, docs))
        assert (predicted, refused) == (6, 2)


@pytest.mark.long
def test_models_trained_on_essentia_extractor_documents_predict_like_essentia(tmp_path, oracle):
    """The Essentia 2.1-beta6 layout (class folders of essentia-real-1), every preprocessing x kernel,
    trained on 15 + 15 documents, applied through the CLI path to all 90 (make test-long)."""
    from abrunnerd import trainer
    from abrunnerd.documents import expand_inputs

    base = need(SHARED_DATA / "essentia-real-1", "essentia-real-1 documents")
    paths = sorted(base.glob("[iv]*/*.json"))
    assert len(paths) == 90
    groundtruth, documents = {}, {}
    for cls in ("instrumental", "voice"):
        for p in sorted((base / cls).glob("*.json"))[:15]:
            groundtruth[p.stem] = cls
            documents[p.stem] = trainer.strip_document(json.loads(p.read_text()))
    ds = trainer.Dataset(name="essentia-voice", groundtruth=groundtruth, documents=documents, artists={})
    histories = []
    for preprocessing in PREPROCESSINGS:
        for kernel in KERNELS:
            opts = trainer.TrainOptions.from_job_options(
                {"c_values": [1], "gamma_values": [-3], "preprocessing_values": [preprocessing]},
                seed=7, kernels=(kernel,))
            path = tmp_path / ("%s-%s.history" % (preprocessing, kernel))
            write_history(trainer.train(ds, opts, workers=1).model.steps, path)
            histories.append(path)
    pools = oracle.apply_many(histories, paths)
    sources = list(expand_inputs([str(base / "instrumental"), str(base / "voice")]))
    docs = [load_source(s) for s in sources]
    for history in histories:
        mine = dict(zip([s.path for s in sources], load_model(str(history)).predict(docs)))
        predicted, refused, worst = agree(history, pools[str(history)], mine)
        assert (predicted, refused) == (90, 0)
        print("%s: %d documents, max |p_essentia - p_ours| = %.2g" % (history.name, predicted, worst))
