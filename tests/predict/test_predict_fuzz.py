"""Hostile models and documents (hypothesis): a clear error of the right kind, never another exception.

Models: mutated bytes of a valid history -> HistoryError (malformed) or ModelError
(cannot be applied), or a model that predicts.  Documents: any JSON value anywhere in a
valid document, random bytes as JSON/YAML -> a Prediction or that document's error,
never an exception out of the batch.  The CLI turns both into one line and an exit code.
"""
import json
import os
import random
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abrunnerd.documents import DocumentError as ReadError
from abrunnerd.documents import parse_document
from abrunnerd.gaia.apply import DocumentError, ModelError, Prediction, compile_steps
from abrunnerd.gaia.history import HistoryError, dumps_history, loads_history
from helpers.mutation import mutate, mutation
from predict_vectors import DOC, toy_steps

REPO = Path(__file__).resolve().parents[2]
GOOD = dumps_history(toy_steps())
MODEL = compile_steps(toy_steps(), "toy")

def load_or_refuse(data: bytes):
    try:
        return compile_steps(loads_history(data), "fuzzed.history")
    except HistoryError as exc:
        assert str(exc)
    except ModelError as exc:
        assert str(exc).startswith("fuzzed.history: ")
    return None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=3))
def test_fuzz_mutated_histories(ops):
    model = load_or_refuse(mutate(GOOD, ops))
    if model is not None:  # whatever still loads must predict or refuse documents one by one
        for result in model.predict([DOC, {}, {"lowlevel": []}]):
            assert isinstance(result, (Prediction, DocumentError))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=5),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=12)
paths = st.sampled_from([("lowlevel",), ("lowlevel", "x"), ("lowlevel", "m"), ("lowlevel", "dropped"),
                         ("tonal",), ("tonal", "key"), ("tonal", "chords"), ("metadata", "version"),
                         ("metadata", "version", "essentia"), ("lowlevel", "x", "deeper")])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(paths, json_values), min_size=1, max_size=4))
def test_fuzz_documents_any_value_anywhere(changes):
    doc = json.loads(json.dumps(DOC))
    for path, value in changes:
        node = doc
        for key in path[:-1]:
            if not isinstance(node, dict):
                break
            node = node.setdefault(key, {})
        if isinstance(node, dict):
            node[path[-1]] = value
    results = MODEL.predict([DOC, doc, DOC])
    assert isinstance(results[0], Prediction) and results[0] == results[2]
    assert isinstance(results[1], (Prediction, DocumentError))
    if isinstance(results[1], DocumentError):
        assert str(results[1])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(["json", "yaml"]))
def test_fuzz_document_bytes(data, fmt):
    try:
        doc = parse_document(data, fmt)
    except ReadError as exc:
        assert str(exc)
        return
    assert isinstance(doc, dict)
    assert isinstance(MODEL.predict([doc])[0], (Prediction, DocumentError))


def test_cli_on_fuzzed_models_and_documents_never_shows_a_traceback(tmp_path):
    rng = random.Random(13)
    docs = tmp_path / "docs"
    docs.mkdir()
    hostile = [b"", b"[]", b"null", b"{", b"\xff\xfe", b'{"lowlevel": {"x": "' + b"a" * 1000 + b'"}}',
               b"[" * 100000, json.dumps({"lowlevel": {"x": [1e308, -1e308, 1]}}).encode(),
               b"a: &a [1, 2]\nb: [*a, *a, *a]\n"]
    for i, data in enumerate(hostile):
        (docs / ("h%d.json" % i)).write_bytes(data)
    (docs / "bomb.yaml").write_bytes(b"a: &a [x, x, x, x, x, x, x, x, x, x]\n" + b"".join(
        b"%s: &%s [*%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s, *%s]\n" % ((b"n%d" % (i + 1),) * 2 + (
            b"a" if i == 0 else b"n%d" % i,) * 10) for i in range(8)))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    good = tmp_path / "good.history"
    good.write_bytes(GOOD)
    proc = subprocess.run([sys.executable, "-m", "abrunnerd.ctl", "predict", str(good), str(docs)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
    err = proc.stderr.decode()
    assert proc.returncode == 3 and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == len(hostile) + 1, err
    for _ in range(6):
        data = mutate(GOOD, [(rng.randrange(len(GOOD)), bytes([rng.randrange(256)] * 4), "set")])
        bad = tmp_path / "bad.history"
        bad.write_bytes(data)
        proc = subprocess.run([sys.executable, "-m", "abrunnerd.ctl", "predict", str(bad), str(docs / "h1.json")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=300)
        assert proc.returncode in (3, 65), proc.stderr
        assert b"Traceback" not in proc.stderr and proc.stderr.count(b"\n") >= 1
