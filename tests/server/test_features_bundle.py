"""The features bundle codec: lossless for float32, stripped like AB, and safe on bad input."""
import json
import lzma
import math
import struct

import pytest
from helpers.server import EXAMPLE_DATASET
from hypothesis import given, settings
from hypothesis import strategies as st

from abrunnerd.features_bundle import (MAGIC, BundleError, decode_bundle, encode_bundle, strip_document)


def _f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def _same(original, decoded):
    if isinstance(original, dict):
        assert list(original) == list(decoded)
        for k in original:
            _same(original[k], decoded[k])
    elif isinstance(original, list):
        assert len(original) == len(decoded)
        for a, b in zip(original, decoded):
            _same(a, b)
    elif isinstance(original, float):
        assert isinstance(decoded, float)
        if math.isnan(original):
            assert math.isnan(decoded)
        elif 3.4028234663852886e38 < abs(original) < math.inf:
            assert decoded == original, "out-of-float32-range numbers are kept exactly"
        else:
            assert decoded == _f32(original)
    else:
        assert type(decoded) is type(original) and decoded == original


def _real_records():
    out = []
    for path in sorted((EXAMPLE_DATASET / "lowlevel").glob("*.json"))[:12]:
        doc = json.loads(path.read_text())
        out.append((path.stem, strip_document(doc), "artist-%s" % path.stem[:4]))
    return out


def test_real_documents_round_trip_as_float32():
    records = _real_records()
    data = encode_bundle(records)
    assert data[:4] == MAGIC
    decoded = list(decode_bundle(data))
    assert [(m, a) for m, _d, a in decoded] == [(m, a) for m, _d, a in records]
    for (_m, doc, _a), (_m2, doc2, _a2) in zip(records, decoded):
        _same(doc, doc2)


def test_strip_document_removes_what_ab_removed():
    doc = {"metadata": {"tags": {"artist": ["x"]}, "audio_properties": {"sample_rate": 44100, "lossless": True,
                                                                       "length": 30.0}}, "lowlevel": {"a": 1.0}}
    stripped = strip_document(doc)
    assert stripped == {"metadata": {"audio_properties": {"length": 30.0}}, "lowlevel": {"a": 1.0}}
    assert "tags" in doc["metadata"], "the input is left alone"


leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2 ** 70, max_value=2 ** 70),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8))
tree = st.recursive(leaf, lambda children: st.one_of(st.lists(children, max_size=5),
                                                     st.dictionaries(st.text(max_size=5), children, max_size=5)),
                    max_leaves=30)


@settings(max_examples=60, deadline=None, database=None)
@given(st.lists(st.tuples(st.uuids().map(str), st.dictionaries(st.text(max_size=5), tree, max_size=6),
                          st.one_of(st.none(), st.text(max_size=10))), max_size=6))
def test_any_json_documents_round_trip(records):
    decoded = list(decode_bundle(encode_bundle(records)))
    assert len(decoded) == len(records)
    for (m, doc, a), (m2, doc2, a2) in zip(records, decoded):
        assert (m, a) == (m2, a2)
        _same(doc, doc2)


def test_corrupt_and_truncated_bundles_raise_bundle_error():
    data = encode_bundle(_real_records()[:3])
    for bad in (b"", b"ABF", b"XXXX" + data[4:], data[:-10], data[:40], data[:20] + b"\0" * 30 + data[50:]):
        with pytest.raises(BundleError):
            list(decode_bundle(bad))
    future = data[:4] + bytes([9]) + data[5:]
    with pytest.raises(BundleError, match="upgrade abrunnerd"):
        list(decode_bundle(future))


def test_decompression_bomb_is_capped():
    data = encode_bundle(_real_records()[:3])
    with pytest.raises(BundleError, match="limit"):
        list(decode_bundle(data, max_decompressed=1000))
    # a header that lies about the size: the real payload is far larger than declared
    bomb = lzma.compress(b"\0" * (50 * 1024 * 1024))
    lying = struct.pack("<4sBBHQ", MAGIC, 1, 1, 0, 100) + bomb
    with pytest.raises(BundleError):
        list(decode_bundle(lying))


def test_garbage_payload_with_valid_framing_is_refused():
    payload = struct.pack("<I", 5) + b"{bad}"
    data = struct.pack("<4sBBHQ", MAGIC, 1, 1, 0, len(payload)) + lzma.compress(payload)
    with pytest.raises(BundleError, match="header"):
        list(decode_bundle(data))
    header = json.dumps({"skeletons": [{"a": "f"}], "records": [["m", None, 0]], "others": [[]],
                         "columns": 1}).encode()
    payload = struct.pack("<I", len(header)) + header + b"\0\0"  # 2 bytes where 4 are needed
    data = struct.pack("<4sBBHQ", MAGIC, 1, 1, 0, len(payload)) + lzma.compress(payload)
    with pytest.raises(BundleError, match="truncated"):
        list(decode_bundle(data))
    header = json.dumps({"skeletons": [{"a": "x"}], "records": [["m", None, 0]], "others": [[]],
                         "columns": 0}).encode()
    payload = struct.pack("<I", len(header)) + header
    data = struct.pack("<4sBBHQ", MAGIC, 1, 1, 0, len(payload)) + lzma.compress(payload)
    with pytest.raises(BundleError, match="unknown leaf"):
        list(decode_bundle(data))


def test_documents_with_different_layouts_share_columns():
    base = _real_records()[:4]
    shorter = dict(base[1][1], rhythm=dict(base[1][1]["rhythm"], beats_position=[0.5, 1.0]))
    records = [base[0], (base[1][0], shorter, None), base[2], base[3]]
    decoded = list(decode_bundle(encode_bundle(records)))
    for (_m, doc, _a), (_m2, doc2, _a2) in zip(records, decoded):
        _same(doc, doc2)
