"""The writer against the spec's byte vectors, and writer -> reader round trips."""
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abrunnerd.gaia.chain import (ENUM, FIXED, REAL, STRING, VARIABLE, Descriptor, Float32Blob, Layout,
                                  RealList, Step, StringList)
from abrunnerd.gaia.history import MAGIC, HistoryError, dumps_history, loads_history, read_history, write_history
from abrunnerd.gaia.layout import decode_layout, encode_layout, segments
from abrunnerd.gaia.qdatastream import Float32, Reader, UInt, VariantList, Writer
from gaia_vectors import SELF_TEST_HEX, remove_b_step



def test_self_test_vector_is_reproduced_byte_for_byte():
    expected = bytes.fromhex(SELF_TEST_HEX)
    assert len(expected) == 276
    assert dumps_history([remove_b_step()]) == expected
    assert loads_history(expected) == [remove_b_step()]


def test_hex_walkthrough_of_gaia_test_file_first_transformation():
    """history-format §10: the addfield transformation of test_svm_singledesc.history."""
    layout = Layout([Descriptor(".barkbands.mean", REAL, VARIABLE), Descriptor(".barkbands.var", REAL, VARIABLE)])
    step = Step("addfield", "addfieldapplier", {"string": "genre"}, {"string": "genre"}, {}, layout)
    data = dumps_history([step] * 5)
    assert data[:0x0c] == bytes.fromhex("6aea723d 00000066 00000005")
    assert data[0x0c:0x10] == b"\0\0\0\0"
    assert data[0x10:0x14] == bytes.fromhex("00000010") and data[0x14:0x24] == "addfield".encode("utf-16-be")
    assert data[0x24:0x28] == bytes.fromhex("0000001e")
    assert data[0x46:0x4f] == bytes.fromhex("00000008 00 00000001")
    assert data[0x5f:0x64] == bytes.fromhex("0000000a 00")
    assert data[0x64:0x72] == bytes.fromhex("0000000a") + "genre".encode("utf-16-be")
    assert data[0x9e:0xa7] == bytes.fromhex("00000008 00 00000000")
    assert data[0xa7:0xac] == bytes.fromhex("0000000c 00")
    layout_start = 0xb0
    assert data[layout_start:layout_start + 0x18] == bytes.fromhex(
        "00000000 00000000 00000001 ffffffff ffffffff 00000001")  # root, 1 child (barkbands)
    # barkbands inner node, then leaves mean [0,1) and var [1,2), both Real VL
    tree = data[layout_start + 0x18:]
    assert tree[:0x16] == bytes.fromhex("00000012") + "barkbands".encode("utf-16-be")
    assert tree[0x16:0x2a] == bytes.fromhex("00000000 00000001 00000000 00000001 00000002")
    assert tree[0x2a:0x4a] == bytes.fromhex("00000008") + "mean".encode("utf-16-be") + bytes.fromhex(
        "00000001 00000001 00000000 00000001 00000000")
    assert tree[0x4a:0x68] == bytes.fromhex("00000006") + "var".encode("utf-16-be") + bytes.fromhex(
        "00000001 00000001 00000001 00000002 00000000")


def test_maps_are_written_in_descending_key_order():
    w = Writer()
    w.qvariantmap({"a": 1, "b": 2.0, "outliers": -1, "independent": True, "except": StringList()})
    keys = []
    r = Reader(w.getvalue())
    for _ in range(r.u32()):
        keys.append(r.qstring())
        r.qvariant()
    assert keys == ["outliers", "independent", "except", "b", "a"]


def test_variant_types_survive_a_round_trip():
    value = {"bool": False, "int": -7, "uint": UInt(7), "double": 0.1, "float": Float32(1.5),
             "list": RealList([1.0, 2.5]), "mixed": VariantList([1, "x"]), "string": "é€",
             "strings": StringList(["a", ""]), "bytes": b"\x00\xff", "nested": {"m": {}}}
    w = Writer()
    w.qvariant(value)
    back = Reader(w.getvalue()).qvariant()
    assert back == value
    assert {k: type(v) for k, v in back.items()} == {k: type(v) for k, v in value.items()}


def test_numpy_scalars_are_written_as_plain_values():
    w = Writer()
    w.qvariant({"f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(True), "l": RealList([np.float32(1.5)])})
    assert Reader(w.getvalue()).qvariant() == {"f": 0.5, "i": 3, "b": True, "l": [1.5]}


def test_float32_blob_is_little_endian():
    blob = Float32Blob.from_array(np.array([1.0, 2.0], dtype=np.float32))
    assert bytes(blob) == struct.pack("<2f", 1.0, 2.0)
    assert list(blob.to_array()) == [1.0, 2.0]


def test_segments_follow_gaias_index_rule():
    layout = Layout([Descriptor(".z", REAL, FIXED, 3), Descriptor(".a", REAL, FIXED, 2),
                     Descriptor(".m", REAL, VARIABLE), Descriptor(".k", STRING, FIXED, 1),
                     Descriptor(".e", ENUM, VARIABLE), Descriptor(".B", REAL, VARIABLE)])
    assert segments(layout) == {".B": (0, 1), ".a": (0, 2), ".m": (1, 2), ".z": (2, 5),
                                ".k": (0, 1), ".e": (0, 1)}


def test_layout_with_enum_maps_round_trips():
    layout = Layout([Descriptor(".tonal.key_key", ENUM, FIXED, 1), Descriptor(".tonal.x", REAL, FIXED, 4)],
                    {".tonal.key_key": ["C#", "Bb", "E"]})
    assert decode_layout(encode_layout(layout)) == layout


def test_writer_refuses_an_empty_chain_and_bad_layouts():
    with pytest.raises(ValueError, match="empty Gaia history"):
        dumps_history([])
    step = remove_b_step()
    bad = step._replace(input_layout=Layout([Descriptor(".a", REAL, VARIABLE, 3)]))
    with pytest.raises(ValueError, match="transformation 0 .*VL descriptor has size 1"):
        dumps_history([bad])
    bad = step._replace(input_layout=Layout([Descriptor("a", REAL, VARIABLE)]))
    with pytest.raises(ValueError, match="not a Gaia full name"):
        dumps_history([bad])
    bad = step._replace(input_layout=Layout([Descriptor(".a", REAL, VARIABLE), Descriptor(".a.b", REAL, VARIABLE)]))
    with pytest.raises(ValueError, match="nested under another descriptor|has children"):
        dumps_history([bad])


def test_write_history_is_atomic_and_readable(tmp_path):
    path = tmp_path / "model.history"
    path.write_bytes(b"old")
    write_history([remove_b_step()], path)
    assert path.read_bytes()[:4] == MAGIC
    assert read_history(path) == [remove_b_step()]
    assert sorted(os.listdir(tmp_path)) == ["model.history"]
    with pytest.raises(ValueError):
        write_history([], path)
    assert read_history(path) == [remove_b_step()]  # the old file survives a failed write
    assert sorted(os.listdir(tmp_path)) == ["model.history"]


def test_read_history_names_the_file(tmp_path):
    path = tmp_path / "broken.history"
    path.write_bytes(b"nope")
    with pytest.raises(HistoryError, match="broken.history: not a Gaia history"):
        read_history(path)


names = st.lists(st.text(alphabet="abcXY_0123", min_size=1, max_size=4), min_size=1, max_size=3).map(
    lambda parts: "." + ".".join(parts))


@st.composite
def layouts(draw):
    chosen = {}
    for name in draw(st.lists(names, max_size=8)):
        if any(n.startswith(name + ".") or name.startswith(n + ".") for n in chosen) or name in chosen:
            continue
        dtype = draw(st.sampled_from([REAL, STRING, ENUM]))
        ltype = draw(st.sampled_from([FIXED, VARIABLE]))
        chosen[name] = Descriptor(name, dtype, ltype, draw(st.integers(0, 5)) if ltype == FIXED else 1)
    enums = {n: draw(st.lists(st.text(max_size=3), unique=True, max_size=4))
             for n, d in chosen.items() if d.type == ENUM}
    return Layout(sorted(chosen.values(), key=lambda d: d.name.encode("utf-16-be")), enums)


@settings(max_examples=150, deadline=None)
@given(layouts())
def test_any_valid_layout_round_trips(layout):
    data = encode_layout(layout)
    assert decode_layout(data) == layout
    assert encode_layout(decode_layout(data)) == data
