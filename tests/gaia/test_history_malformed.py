"""The reader on hostile input: clear HistoryError, never another exception, bounded memory."""
import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abrunnerd.gaia.chain import FIXED, REAL, VARIABLE, Descriptor, Layout, Step, StringList
from abrunnerd.gaia.history import MAGIC, HistoryError, dumps_history, loads_history
from gaia_vectors import SELF_TEST_HEX
from helpers.mutation import mutate, mutation

GOOD = bytes.fromhex(SELF_TEST_HEX)
HEADER = MAGIC + struct.pack(">iI", 102, 1)


def small_svm_like_chain() -> bytes:
    """Several transformations with every kind of value, to give the fuzzer structure to break."""
    layout = Layout([Descriptor(".f.a", REAL, FIXED, 2), Descriptor(".f.k", 3, FIXED, 1)], {".f.k": ["x", "y"]})
    steps = [
        Step("normalize", "dotproduct", {"independent": 1}, {"applyClipping": False, "coeffs": {
            ".f.a": {"a": [1.0, 2.0], "b": [0.5, -0.5]}}}, {".f.a": {"mean": [0.0, 1.0]}}, layout),
        Step("addfield", "addfieldapplier", {"string": "highlevel.t"}, {"string": "highlevel.t"}, {}, layout),
        Step("select", "selectdesc", {"descriptorNames": "highlevel.t*"},
             {"descriptorNames": StringList([".highlevel.t"])}, {},
             Layout(layout.descriptors + [Descriptor(".highlevel.t", 2, VARIABLE)], layout.enum_maps)),
    ]
    return dumps_history(steps)


SMALL = small_svm_like_chain()


@pytest.mark.parametrize("data, message", [
    (b"", "starts with nothing"),
    (b"\x6a\xea\x72\x30" + GOOD[4:], "Gaia DataSet, not a history"),
    (b"PK\x03\x04" + GOOD[4:], "starts with 50 4b 03 04"),
    (MAGIC + struct.pack(">i", 101) + GOOD[8:], "format version 101"),
    (MAGIC + struct.pack(">iI", 102, 0), "no transformations"),
    (MAGIC + struct.pack(">iI", 102, 0xFFFFFFFF), "transformation count 4294967295 cannot fit"),
    (GOOD[:-1], "truncated"),
    (GOOD[:100], "truncated"),
    (GOOD + b"\0", "1 unexpected bytes after the end"),
    (HEADER + b"\xff\xff\xff\xf0" + GOOD[16:], "truncated: transformation 0 name needs 4294967280 bytes"),
    (HEADER + b"\0\0\0\x03" + GOOD[16:], "length 3 is odd"),
    (HEADER + b"\0\0\0\x02\xdc\x00" + GOOD[16:], "not valid UTF-16"),
])
def test_malformed_headers_and_strings(data, message):
    with pytest.raises(HistoryError, match=message):
        loads_history(data)


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    return data[:offset] + new + data[offset + len(new):]


def test_vl_leaf_with_size_other_than_one_is_rejected():
    # leaf `a` segment [0, 1) -> [0, 3): the message Gaia itself gives
    offset = GOOD.index(bytes.fromhex("00000002 00610000 00010000 0001 00000000 00000001"))
    data = patch(GOOD, offset + 4 + 2 + 8 + 4, struct.pack(">i", 3))
    with pytest.raises(HistoryError, match=r"leaf '\.a' has a VL segment of size 3 \(should be 1\)"):
        loads_history(data)


def test_wrong_variant_type_for_params_is_rejected():
    offset = GOOD.index(bytes.fromhex("0000000800"))
    data = patch(GOOD, offset, struct.pack(">I", 10))
    with pytest.raises(HistoryError, match="analyzer params has QVariant type 10, expected 8"):
        loads_history(data)


def test_unknown_variant_type_is_rejected():
    offset = GOOD.index(bytes.fromhex("0000000b00"))
    with pytest.raises(HistoryError, match="unsupported QVariant type 77"):
        loads_history(patch(GOOD, offset, struct.pack(">I", 77)))


@pytest.mark.parametrize("field", ["string", "list", "map", "layout"])
def test_huge_lengths_fail_without_allocating(field):
    """A length near 4 GiB must be refused before anything of that size is allocated."""
    huge = struct.pack(">I", 0xFFFFFFF0)
    if field == "string":
        data = patch(GOOD, 0x0c, huge)
    elif field == "list":
        data = patch(GOOD, GOOD.index(bytes.fromhex("0000000b00")) + 5, huge)
    elif field == "map":
        data = patch(GOOD, GOOD.index(bytes.fromhex("0000000800")) + 5, huge)
    else:
        data = patch(GOOD, GOOD.index(bytes.fromhex("0000000c0000000054")) + 5, huge)
    tracemalloc.start()
    try:
        with pytest.raises(HistoryError, match="truncated|cannot fit"):
            loads_history(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


def test_deeply_nested_maps_are_refused():
    nested = b""
    for _ in range(40):
        nested = struct.pack(">IBI", 8, 0, 1) + struct.pack(">I", 2) + "k".encode("utf-16-be") + nested
    nested += struct.pack(">IBI", 8, 0, 0)
    data = HEADER + struct.pack(">III", 0, 0, 0) + nested + b"\0" * 40
    with pytest.raises(HistoryError, match="nests deeper than 32"):
        loads_history(data)


def _check(data: bytes) -> None:
    try:
        steps = loads_history(data)
    except HistoryError as exc:
        assert str(exc)
        return
    assert steps and all(isinstance(s, Step) for s in steps)
    # Whatever parses must be writable again into something that parses the same.
    assert loads_history(dumps_history(steps)) == steps


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([GOOD, SMALL]), st.lists(mutation, min_size=1, max_size=4))
def test_fuzz_mutations_of_small_histories(base, ops):
    _check(mutate(base, ops))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_bytes_after_a_valid_header(tail):
    _check(HEADER + tail)
    _check(tail)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutation, min_size=1, max_size=2))
def test_fuzz_mutations_of_gaias_reference(reference_bytes, ops):
    _check(mutate(reference_bytes, ops))


def test_nul_byte_in_libsvm_model_text_is_rejected(reference_bytes):
    """Found by hypothesis on the newest runtime: a NUL inside modelData parsed, then the writer refused it.

    Gaia passes modelData to libsvm as a C string, so such a model would load truncated; the
    reader now refuses it with a HistoryError instead.
    """
    offset = reference_bytes.index(b"svm_type c_svc") + 20
    with pytest.raises(HistoryError, match=r"modelData contains a NUL byte at offset \d+"):
        loads_history(patch(reference_bytes, offset, b"\0"))
