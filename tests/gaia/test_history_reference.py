"""Gaia's own history (real Gaia 2.4.6 on ab-real-1): we read all of it and write it back byte for byte.

A byte-identical re-serialisation proves the writer encodes every part -- maps,
variants, layouts, enum maps, float32 distributions, model text -- as Gaia does.
Figures below were read from the file (decisions.md item 5 allows them here).
"""
from abrunnerd.gaia.chain import ENUM, FIXED, REAL, STRING, VARIABLE, Float32Blob, RealList, StringList
from abrunnerd.gaia.history import dumps_history, loads_history
from abrunnerd.gaia.libsvm_text import parse_model_header

CHAIN = [("remove", "removedesc"), ("fixlength", "fixlengthapplier"), ("remove", "removedesc"),
         ("enumerate", "enumerateapplier"), ("normalize", "dotproduct"), ("gaussianize", "distribute"),
         ("select", "selectdesc"), ("cleaner", "removedesc"), ("normalize", "dotproduct"),
         ("addfield", "addfieldapplier"), ("svmtrain", "svmpredict"), ("select", "selectdesc")]


def test_reference_round_trip_is_byte_identical(reference_bytes):
    assert dumps_history(loads_history(reference_bytes)) == reference_bytes


def test_reference_chain_shape(reference_bytes):
    steps = loads_history(reference_bytes)
    assert [(s.analyzer, s.applier) for s in steps] == CHAIN
    assert all(s.name == "" for s in steps)
    # The first layout is the full raw low-level layout, every leaf VL (as merged by Gaia).
    first = steps[0].input_layout
    assert len(first.descriptors) == 524
    assert all(d.length_type == VARIABLE for d in first.descriptors)
    assert first.get(".tonal.key_key").type == STRING
    assert first.enum_maps == {}
    # fixlength makes the remaining descriptors FL with their training dimensions.
    after_fix = steps[2].input_layout
    assert len(after_fix.descriptors) == 483
    assert after_fix.get(".lowlevel.mfcc.mean").size == 13
    assert all(d.length_type == FIXED for d in after_fix.descriptors)


def test_reference_enum_maps_travel_with_every_layout_after_enumerate(reference_bytes):
    steps = loads_history(reference_bytes)
    assert steps[3].input_layout.enum_maps == {}
    for step in steps[4:]:
        assert step.input_layout.get(".tonal.key_key").type == ENUM
        assert step.input_layout.enum_maps[".tonal.key_scale"] == ["minor", "major"]
        assert step.input_layout.enum_maps[".tonal.key_key"] == [
            "C#", "Bb", "E", "A", "G", "C", "D", "F", "F#", "Ab", "Eb", "B"]
        assert sorted(step.input_layout.enum_maps) == [
            ".tonal.chords_key", ".tonal.chords_scale", ".tonal.key_key", ".tonal.key_scale"]


def test_reference_params_map_to_chain_wrappers(reference_bytes):
    steps = loads_history(reference_bytes)
    normalize = steps[4].params
    assert normalize["applyClipping"] is False
    coeffs = normalize["coeffs"][".lowlevel.mfcc.mean"]
    assert isinstance(coeffs["a"], RealList) and len(coeffs["a"]) == 13
    dist = steps[5].params["distribution"]
    assert all(isinstance(v, Float32Blob) for v in dist.values())
    assert ".lowlevel.mfcc.mean[3]" in dist
    values = dist[".lowlevel.mfcc.mean[3]"].to_array()
    assert len(values) == 180 and (values[:-1] <= values[1:]).all()  # sorted training values
    assert steps[4].info[".lowlevel.mfcc.mean"].keys() == {"mean", "var"}
    svm = steps[10]
    assert svm.analyzer_params == {"type": "C-SVC", "probability": 1, "kernel": "RBF", "gamma": 2.0 ** -11,
                                   "className": "highlevel.ab-real-1", "c": 2048, "balanceClasses": 0}
    assert svm.params["className"] == "highlevel.ab-real-1"
    assert svm.params["classMapping"] == StringList(["electronic", "orchestral", "speech"])
    assert svm.params["probability"] is True
    assert len(svm.params["descriptorNames"]) == len(steps[9].input_layout.descriptors)
    header = parse_model_header(svm.params["modelData"])
    assert header["kernel_type"] == ["rbf"] and header["nr_class"] == ["3"]
    assert len(header["probA"]) == 3
    assert steps[11].params["descriptorNames"] == [".highlevel.ab-real-1", ".highlevel.ab-real-1Probability"]
    assert steps[11].input_layout.get(".highlevel.ab-real-1Probability").type == REAL
