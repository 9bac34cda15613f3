"""Bad datasets and jobs as the runner's training process meets them.

The trainer cases call ``abrunnerd.trainer`` directly (it is pure; what the owner reads
is the DatasetError text, which the runner reports as the job's ``status_msg``).  The
job-file cases run the real training process (``python -m abrunnerd.train_worker``) on
a crafted job directory and read its exit status and ``error.json``, exactly what the
daemon turns into the failure report.
"""
import copy
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rel_harness import record

import abrunnerd.trainer as trainer
import abrunnerd.features_bundle as fb

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "ab-real-small"
OPTS = {"c_values": [1], "gamma_values": [-3], "preprocessing_values": ["basic"]}


@pytest.fixture(scope="module")
def small():
    """10 recordings in each of 2 classes, stripped as the runner receives them."""
    data = json.loads((EXAMPLE / "dataset.json").read_text())
    gt, docs = {}, {}
    for cls in data["classes"][:2]:
        for m in cls["recordings"][:10]:
            gt[m] = cls["name"]
            docs[m] = trainer.strip_document(json.loads((EXAMPLE / "lowlevel" / ("%s.json" % m)).read_text()))
    return gt, docs


def _train(gt, docs):
    ds = trainer.Dataset(name="bad", groundtruth=gt, documents=docs, artists={m: None for m in gt})
    return trainer.train(ds, trainer.TrainOptions.from_job_options(OPTS, seed=42), workers=1)


def _expect_error(name, gt, docs, fragments):
    with record.case("bad_input", name) as c:
        with pytest.raises(trainer.DatasetError) as info:
            _train(gt, docs)
        c.message = str(info.value)
        for f in fragments:
            assert f in c.message, c.message


def test_control_case_trains(small):
    gt, docs = small
    assert _train(gt, docs).to_result_json()["accuracy"] >= 0


def test_one_class(small):
    gt, docs = small
    first = sorted(set(gt.values()))[0]
    only = {m: c for m, c in gt.items() if c == first}
    _expect_error("dataset: one class", only, docs, ["at least 2 classes"])


def test_class_with_one_recording(small):
    gt, docs = small
    cls = sorted(set(gt.values()))[0]
    drop = [m for m, c in gt.items() if c == cls][1:]
    _expect_error("dataset: a class with one recording", {m: c for m, c in gt.items() if m not in drop},
                  docs, ["only 1 recording", cls])


@pytest.mark.parametrize("label,value", [("NaN", math.nan), ("+inf", math.inf), ("-inf", -math.inf)])
def test_non_finite_feature(small, label, value):
    gt, docs = small
    docs = copy.deepcopy(docs)
    victim = sorted(gt)[3]
    docs[victim]["lowlevel"]["spectral_centroid"]["mean"] = value
    _expect_error("dataset: %s in a feature" % label, gt, docs, [victim, "spectral_centroid"])


def test_vector_of_another_length(small):
    """One recording's mfcc.mean has 12 values instead of 13: an inconsistent layout.

    Gaia's merge makes such a descriptor variable-length and removes it before training;
    the check is that the model really does not use it (a silently padded or truncated
    vector would be a corrupt model)."""
    gt, docs = small
    docs = copy.deepcopy(docs)
    victim = sorted(gt)[2]
    docs[victim]["lowlevel"]["mfcc"]["mean"] = docs[victim]["lowlevel"]["mfcc"]["mean"][:-1]
    with record.case("bad_input", "dataset: a descriptor vector of another length") as c:
        try:
            res = _train(gt, docs)
        except trainer.DatasetError as exc:
            c.message = str(exc)
            assert victim in c.message or "mfcc" in c.message, c.message
        else:
            removed = [st for st in res.model.steps if st.analyzer == "remove"
                       and ".lowlevel.mfcc.mean" in repr(st.params)]
            c.message = ("trained; .lowlevel.mfcc.mean removed as variable-length, as Gaia's merge does "
                         "(descriptors_dropped = %s)" % res.to_result_json()["dataset"].get("descriptors_dropped"))
            assert removed, "the inconsistent descriptor was neither refused nor removed from the model"


def test_descriptor_missing_in_one_document(small):
    gt, docs = small
    docs = copy.deepcopy(docs)
    victim = sorted(gt)[1]
    del docs[victim]["lowlevel"]["spectral_flux"]
    with record.case("bad_input", "dataset: a descriptor missing in one document") as c:
        try:
            res = _train(gt, docs).to_result_json()
        except trainer.DatasetError as exc:
            c.message = str(exc)
            assert "spectral_flux" in c.message or victim in c.message, c.message
        else:
            dropped = res["dataset"].get("descriptors_dropped")
            c.message = "trained without it: descriptors_dropped = %s" % dropped
            assert dropped, "the missing descriptor was neither refused nor reported dropped"


def test_string_where_numbers_are(small):
    gt, docs = small
    docs = copy.deepcopy(docs)
    victim = sorted(gt)[0]
    docs[victim]["lowlevel"]["spectral_centroid"]["mean"] = "loud"
    with record.case("bad_input", "dataset: a string where a number belongs") as c:
        try:
            res = _train(gt, docs).to_result_json()
        except trainer.DatasetError as exc:
            c.message = str(exc)
            assert "spectral_centroid" in c.message, c.message
        else:
            dropped = res["dataset"].get("descriptors_dropped")
            c.message = "trained without it: descriptors_dropped = %s" % dropped
            assert dropped


def test_document_not_an_object(small):
    gt, docs = small
    docs = dict(docs)
    victim = sorted(gt)[0]
    docs[victim] = [1, 2, 3]
    _expect_error("dataset: a low-level document that is a list", gt, docs, [victim])


def test_bad_job_options():
    with record.case("bad_input", "job: option of the wrong type (c_values: \"x\")") as c:
        with pytest.raises(trainer.DatasetError) as info:
            trainer.TrainOptions.from_job_options({"c_values": "x"}, seed=42)
        c.message = str(info.value)
        assert "c_values" in c.message


# -- the real training process on a crafted job directory ------------------------------

def _worker(job_dir):
    r = subprocess.run([sys.executable, "-m", "abrunnerd.train_worker", str(job_dir)], cwd=str(job_dir),
                       capture_output=True, text=True, timeout=300, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    err = job_dir / "error.json"
    message = json.loads(err.read_text())["message"] if err.exists() else ""
    return r.returncode, message


def _job_dir(tmp_path, small, spec_over=None, bundle=None):
    gt, docs = small
    classes = {}
    for m, c in gt.items():
        classes.setdefault(c, []).append(m)
    spec = {"job_id": "j", "seed": 42, "options": OPTS, "max_workers": 1, "source": "bundle",
            "dataset": {"name": "x", "classes": [{"name": c, "recordings": r} for c, r in classes.items()]}}
    spec.update(spec_over or {})
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    data = bundle if bundle is not None else fb.encode_bundle((m, docs[m], None) for m in sorted(gt))
    (tmp_path / "features.bin").write_bytes(data)
    return tmp_path



@pytest.mark.parametrize("name,spec_over,mangle,fragment", [
    ("job: details without a dataset", {"dataset": {}}, None, "classes"),
    ("job: classes is not a list", {"dataset": {"name": "x", "classes": "speech"}}, None, "classes"),
    ("job: a class without recordings list", {"dataset": {"name": "x", "classes": [{"name": "a"}]}}, None,
     "classes[0]"),
    ("job: options not an object", {"options": ["c_values"]}, None, "options"),
    ("job: features bundle truncated on disk", None, lambda b: b[:len(b) // 3], "truncated"),
])
def test_training_process_refuses_malformed_jobs(tmp_path, small, name, spec_over, mangle, fragment):
    bundle = None
    if mangle:
        gt, docs = small
        bundle = mangle(fb.encode_bundle((m, docs[m], None) for m in sorted(gt)))
    rc, message = _worker(_job_dir(tmp_path, small, spec_over, bundle))
    with record.case("bad_input", name) as c:
        c.message = message or "(exit %d, no error.json)" % rc
        assert rc == 2, "exit %d (2 = bad dataset, reported to the server as the job's failure)" % rc
        assert message and "Traceback" not in message
        assert fragment in message, "the message does not name the problem (%r)" % fragment
