"""The predictor's semantics on a hand-built chain: what Gaia's appliers do, per document and batched."""
import math

import numpy as np
import pytest
from scipy.special import erfinv

from abrunnerd.gaia.apply import DocumentError, ModelError, Prediction, compile_steps, load_model
from abrunnerd.gaia.chain import REAL, VARIABLE, Descriptor, Layout, RealList, Step, StringList
from abrunnerd.gaia.history import write_history
from predict_vectors import CLASS, DOC, toy_doc, toy_steps

F = np.float32


def expected_features(doc):
    """The SVM input of the toy chain, computed by hand from Gaia's rules."""
    m = [2.0, 2.0] + [v for row in doc["lowlevel"]["m"] for v in row]
    m = [float(F(F(v) * F(0.5)) + F(0.25)) for v in m]
    a, b = [0.1, 0.2, 0.3], [0.0, 0.5, 1.0]
    x = [float(F(F(F(v) * F(ai)) + F(bi))) for v, ai, bi in zip(doc["lowlevel"]["x"], a, b)]
    dist = [-3, -1, 0, 0.5, 1, 2, 2, 4]

    def gauss(v):
        rank = 0 if v < dist[0] else 8 if v > dist[-1] else min(sum(d <= v for d in dist), 7)
        rank = min(max(rank, 1), 7)
        return float(F(erfinv(2.0 * float(F(rank) / F(8)) - 1.0)))

    x[0], x[2] = gauss(x[0]), gauss(x[2])
    chords, key = ["A", "B", "C"], ["C", "D", "E"]
    extra = {}
    codes = []
    for s in doc["tonal"]["chords"]:
        codes.append(chords.index(s) if s in chords else extra.setdefault(s, 3 + len(extra)))
    k = doc["tonal"]["key"]
    return m + x + codes + [key.index(k) if k in key else 3]


@pytest.fixture(scope="module")
def model():
    return compile_steps(toy_steps(), "toy.history")


def test_feature_vector_follows_gaias_appliers(model):
    docs = [DOC, toy_doc(tonal__chords=["Z", "Y", "Z"][:2], tonal__key="Q"), toy_doc(lowlevel__x=[9.0, -9.0, 0.6])]
    docs[1]["tonal"]["chords"] = ["Z", "Z"]
    for doc in docs:
        x = model.feature_matrix([model.extract(doc)])[0]
        assert x.tolist() == pytest.approx(expected_features(doc), abs=1e-7)


def test_unseen_strings_get_the_next_codes_in_order_of_appearance(model):
    x = model.feature_matrix([model.extract(toy_doc(tonal__chords=["Y", "X"], tonal__key="B"))])[0]
    assert x[9:].tolist() == [3.0, 4.0, 3.0]  # chords map has 3 strings: Y -> 3, X -> 4; key: B -> 3
    x = model.feature_matrix([model.extract(toy_doc(tonal__chords=["Y", "Y"]))])[0]
    assert x[9:11].tolist() == [3.0, 3.0]


def test_batched_equals_one_by_one_and_prediction_shape(model):
    docs = [toy_doc(lowlevel__x=[v, v * 2, -v]) for v in np.linspace(-3, 3, 40)]
    docs += [toy_doc(tonal__key=k) for k in "CDEQ"]
    batched = model.predict(docs)
    single = [model.predict([d])[0] for d in docs]
    assert batched == single
    assert all(isinstance(p, Prediction) for p in batched)
    assert len({p.value for p in batched}) == 2, "the toy model should see both classes"
    p = batched[0]
    assert set(p.all) == {"no", "yes"} and p.probability == p.all[p.value] == max(p.all.values())
    assert math.isclose(sum(p.all.values()), 1.0, abs_tol=1e-12)
    assert p.as_json() == {"value": p.value, "probability": p.probability, "all": p.all}
    assert model.name == "toy" and model.output_path() == ("highlevel", "toy")


def test_metadata_version_strings_are_not_read(model):
    a = model.predict([toy_doc(metadata__version=None)])[0]
    assert a == model.predict([DOC])[0]


@pytest.mark.parametrize("changes, message", [
    ({"lowlevel__x": None}, "descriptor lowlevel.x is missing"),
    ({"lowlevel__dropped": None}, "descriptor lowlevel.dropped is missing"),  # Essentia needs the whole first layout
    ({"lowlevel__x": "1.5"}, "descriptor lowlevel.x is str, the model needs a number or a list of numbers"),
    ({"lowlevel__x": [1.0, "2", 3.0]}, "descriptor lowlevel.x mixes numbers with str values"),
    ({"lowlevel__x": [1.0, 2.0]}, "descriptor lowlevel.x has 2 values, the model was trained on 3"),
    ({"lowlevel__m": [[1.0, 2.0], [3.0]]}, "descriptor lowlevel.m is a matrix with rows of different lengths"),
    ({"lowlevel__m": [[1.0, 2.0, 3.0]]}, "descriptor lowlevel.m has 5 values, the model was trained on 6"),
    ({"tonal__key": 3}, "descriptor tonal.key is int, the model needs a string or a list of strings"),
    ({"tonal__chords": ["A"]}, "descriptor tonal.chords has 1 values, the model was trained on 2"),
    ({"lowlevel__x": [1.0, 10 ** 400, 3.0]}, "integer too large"),
    ({"lowlevel__m": [[1.0, float("nan")], [3.0, 4.0]]}, "SVM feature lowlevel.m[3] is not finite"),
    ({"lowlevel__m": [[1e39, 1.0], [3.0, 4.0]]}, "SVM feature lowlevel.m[2] is not finite"),
])
def test_bad_documents_fail_alone_with_the_descriptor_named(model, changes, message):
    results = model.predict([DOC, toy_doc(**changes), DOC])
    assert isinstance(results[0], Prediction) and results[0] == results[2]
    assert isinstance(results[1], DocumentError) and message in str(results[1]), str(results[1])


def test_nan_in_a_gaussianized_dimension_maps_like_gaias_binary_search(model):
    # Gaia's bisection compares NaN false everywhere: rank n - 1, a finite value; so is ours.
    result = model.predict([toy_doc(lowlevel__x=[float("nan"), 1.5, -2.0])])[0]
    assert isinstance(result, Prediction)


def test_not_an_object():
    model = compile_steps(toy_steps(), "toy")
    assert "not a JSON object" in str(model.predict([[1, 2]])[0])


def _variant(steps, index, **changes):
    step = steps[index]
    fields = dict(analyzer=step.analyzer, applier=step.applier, analyzer_params=step.analyzer_params,
                  params=dict(step.params), info=step.info, input_layout=step.input_layout, name=step.name)
    params = changes.pop("params", {})
    fields.update(changes)
    fields["params"].update(params)
    steps = list(steps)
    steps[index] = Step(**fields)
    return steps


@pytest.mark.parametrize("index, changes, message", [
    (4, {"applier": "matmult"}, "transformation 4 (matmult): applier 'matmult' is not supported by abrunnerd's "
                                "predictor (PCA/RCA projections)"),
    (4, {"applier": "frobnicate"}, "applier 'frobnicate' is not supported"),
    (0, {"params": {"descriptorNames": StringList([".lowlevel.nothere"])}},
     "transformation 0 (removedesc): Couldn't find node with name lowlevel.nothere"),
    (3, {"input_layout": Layout([Descriptor(".a", REAL, VARIABLE)])},
     "transformation 3 (removedesc): its layout differs from what transformation 2 produces"),
    (7, {"params": {"modelData": b"svm_type c_svc\n"}}, "SVMPredict: could not load model: no SV section"),
    (7, {"params": {"classMapping": StringList(["only"])}}, "are not the indices of the 1 classes"),
    (7, {"params": {"descriptorNames": StringList([".lowlevel.x", ".tonal.nope"])}},
     "Couldn't find node with name tonal.nope"),
    (7, {"params": {"modelData": b"svm_type c_svc\nkernel_type rbf\ngamma 1\nnr_class 2\ntotal_sv 1\nrho 0\n"
                                 b"label 0 1\nnr_sv 1 0\nSV\n1 1:0\n"}},
     "probability is requested but the model has no probA/probB"),
    (5, {"params": {"distribution": {".lowlevel.x[7]": b"\0\0\0\0"}}}, "with a dimension 7"),
    (8, {"params": {"descriptorNames": StringList([".lowlevel.x"])}},
     "the chain removes highlevel.toy after svmpredict"),
])
def test_models_essentia_cannot_apply_are_refused_naming_step_and_applier(index, changes, message):
    with pytest.raises(ModelError) as e:
        compile_steps(_variant(toy_steps(), index, **changes), "bad.history")
    assert str(e.value).startswith("bad.history: ") and message in str(e.value), str(e.value)


def test_no_svm_is_not_a_classifier():
    with pytest.raises(ModelError, match="no svmpredict transformation"):
        compile_steps(toy_steps()[:3], "x.history")


def test_model_without_probabilities_votes():
    text = (b"svm_type c_svc\nkernel_type linear\nnr_class 2\ntotal_sv 2\nrho 0\nlabel 0 1\nnr_sv 1 1\nSV\n"
            b"1 1:1\n-1 1:-1\n")
    steps = _variant(toy_steps(), 7, params={"modelData": text, "probability": False})
    steps = steps[:8] + [Step("select", "selectdesc", {}, {"descriptorNames": StringList(["." + CLASS])}, {},
                              steps[7].input_layout)]
    model = compile_steps(steps, "vote")
    result = model.predict([toy_doc(lowlevel__m=[[5.0, 5.0], [5.0, 5.0]])])[0]
    assert result.probability is None and result.as_json() == {"value": "no"}  # m[0] = 2*0.5+.25 > 0: class 0


def test_load_model_reads_the_file(tmp_path):
    path = tmp_path / "toy.history"
    write_history(toy_steps(), path)
    model = load_model(str(path))
    assert model.predict([DOC]) == compile_steps(toy_steps()).predict([DOC])


def test_distribute_block_equals_column_by_column():
    from abrunnerd.gaia.numeric import distribute, distribute_block

    rng = np.random.RandomState(5)
    dists = [np.sort(rng.randn(n).astype(np.float32)) for n in (1, 2, 7, 180, 200001)]
    dists[2][3] = dists[2][4]  # ties
    block = rng.randn(50, 5).astype(np.float32) * 2
    block[0] = np.nan
    block[1] = [d[0] for d in dists]
    block[2] = [d[-1] for d in dists]
    block[3, 4] = dists[4][0] - 1  # below: rank 0, then the outlier clamp (n = 200001 -> 2)
    whole = distribute_block(block, dists)
    for j, dist in enumerate(dists):
        np.testing.assert_array_equal(whole[:, j], distribute(block[:, j], dist))  # NaN == NaN here


def test_renameapplier_moves_a_feature_under_its_new_name():
    steps = toy_steps()

    def renamed(layout):
        return Layout([d._replace(name=".lowlevel.y") if d.name == ".lowlevel.x" else d for d in layout.descriptors],
                      layout.enum_maps)

    rename = Step("rename", "renameapplier", {}, {"fullName": ".lowlevel.x", "newName": ".lowlevel.y"}, {},
                  steps[6].input_layout)
    tail = [s._replace(input_layout=renamed(s.input_layout)) for s in steps[6:]]
    svm = tail[1]
    names = [".lowlevel.y" if n == ".lowlevel.x" else n for n in svm.params["descriptorNames"]]
    tail[1] = svm._replace(params=dict(svm.params, descriptorNames=StringList(names)))
    model = compile_steps(steps[:6] + [rename] + tail, "renamed")
    docs = [toy_doc(lowlevel__x=[v, 1.0, -v]) for v in (-2.0, 0.0, 0.5, 3.0)]
    assert model.predict(docs) == compile_steps(steps).predict(docs)
    with pytest.raises(ModelError, match="renaming the Enum descriptor tonal.key is not supported"):
        compile_steps(steps[:6] + [rename._replace(params={"fullName": ".tonal.key", "newName": ".k"})] + steps[6:])


def test_dotproduct_before_fixlength_uses_the_length_fixed_later():
    steps = toy_steps()
    early = steps[4]._replace(input_layout=steps[0].input_layout)  # normalize on the raw, variable-length layout
    dropped = dict(early.params["coeffs"])
    model = compile_steps([early] + steps[:4] + steps[5:], "early")
    reference = compile_steps(steps, "late")
    docs = [toy_doc(lowlevel__x=[v, 1.0, -v]) for v in (-2.0, 0.0, 3.0)]
    assert model.predict(docs) == reference.predict(docs)
    short = early._replace(params=dict(early.params, coeffs=dict(dropped, **{
        ".lowlevel.x": {"a": RealList([1.0, 2.0]), "b": RealList([0.0, 0.0])}})))
    with pytest.raises(ModelError, match="transformation 0 \\(dotproduct\\): lowlevel.x has 3 values but 2/2"):
        compile_steps([short] + steps[:4] + steps[5:], "short")


def test_models_sharing_a_first_layout_read_each_document_once_and_predict_alike():
    from abrunnerd.gaia.apply import predict_many

    a, b = compile_steps(toy_steps(), "a"), compile_steps(toy_steps(enum_maps=False), "b")
    assert a.input_signature() == b.input_signature()
    docs = [DOC, toy_doc(tonal__chords=["Y", "X"]), toy_doc(lowlevel__x=None), [1]]
    together = predict_many([a, b], docs)

    def plain(results):
        return [str(r) if isinstance(r, DocumentError) else r for r in results]

    assert [plain(r) for r in together] == [plain(a.predict(docs)), plain(b.predict(docs))]
    assert together[0][1] != together[1][1]  # without maps the unseen chords code differently
    assert isinstance(together[0][2], DocumentError) and together[0][2] is together[1][2]
