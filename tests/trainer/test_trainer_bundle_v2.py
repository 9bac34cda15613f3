"""Features bundle version 2: only what the job's preprocessing can use, the same training, hostile input refused."""
import copy
import json
import math
import struct
import subprocess
import sys

import numpy as np
import pytest

from abrunnerd import features_bundle as fb
from abrunnerd.gaia.chain import REAL
from abrunnerd.gaia.history import dumps_history
from abrunnerd.trainer import DatasetError, TrainOptions, train
from abrunnerd.trainer.bundle import dataset_from_bundle, encode_for_job
from trainer_paths import REPO

OPTIONS = {"c_values": [1, 5], "gamma_values": [-5, -9]}


@pytest.fixture(scope="module")
def records(small_dataset):
    return [(m, small_dataset.documents[m], small_dataset.artists.get(m)) for m in sorted(small_dataset.groundtruth)]


@pytest.fixture(scope="module")
def reduced(records):
    return encode_for_job(records, OPTIONS)


def test_reduced_bundle_trains_exactly_like_the_documents(small_dataset, records, reduced):
    assert reduced[4] == fb.VERSION_COLUMNS
    complete = fb.encode_bundle(records)
    assert len(complete) > 3 * len(reduced), "only the descriptors some preprocessing set uses carry values"
    ds = dataset_from_bundle(reduced, small_dataset.name, dict(small_dataset.groundtruth))
    assert ds.documents == {} and ds.artists == {m: a for m, _d, a in records}
    opts = TrainOptions.from_job_options(OPTIONS, seed=42)
    ours, theirs = train(ds, opts, workers=1), train(small_dataset, opts, workers=1)
    assert ours.to_result_json() == theirs.to_result_json()
    assert dumps_history(ours.model.steps) == dumps_history(theirs.model.steps), "byte-identical .history"


def test_complete_form_where_the_reduced_one_would_train_differently(records):
    assert encode_for_job(records, dict(OPTIONS, normalize=True))[4] == fb.VERSION  # balancing merges a subset
    assert encode_for_job(records, dict(OPTIONS, unknown_option=1))[4] == fb.VERSION
    bad = copy.deepcopy(records)
    bad[3][1]["lowlevel"]["dissonance"]["mean"] = math.inf  # the trainer must name it from the documents
    data = encode_for_job(bad, OPTIONS)
    assert data[4] == fb.VERSION
    gt = {m: "a" if i % 2 else "b" for i, (m, _d, _a) in enumerate(bad)}
    with pytest.raises(DatasetError, match="lowlevel.dissonance.mean"):
        train(dataset_from_bundle(data, "x", gt), TrainOptions.from_job_options(OPTIONS), workers=1)


def test_versions_are_refused_clearly(reduced):
    with pytest.raises(fb.BundleError, match="version 2 holds training columns"):
        list(fb.decode_bundle(reduced))  # a caller that only knows documents
    future = reduced[:4] + bytes([3]) + reduced[5:]
    with pytest.raises(fb.BundleError, match="unsupported features bundle version 3 .*upgrade abrunnerd"):
        dataset_from_bundle(future, "x", {})


def _groundtruth(small_dataset):
    return dict(small_dataset.groundtruth)


def _mutated(reduced, edit_meta=None, edit_matrix=None):
    meta, matrix = fb.decode_columns(reduced)
    matrix = np.array(matrix)
    if edit_meta:
        edit_meta(meta)
    if edit_matrix:
        matrix = edit_matrix(matrix)
    return fb.encode_columns(meta, matrix)


def _set(path, value):
    def edit(meta):
        node = meta
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


def _first_used_real(meta):
    return next(i for i, k in enumerate(meta["kept"]) if k[1] == REAL and k[3])


HOSTILE = [
    ("records unsorted", lambda m: m["records"].reverse(), None, "sorted"),
    ("artist not a string", lambda m: m["records"][0].__setitem__(1, 7), None, "records"),
    ("descriptor size beyond the matrix", lambda m: m["kept"][_first_used_real(m)].__setitem__(2, 10 ** 4), None,
     "more than"),
    ("negative size", lambda m: m["kept"][0].__setitem__(2, -1), None, "kept"),
    ("kept name not in the raw layout", lambda m: m["kept"][0].__setitem__(0, ".nowhere"), None, "raw layout"),
    ("kept and removed overlap", lambda m: m["constant"].append(m["kept"][0][0]), None, "split"),
    ("string column of the wrong shape", lambda m: m["strings"].__setitem__(next(iter(m["strings"])), [["x"]]), None,
     "strings of"),
    ("header is a list", lambda m: m.clear(), None, "records"),
    ("NaN among the values", None, lambda x: np.where(np.arange(x.size).reshape(x.shape) == 5, np.nan, x), "NaN"),
    ("one value column too many", None, lambda x: np.concatenate([x, x[:, :1]], axis=1), "values per recording"),
]


@pytest.mark.parametrize("name,edit_meta,edit_matrix,fragment", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_version_2_bundles_are_refused(small_dataset, reduced, name, edit_meta, edit_matrix, fragment):
    data = _mutated(reduced, edit_meta, edit_matrix)
    with pytest.raises(fb.BundleError) as info:
        dataset_from_bundle(data, "x", _groundtruth(small_dataset))
    assert fragment in str(info.value), str(info.value)


def test_version_2_announcements_bound_the_decompression(small_dataset, reduced):
    gt = _groundtruth(small_dataset)
    with pytest.raises(fb.BundleError, match="holds 60 recordings, the job's dataset has 59"):
        dataset_from_bundle(reduced, "x", dict(list(gt.items())[:59]))
    magic, version, codec, zero, n, c, length = struct.unpack_from("<4sBBHIIQ", reduced)
    wide = struct.pack("<4sBBHIIQ", magic, version, codec, zero, n, fb.MAX_VALUES_PER_RECORDING + 1, length)
    with pytest.raises(fb.BundleError, match="values per recording, more than the limit"):
        dataset_from_bundle(wide + reduced[24:], "x", gt)
    lying = struct.pack("<4sBBHIIQ", magic, version, codec, zero, n, c, 1 << 34)  # 16 GiB for 60 recordings
    with pytest.raises(fb.BundleError, match="more than the limit"):
        dataset_from_bundle(lying + reduced[24:], "x", gt)
    short = struct.pack("<4sBBHIIQ", magic, version, codec, zero, n, c, length - 100)  # the stream is longer
    with pytest.raises(fb.BundleError, match="decompression bomb"):
        dataset_from_bundle(short + reduced[24:], "x", gt)


def test_training_process_trains_a_version_2_bundle(tmp_path, small_dataset, reduced):
    classes = {}
    for m, c in small_dataset.groundtruth.items():
        classes.setdefault(c, []).append(m)
    spec = {"job_id": "j", "seed": 42, "max_workers": 2, "source": "bundle", "options": OPTIONS,
            "dataset": {"name": "small", "classes": [{"name": c, "recordings": r} for c, r in classes.items()]}}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "features.bin").write_bytes(reduced)
    r = subprocess.run([sys.executable, "-m", "abrunnerd.train_worker", str(tmp_path)], cwd=str(tmp_path),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "ABRUNNERD_NICE": "0"})
    assert r.returncode == 0, r.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    ours = train(small_dataset, TrainOptions.from_job_options(OPTIONS, seed=42), workers=1).to_result_json()
    assert {k: v for k, v in result.items() if k != "runner"} == ours
    assert (tmp_path / "model.history").stat().st_size > 0


# -- generated hostile input (hypothesis): whatever the bytes, a Dataset or one BundleError --------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_json_leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=6),
                       st.floats(allow_nan=False, allow_infinity=False))
_json = st.recursive(_json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                          st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                     max_leaves=20)
_META_KEYS = ["records", "raw", "variable", "constant", "dropped", "kept", "strings"]


def _must_refuse_cleanly(data, groundtruth):
    try:
        ds = dataset_from_bundle(data, "x", groundtruth, max_decompressed=64 << 20)
    except fb.BundleError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert set(ds.merged.frame.ids) == set(groundtruth)
    return ds


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_version_2_meta_is_refused_or_consistent(small_dataset, reduced, data):
    meta, matrix = fb.decode_columns(reduced)
    key = data.draw(st.sampled_from(_META_KEYS))
    meta[key] = data.draw(st.one_of(_json, st.lists(st.lists(_json_leaf, max_size=4), max_size=4)))
    _must_refuse_cleanly(fb.encode_columns(meta, matrix), _groundtruth(small_dataset))


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_generated_byte_damage_to_a_version_2_bundle_is_refused(small_dataset, reduced, data):
    raw = bytearray(reduced)
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(raw))))
    damaged = bytes(raw if cut is None else raw[:cut])
    if damaged != reduced:
        _must_refuse_cleanly(damaged, _groundtruth(small_dataset))


def test_documents_rebuilt_from_version_2_predict_like_the_originals(small_dataset, records, reduced):
    from abrunnerd.trainer.bundle import documents_for_prediction
    from abrunnerd.trainer.model import predict_documents

    model = train(small_dataset, TrainOptions.from_job_options(OPTIONS, seed=42), workers=1).model
    rebuilt = documents_for_prediction(reduced)
    assert set(rebuilt) == set(small_dataset.groundtruth)
    originals = predict_documents(model.steps, small_dataset.documents)
    assert predict_documents(model.steps, rebuilt) == originals
    assert predict_documents(model.steps, documents_for_prediction(fb.encode_bundle(records))) == originals
